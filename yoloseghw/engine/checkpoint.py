"""Checkpoints: Ultralytics' format (written by its trainer), atomic writes, loading with clear errors, and the
upgrade of resumable checkpoints written by yoloseg 0.1.0.

A yoloseg checkpoint is an Ultralytics checkpoint whose model (`ema` while training, `model` once finished) is a
`DetSegModel`; the pickled class lives at `yoloseghw.nn.DetSegModel`, the path 0.1.0 wrote, so older files load as is.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from ultralytics.utils import LOGGER
from ultralytics.utils.patches import torch_load
from ultralytics.utils.torch_utils import strip_optimizer

from yoloseghw.nn import DetSegModel
from yoloseghw.utils.console import shorten
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import usual_mode, write_checkpoint
from yoloseghw.utils.version import __version__

LEGACY_FORMAT = "yoloseg"  # the `format` key of 0.1.0 checkpoints


def strip_in_place(path: Path, updates: dict[str, Any] | None = None) -> None:
    """Ultralytics' strip_optimizer (EMA becomes the model, fp16, no optimizer), replacing `path` atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # its "saved as <temporary file>" line would mislead
    try:
        if strip_optimizer(path, s=tmp, updates=updates):
            usual_mode(Path(tmp))
            os.replace(tmp, path)
    finally:
        LOGGER.setLevel(level)
        Path(tmp).unlink(missing_ok=True)


def read_checkpoint(path: str | Path, flag: str = "--weights") -> dict[str, Any]:
    """Load a checkpoint dict from disk; UserInputError if missing or not a PyTorch checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{flag}: weights file not found: {path} (nothing is downloaded; pass a local file)")
    try:
        ckpt = torch_load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        reason = shorten(str(e).splitlines()[0], 120) if str(e) else type(e).__name__
        raise UserInputError(f"{flag}: {path} is not a PyTorch checkpoint ({reason})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ema") or ckpt.get("model"), torch.nn.Module):
        raise UserInputError(f"{flag}: {path} is not a YOLO checkpoint (no model inside)")
    return ckpt


def checkpoint_model(ckpt: dict[str, Any]) -> torch.nn.Module:
    """The model a checkpoint holds: its EMA while training, its final model otherwise (as Ultralytics reads it)."""
    return ckpt.get("ema") or ckpt["model"]


def checkpoint_metrics(ckpt: dict[str, Any]) -> dict[str, float]:
    """The validation metrics a checkpoint was saved with (Ultralytics' `train_metrics`; 0.1.0's `metrics`)."""
    return ckpt.get("train_metrics") or ckpt.get("metrics") or {}


def trained_epochs(ckpt: dict[str, Any]) -> int | None:
    """Epochs the checkpoint's run trained (from its results table; 0.1.0: its epoch index + 1)."""
    results = ckpt.get("train_results") or {}
    if results.get("epoch"):
        return int(max(results["epoch"]))
    return ckpt["epoch"] + 1 if ckpt.get("epoch", -1) >= 0 else None


def load_model(path: str | Path, flag: str = "--weights") -> tuple[DetSegModel, dict[str, Any]]:
    """Load a yoloseg checkpoint as a float32 DetSegModel; UserInputError for any other file."""
    ckpt = read_checkpoint(path, flag)
    model = checkpoint_model(ckpt)
    if not isinstance(model, DetSegModel):
        raise UserInputError(
            f"{flag}: {path} is not a yoloseg checkpoint (an Ultralytics detection .pt goes to `train --weights`)"
        )
    model = model.float()
    model.criterion = None
    return model, ckpt


def is_legacy_resumable(ckpt: dict[str, Any]) -> bool:
    """A 0.1.0 last.pt of an unfinished run (its own `train_state` instead of Ultralytics' optimizer/EMA keys)."""
    return ckpt.get("format") == LEGACY_FORMAT and "train_state" in ckpt


def upgrade_legacy_resumable(path: Path, ckpt: dict[str, Any], pair_yaml: Path) -> Path:
    """Rewrite a 0.1.0 resumable last.pt as an Ultralytics one in place, so Ultralytics' trainer resumes it.

    The original is kept as `last-0.1.0.pt`, and the run's 0.1.0 `results.csv` (other columns) as `results-0.1.0.csv`.
    """
    state, run = ckpt["train_state"], path.parent.parent
    model = ckpt["model"].float()
    model.load_state_dict(state["ema"])
    args = dict(ckpt["train_args"])
    args.update(data=str(pair_yaml), save_dir=str(run), model=str(path), freeze=ckpt["options"].get("freeze") or None)
    upgraded = {
        "epoch": state["epoch"],
        "best_fitness": state["best_fitness"],
        "stopper": {"best_fitness": state["best_fitness"], "best_epoch": state.get("best_epoch", 0)},
        "model": None,
        "ema": model.half(),
        "updates": state["ema_updates"],
        "optimizer": state["optimizer"],
        "train_args": args,
        "train_metrics": ckpt.get("metrics", {}),
        "train_results": {},
        "date": ckpt.get("date"),
        "version": __version__,
    }
    shutil.copy2(path, path.with_name("last-0.1.0.pt"))
    csv = run / "results.csv"
    if csv.exists():
        os.replace(csv, run / "results-0.1.0.csv")
    write_checkpoint(path, upgraded)
    return path


def newest_weights(project: Path) -> Path:
    """The most recently written `<project>/*/weights/best.pt`; UserInputError when there is none."""
    found = sorted(project.glob("*/weights/best.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserInputError(f"--weights: none given and no trained run in {project}/ (train first, or pass --weights)")
    return found[-1]
