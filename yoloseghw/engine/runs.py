"""Training runs: the pair a new run trains on, its run folder, its trainer, resuming an interrupted one, and the
clean-up when bad input stops a run before its first checkpoint."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ultralytics.utils import RANK
from ultralytics.utils.files import increment_path

from yoloseghw.data.demo import DEMO_DEFAULTS, DEMO_DIR, make_demo_if_missing
from yoloseghw.data.pair import PAIR_FILE, read_pair, write_pair
from yoloseghw.engine.checkpoint import (
    checkpoint_model,
    is_legacy_resumable,
    read_checkpoint,
    upgrade_legacy_resumable,
)
from yoloseghw.engine.distributed import on_rank_zero
from yoloseghw.nn.tasks import DetSegModel
from yoloseghw.utils.console import console
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.options import ultralytics_args
from yoloseghw.utils.ultralytics import error_text, refused_resume_args, ultralytics_log


def training_pair(
    det: Any, seg: Any, data: Any, ckpt: dict[str, Any], options: dict[str, Any], overrides: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pair (det, seg and options) a new run trains on, and the Ultralytics overrides: `data` (a pair yaml), or
    `det`+`seg`, one of them with a yoloseg checkpoint `ckpt` (`single`), or the generated demo (with its defaults)."""
    if data is not None:
        if det is not None or seg is not None:
            raise UserInputError("give either --data (a pair yaml) or --det and --seg, not both")
        return {**read_pair(data), **options}, overrides
    if (det is None) != (seg is None):
        return single_task_pair(det, seg, ckpt, options), overrides
    if det is None:
        det, seg = on_rank_zero(lambda: make_demo_if_missing(DEMO_DIR))
        overrides = {**DEMO_DEFAULTS, **overrides}
    return {"det": str(det), "seg": str(seg), **options}, overrides


