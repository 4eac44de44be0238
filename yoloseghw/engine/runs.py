"""Training runs: the pair a new run trains on, its run folder, its trainer, resuming an interrupted one, and the
clean-up when bad input stops a run before its first checkpoint."""

from __future__ import annotations

import logging
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import RANK
from ultralytics.utils.files import increment_path

from yoloseghw.data.dataset import load_data_config
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
from yoloseghw.utils.files import write_errors
from yoloseghw.utils.options import ultralytics_args
from yoloseghw.utils.ultralytics import error_text, refused_resume_args, ultralytics_log


def training_pair(
    det: Any,
    seg: Any,
    data: Any,
    ckpt: dict[str, Any],
    options: dict[str, Any],
    overrides: dict[str, Any],
    val_det: Any = None,
    val_seg: Any = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pair (det, seg and options) a new run trains on, and the Ultralytics overrides: `data` (a pair yaml), or
    `det`+`seg`, or one of them with a checkpoint `ckpt` that knows (or is) the other task (`single`, the other
    task's val set from `val_det`/`val_seg` or the checkpoint's pair yaml), or the generated demo (with its
    defaults)."""
    if (val_det or val_seg) and not (det is None) != (seg is None):
        raise UserInputError("--val-det / --val-seg name the other task's val set when only one dataset trains")
    if data is not None:
        if det is not None or seg is not None:
            raise UserInputError("give either --data (a pair yaml) or --det and --seg, not both")
        return {**read_pair(data), **options}, overrides
    if (det is None) != (seg is None):
        return single_task_pair(det, seg, ckpt, options, val_det or val_seg), overrides
    if det is None:
        det, seg = on_rank_zero(lambda: make_demo_if_missing(DEMO_DIR))
        overrides = {**DEMO_DEFAULTS, **overrides}
    if options.get("schedule") == "single" and not ckpt:
        raise UserInputError("--schedule single fine-tunes a checkpoint that knows the first task: give --weights")
    return {"det": str(det), "seg": str(seg), **options}, overrides


def single_task_pair(det: Any, seg: Any, ckpt: dict[str, Any], options: dict[str, Any], val: Any) -> dict[str, Any]:
    """One dataset given: train that task only (schedule `single`) from a checkpoint that knows the other task: a
    yoloseg checkpoint, or a stock Ultralytics detector learning segmentation. The other task's val set (`val`, or
    the yoloseg checkpoint's own pair yaml) measures what it keeps."""
    new = "det" if det is not None else "seg"
    old = "seg" if new == "det" else "det"
    model = checkpoint_model(ckpt) if ckpt else None
    if options.get("schedule", "single") != "single":
        raise UserInputError(f"--schedule {options['schedule']} trains two datasets; --{new} alone trains one")
    if isinstance(model, DetSegModel):
        if val is None:
            pair = Path(str((ckpt.get("train_args") or {}).get("data", "")))
            if pair.name != PAIR_FILE or not pair.is_file():
                raise UserInputError(
                    f"--{new} alone: the checkpoint's own pair yaml ({pair}) is not found; name the {old} val set "
                    f"with --val-{old}"
                )
            val = read_pair(pair)[old]
    elif isinstance(model, DetectionModel) and new == "seg":
        if val is None:
            raise UserInputError(
                "--seg with a detection checkpoint: name its box dataset with --val-det, whose val split measures "
                "what detection keeps"
            )
        check_same_classes(model.names, load_data_config(val, "det"))
    elif model is not None:
        raise UserInputError(f"--{new} alone: {type(model).__name__} weights learn segmentation only (give --seg)")
    else:
        raise UserInputError(
            f"give both --det and --seg (--{new} alone trains a checkpoint, given as --weights, that already knows "
            "the other task)"
        )
    datasets = {new: str(det if new == "det" else seg), old: str(val)}
    return {"det": datasets["det"], "seg": datasets["seg"], **options, "schedule": "single", "order": f"{old},{new}"}


def check_same_classes(names: dict[int, str], data: dict[str, Any]) -> None:
    """UserInputError unless the detector's class list is the dataset's (the val set must score its classes)."""
    if list(dict(names).values()) != list(dict(data["names"]).values()):
        raise UserInputError(
            f"--val-det: {data['yaml_path']} has the classes {', '.join(map(str, data['names'].values()))}; the "
            f"detector has {', '.join(map(str, dict(names).values()))}"
        )


def new_run_folder(run: Path, options: dict[str, Any]) -> tuple[Path, Path]:
    """A new run folder (`run`, or run-2, run-3, ... when taken) holding the run's pair yaml; a failed write removes
    it again."""
    with write_errors(run):
        save_dir = increment_path(run, exist_ok=False, sep="-", mkdir=True)
    try:
        return save_dir, write_pair(save_dir / PAIR_FILE, options["det"], options["seg"], options)
    except UserInputError:
        shutil.rmtree(save_dir, ignore_errors=True)
        raise


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


class Interrupts:
    """Context: the first Ctrl-C always stops the run. A try/except of Ultralytics' (its TryExcept, around plots)
    would take the KeyboardInterrupt and go on; the signal is remembered and raised again at the trainer's next
    callback."""

    EVENTS = ("on_pretrain_routine_end", "on_train_start", "on_train_epoch_start", "on_train_batch_start",
              "on_train_batch_end", "on_train_epoch_end", "on_fit_epoch_end", "on_train_end")  # fmt: skip

    def __init__(self, trainer: Any):
        self.hit, self.previous = False, None
        for event in self.EVENTS:
            trainer.add_callback(event, self.check)

    def check(self, _: Any = None) -> None:
        if self.hit:
            raise KeyboardInterrupt

    def handle(self, signum: int, frame: Any) -> None:
        self.hit = True
        raise KeyboardInterrupt

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train_or_clean_up(trainer: Any) -> None:
    """Train; if bad input stops a new run before its first checkpoint, remove the (empty) run folder it made. A
    Ctrl-C stops the run (exit code 130 on the command line) with the line that resumes it."""
    try:
        with Interrupts(trainer), ultralytics_log(logging.INFO), write_errors(trainer.save_dir):
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


class RunLock:
    """An exclusive lock on a run folder for as long as one yoloseg trains into it (a second one gets a one-line
    error); rank 0 only under DDP. Where the OS has no `fcntl`, no lock is taken."""

    NAME = ".yoloseg.lock"

    def __init__(self, run: Path):
        self.run, self.file = Path(run), None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:
            return self
        if RANK not in {-1, 0} or not self.run.is_dir():  # a missing run folder is said by what reads it
            return self
        self.file = open(self.run / self.NAME, "a")  # noqa: SIM115  (held open for the lock's lifetime)
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            self.file = None
            raise UserInputError(f"{self.run} is in use: another yoloseg is training into it") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.file is not None:
            self.file.close()  # closing the file releases the lock
            self.file = None


def resume_folder(resume: bool | str | Path) -> tuple[Path, Path]:
    """The run folder and last.pt of `--resume RUN` (the folder or its weights/last.pt)."""
    if isinstance(resume, bool):
        raise UserInputError("--resume: give the interrupted run's weights/last.pt (or its run directory)")
    path = Path(resume)
    if path.is_dir():
        path = path / "weights" / "last.pt"
    if path.parent.name != "weights":
        raise UserInputError(f"--resume: {path} must stay at <run>/weights/last.pt to be resumed")
    return path.parent.parent, path


def resume_trainer(
    trainer_class: type, resume: bool | str | Path, det: Any, seg: Any, overrides: dict[str, Any], callbacks: dict
) -> Any:
    """A trainer that continues `<run>/weights/last.pt` in that run folder, and writes nowhere else: wherever the
    checkpoint says it was saved, the run goes on in the folder it lies in, with that folder's pair yaml (a 0.1.0
    last.pt is upgraded). Every check runs before anything is written, so a refused resume changes no file."""
    run, path = resume_folder(resume)
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
    pair = resume_pair(run, ckpt, legacy, det, seg)
    on_rank_zero(lambda: prepare_resume(run, path, ckpt, legacy, pair))
    options = {**overrides, "resume": str(path), "model": str(path), "data": str(run / PAIR_FILE)}
    trainer = new_trainer(trainer_class, {**options, "save_dir": str(run)}, callbacks)
    console.print(f"Resuming {trainer.save_dir} from {path}")
    return trainer


def resume_pair(run: Path, ckpt: dict, legacy: bool, det: Any, seg: Any) -> dict[str, Any] | None:
    """The pair a resume trains on, checked: the run's own pair yaml with the datasets given anew (None: the file as
    it is). The datasets are loaded here, so that bad ones stop the resume before any file changes."""
    if legacy:
        base = dict(ckpt["options"])
    elif (run / PAIR_FILE).is_file():
        if det is None and seg is None:
            return None
        base = read_pair(run / PAIR_FILE)
    else:
        raise UserInputError(f"--resume: {run / PAIR_FILE} is missing (the run's datasets and options)")
    pair = {**base, **{k: str(v) for k, v in (("det", det), ("seg", seg)) if v is not None}}
    load_data_config(pair["det"], "det"), load_data_config(pair["seg"], "seg")
    return pair


def prepare_resume(run: Path, path: Path, ckpt: dict, legacy: bool, pair: dict[str, Any] | None) -> None:
    """Write the checked pair yaml (new dataset locations) into the run folder, and upgrade a 0.1.0 last.pt."""
    if pair is not None:
        write_pair(run / PAIR_FILE, pair["det"], pair["seg"], pair)
    if legacy:
        upgrade_legacy_resumable(path, ckpt, run / PAIR_FILE)
        console.print(f"Upgraded {path} (yoloseg {ckpt.get('version')}) to resume it; the original is last-0.1.0.pt")
