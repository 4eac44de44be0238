"""Checkpoints: atomic save, and loading of yoloseg and Ultralytics detection weights with clear errors."""

from __future__ import annotations

import os
import tempfile
from copy import deepcopy
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from ultralytics.utils.patches import torch_load
from ultralytics.utils.torch_utils import intersect_dicts

from . import __version__
from .errors import UserInputError
from .nn import DetSegModel

FORMAT = "yoloseg"


def make_checkpoint(model: DetSegModel, **extra: Any) -> dict[str, Any]:
    """Checkpoint dict: an fp16 copy of `model`, both class lists, version/date and `extra`."""
    inference = deepcopy(model).half()
    inference.det_criterion = inference.seg_criterion = None
    return {
        "format": FORMAT,
        "version": __version__,
        "date": datetime.now().isoformat(timespec="seconds"),
        "model": inference,
        "det_names": dict(model.det_names),
        "seg_names": dict(model.seg_names),
        **extra,
    }


def write_checkpoint(path: Path, ckpt: dict[str, Any]) -> None:
    """torch.save `ckpt` to `path` atomically (temp file + rename in the same folder): never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_checkpoint(path: str | Path, flag: str = "--weights") -> dict[str, Any]:
    """Load a checkpoint dict from disk; UserInputError if missing or not a PyTorch checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{flag}: weights file not found: {path} (nothing is downloaded; pass a local file)")
    try:
        ckpt = torch_load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise UserInputError(f"{flag}: {path} is not a PyTorch checkpoint ({reason})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ema") or ckpt.get("model"), torch.nn.Module):
        raise UserInputError(f"{flag}: {path} is not a YOLO checkpoint (no model inside)")
    return ckpt


def load_model(path: str | Path, flag: str = "--weights") -> tuple[DetSegModel, dict[str, Any]]:
    """Load a yoloseg checkpoint as a float32 DetSegModel; UserInputError for any other file."""
    ckpt = read_checkpoint(path, flag)
    if ckpt.get("format") != FORMAT or not isinstance(ckpt["model"], DetSegModel):
        raise UserInputError(
            f"{flag}: {path} is not a yoloseg checkpoint (an Ultralytics detection .pt goes to `train --weights`)"
        )
    model = ckpt["model"].float()
    model.det_criterion = model.seg_criterion = None
    return model, ckpt


def transfer_detection_weights(model: DetSegModel, path: str | Path) -> tuple[int, int]:
    """Copy every shape-matching tensor of an Ultralytics detection (or yoloseg) checkpoint into `model`.

    Returns (transferred, total) tensor counts. Detect's class convolutions only match when class counts match.
    """
    ckpt = read_checkpoint(path)
    source = (ckpt.get("ema") or ckpt["model"]).float().state_dict()
    target = model.state_dict()
    matched = intersect_dicts(source, target)
    model.load_state_dict(matched, strict=False)
    return len(matched), len(target)


def newest_weights(project: Path) -> Path:
    """The most recently written `<project>/*/weights/best.pt`; UserInputError when there is none."""
    found = sorted(project.glob("*/weights/best.pt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserInputError(f"--weights: none given and no trained run in {project}/ (train first, or pass --weights)")
    return found[-1]