def single_task_pair(det: Any, seg: Any, ckpt: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """One dataset given: fine-tune that task only (schedule `single`) from a yoloseg checkpoint `ckpt` that knows
    the other one, whose val set (from the checkpoint's own pair yaml) measures what that task keeps."""
    new = "det" if det is not None else "seg"
    old = "seg" if new == "det" else "det"
    if not ckpt or not isinstance(checkpoint_model(ckpt), DetSegModel):
        raise UserInputError(
            f"give both --det and --seg (--{new} alone fine-tunes a yoloseg checkpoint, given as --weights, "
            "that already knows the other task)"
        )
    pair = Path(str((ckpt.get("train_args") or {}).get("data", "")))
    if pair.name != PAIR_FILE or not pair.is_file():
        raise UserInputError(f"--{new} alone: the checkpoint's own pair yaml ({pair}) is not found; give --{old} too")
    if options.get("schedule", "single") != "single":
        raise UserInputError(f"--schedule {options['schedule']} trains two datasets; --{new} alone trains one")
    datasets = read_pair(pair)
    datasets[new] = str(det if new == "det" else seg)
    return {"det": datasets["det"], "seg": datasets["seg"], **options, "schedule": "single", "order": f"{old},{new}"}


def new_run_folder(run: Path, options: dict[str, Any]) -> tuple[Path, Path]:
    """A new run folder (`run`, or run-2, run-3, ... when taken) holding the run's pair yaml."""
    save_dir = increment_path(run, exist_ok=False, sep="-", mkdir=True)
    return save_dir, write_pair(save_dir / PAIR_FILE, options["det"], options["seg"], options)


def new_trainer(cls: type, overrides: dict[str, Any], callbacks: dict, save_dir: Path | None = None) -> Any:
    """Build the trainer; an option Ultralytics rejects there is a one-line error, and a new empty run is removed."""
    try:
        with ultralytics_log(logging.WARNING):  # its warnings, no setup chatter
            trainer = cls(overrides=overrides, _callbacks=callbacks)
        if trainer.args.amp == "bf16" and trainer.device.type != "cuda":  # Ultralytics' autocast would raise later
            raise UserInputError(f"amp=bf16 needs a CUDA device with bfloat16 support (training on {trainer.device})")
        return trainer
    except (UserInputError, TypeError, ValueError, SyntaxError, KeyError, FileNotFoundError, AssertionError) as e:
        if save_dir is not None and RANK in {-1, 0}:
            shutil.rmtree(save_dir, ignore_errors=True)
        if isinstance(e, UserInputError):
            raise
        raise UserInputError(error_text(e)) from None


def train_or_clean_up(trainer: Any) -> None:
    """Train; if bad input stops a new run before its first checkpoint, remove the (empty) run folder it made."""
    try:
        with ultralytics_log(logging.INFO):  # Ultralytics' epoch progress bars and log (setup stays quiet)
            trainer.train()
    except (UserInputError, AssertionError, ValueError, NotImplementedError) as e:  # NotImplemented: --optimizer
        if not trainer.resume and not trainer.last.exists() and RANK in {-1, 0}:
            shutil.rmtree(trainer.save_dir, ignore_errors=True)
        if isinstance(e, UserInputError):
            raise
        raise UserInputError(error_text(e)) from None
    except KeyboardInterrupt:
        if trainer.last.exists():
            console.print(f"Interrupted. Continue with: yoloseg train --resume {trainer.save_dir}")
        raise


def resume_trainer(
    trainer_class: type, resume: bool | str | Path, det: Any, seg: Any, overrides: dict[str, Any], callbacks: dict
) -> Any:
    """A trainer that continues `<run>/weights/last.pt` in its own run folder (a 0.1.0 last.pt is upgraded)."""
    if isinstance(resume, bool):
        raise UserInputError("--resume: give the interrupted run's weights/last.pt (or its run directory)")
    path = Path(resume)
    if path.is_dir():
        path = path / "weights" / "last.pt"
    ckpt = read_checkpoint(path, flag="--resume")
    legacy = is_legacy_resumable(ckpt)
    if not legacy and not ckpt.get("optimizer"):
        raise UserInputError(f"--resume: {path} has no resumable state (the run finished, or it is not last.pt)")
    if not isinstance(checkpoint_model(ckpt), DetSegModel):
        raise UserInputError(f"--resume: {path} is not a yoloseg checkpoint")
    ultralytics_args(overrides, "train")  # one-line errors for bad values
    refused = refused_resume_args(overrides, ckpt.get("train_args") or {})
    if refused:  # Ultralytics' own rule of what a resume may change
        raise UserInputError(f"--resume keeps the run's own {refused}; start a new run to change them")
    data = on_rank_zero(lambda: prepare_resume(path, ckpt, legacy, det, seg))
    if data is not None:
        overrides["data"] = data
    trainer = new_trainer(trainer_class, {**overrides, "resume": str(path), "model": str(path)}, callbacks)
    console.print(f"Resuming {trainer.save_dir} from {path}")
    return trainer


def prepare_resume(path: Path, ckpt: dict, legacy: bool, det: Any, seg: Any) -> str | None:
    """Upgrade a 0.1.0 last.pt, or write a pair yaml with new dataset locations; returns that yaml, if new."""
    run = path.parent.parent
    if legacy:
        if path.parent.name != "weights":
            raise UserInputError(f"--resume: {path} must stay at <run>/weights/last.pt to be resumed")
        options = ckpt["options"]
        write_pair(run / PAIR_FILE, det or options["det"], seg or options["seg"], options)
        upgrade_legacy_resumable(path, ckpt, run / PAIR_FILE)
        console.print(f"Upgraded {path} (yoloseg {ckpt.get('version')}) to resume it; the original is last-0.1.0.pt")
    elif det is not None or seg is not None:  # new data locations: a new pair yaml with the run's options
        args = ckpt["train_args"]
        previous = read_pair(args["data"]) if Path(args["data"]).is_file() else {}
        pair = {**previous, **{k: v for k, v in (("det", det), ("seg", seg)) if v is not None}}
        run = Path(args.get("save_dir") or run)  # the run that wrote the file: the only folder resume writes
        return str(write_pair(run / PAIR_FILE, pair["det"], pair["seg"], pair))
    return None
