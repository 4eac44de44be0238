"""Every use of an Ultralytics private name, every patch of its modules and every parse of its text, in one place.

Each entry says why no public API serves. tests/test_ultralytics.py checks each one against the installed
Ultralytics (`pytest -k ultralytics`), naming the version they were written for (TESTED_VERSION), so a new release
that moves one of them fails there with a clear message instead of somewhere deep in a run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import numpy as np
from ultralytics.models.yolo.detect import DetectionTrainer

from yoloseghw.utils.console import plain

TESTED_VERSION = "8.4.190"  # the Ultralytics release these touch points were checked against


# ----------------------------------------------------------------------------------------------------- logging
@contextmanager
def ultralytics_log(level: int = logging.INFO) -> Iterator[None]:
    """Ultralytics' log at `level` for the block (INFO also shows its progress bars).

    Why a global write: Ultralytics' progress bars read the module global `ultralytics.utils.VERBOSE`, which has no
    setter, and its LOGGER handlers keep their own levels."""
    import ultralytics.utils as ultralytics_utils
    from ultralytics.utils import RANK

    logger, verbose = ultralytics_utils.LOGGER, ultralytics_utils.VERBOSE
    level = max(level, logging.WARNING) if RANK > 0 else level  # under DDP, rank 0 logs for all
    levels = [logger.level, *(h.level for h in logger.handlers)]
    ultralytics_utils.VERBOSE = level <= logging.INFO
    for item in (logger, *logger.handlers):
        item.setLevel(level)
    try:
        yield
    finally:
        ultralytics_utils.VERBOSE = verbose
        for item, saved in zip((logger, *logger.handlers), levels):
            item.setLevel(saved)


@contextmanager
def caught_warnings(text: str) -> Iterator[list[str]]:
    """Collect (instead of printing) the messages of Ultralytics' logger that contain `text`.

    Why a log filter: Ultralytics reports some facts (a split without labels) only as a log line. The logger lets
    warnings through to the filter for the block; its handlers keep their levels, so nothing else is printed."""
    from ultralytics.utils import LOGGER

    caught: list[str] = []

    class Catch(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            message = plain(record.getMessage())
            if text in message:
                caught.append(message)
                return False
            return True

    catch, level = Catch(), LOGGER.level
    LOGGER.addFilter(catch)
    if level > logging.WARNING:
        LOGGER.setLevel(logging.WARNING)
    try:
        yield caught
    finally:
        LOGGER.removeFilter(catch)
        LOGGER.setLevel(level)


NO_LABELS = "Labels are missing or empty"  # YOLODataset's warning for a split without label files


# ----------------------------------------------------------------------------------------------------- error text
def error_text(error: BaseException) -> str:
    """Ultralytics' own error text on one line ("'x' is not a valid YOLO argument. Similar arguments are ...").

    Why a parse: get_cfg and the trainer raise plain exceptions whose text carries links and a usage dump."""
    text = " ".join(str(error).replace("❌", "").split())
    return text.split(" See ")[0].split(" Arguments received")[0].split(" Request support")[0]


def dataset_error_text(error: BaseException) -> str:
    """check_det_dataset's error on one line, without its 'Note ...' download advice (yoloseg never downloads)."""
    return (" ".join(str(error).replace("❌", "").split()) or type(error).__name__).split(" Note ")[0]


def device_error_text(error: ValueError) -> str:
    """The first sentence of select_device's error for a device that is not there (its text lists install help)."""
    return str(error).split(". ")[0].replace("'", "")


def source_error_text(error: FileNotFoundError) -> str:
    """The first sentence of load_inference_source's error for a path that does not exist."""
    return str(error).split(". ")[0]


# ----------------------------------------------------------------------------------------------------- resume
# BaseTrainer.check_resume's `allowed` set: the arguments a resume takes from the command line (it ignores the
# others with a warning). Why a copy: the set is a local variable of check_resume, not a public constant.
RESUMABLE_ARGS = frozenset(
    {
        "imgsz",
        "batch",
        "device",
        "close_mosaic",
        "augmentations",
        "save_period",
        "workers",
        "cache",
        "patience",
        "time",
        "freeze",
        "val",
        "plots",
        "channels_last",
        "distill_model",
        "save_dir",
    }
)
RESUME_PASSED = frozenset({"model", "data", "mode", "resume", "pretrained"})  # what check_resume sets itself


def refused_resume_args(overrides: dict[str, Any], saved: dict[str, Any]) -> list[str]:
    """The keys of `overrides` that a resume of a run with arguments `saved` would ignore (they change a value)."""
    return sorted(
        k
        for k, v in overrides.items()
        if k not in RESUMABLE_ARGS and k not in RESUME_PASSED and v != saved.get(k, None)
    )


# ----------------------------------------------------------------------------------------------------- datasets
FATAL_SCAN_MESSAGES = ("exceeds dataset class count", "are not dataset class ids", "out of bounds for axis 0")
ABOVE_255 = re.compile(r"index (\d+) is out of bounds for axis 0 with size 256")  # a 16-bit mask id above 255


class ScanMessages:
    """Dataset mixin keeping the messages of Ultralytics' label scan (`scan_messages`), so bad labels can be fatal.

    Why a private override: the scan's messages are only logged, and `_load_or_scan_cache` is where the cache that
    holds them is read."""

    scan_messages: list[str]

    def _load_or_scan_cache(self, cache_path: Path, cache_hash: str) -> tuple[dict, bool]:
        cache, exists = super()._load_or_scan_cache(cache_path, cache_hash)
        self.scan_messages = [plain(m) for m in cache.get("msgs", [])]
        return cache, exists


def fatal_scan_message(messages: list[str], extra: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """(file, reason) of the first scan message that says a label is out of range (or contains one of `extra`).

    Why a parse: Ultralytics' scan turns a bad label into a skipped image and a message; yoloseg stops instead."""
    fatal = [m for m in messages if any(key in m for key in FATAL_SCAN_MESSAGES + extra)]
    if not fatal:
        return None
    detail = fatal[0].split(": ignoring corrupt image/", 1)[-1]
    above = ABOVE_255.search(detail)
    if above:
        detail = f"mask value {above.group(1)} is above 255 (class ids are 0 to nc-1, 255 = ignore)"
    if len(fatal) > 1:
        detail += f" (and {len(fatal) - 1} more)"
    return fatal[0].split(": ignoring")[0].split(": ", 1)[-1].strip(), detail


def semantic_class_counts(args: Any, dataset: Any, nc: int) -> np.ndarray:
    """Pixels per class of a SemanticDataset, counted by Ultralytics' semantic trainer.

    Why a stand-in trainer: `SemanticSegmentationTrainer.get_class_counts` reads the counts off a trainer's
    `args`, `data` and `train_loader`, and the joint trainer has two datasets."""
    from ultralytics.models.yolo.semantic import SemanticSegmentationTrainer

    stand_in = SimpleNamespace(args=args, data={"nc": nc}, train_loader=SimpleNamespace(dataset=dataset))
    return SemanticSegmentationTrainer.get_class_counts(stand_in)


def semantic_class_weights(trainer: Any, counts: np.ndarray) -> np.ndarray:
    """Ultralytics' semantic cls_pw weights of `counts` (its trainer method reads only `args` off the trainer)."""
    from ultralytics.models.yolo.semantic import SemanticSegmentationTrainer

    return SemanticSegmentationTrainer.compute_class_weights(trainer, counts)


@contextmanager
def loader_of(trainer: Any, dataset: Any) -> Iterator[None]:
    """`trainer.train_loader` seen as a loader of `dataset` alone for the block.

    Why: Ultralytics' `plot_training_labels` reads the labels off `train_loader.dataset`, one dataset."""
    saved = trainer.train_loader
    trainer.train_loader = SimpleNamespace(dataset=dataset)
    try:
        yield
    finally:
        trainer.train_loader = saved


# ----------------------------------------------------------------------------------------------------- validation
def prepare_validator(validator: Any, data: dict, device: Any, names: dict[int, str], end2end: bool) -> None:
    """Ready an Ultralytics validator to be fed batch by batch by yoloseg (its `__call__` runs a whole model).

    Why: `init_metrics` reads `names` and `end2end` off a model, and `training` makes it keep its loader as given."""
    validator.data, validator.training, validator.device = data, True, device
    validator.init_metrics(SimpleNamespace(names=names, end2end=end2end))


# ----------------------------------------------------------------------------------------------------- losses
def detection_loss_branches(loss: Any, preds: dict) -> list[tuple[float, Any, dict]]:
    """(gain, the branch's v8DetectionLoss, the branch's outputs) for each branch of Detect's outputs `preds` that
    Ultralytics' detection loss `loss` trains: YOLO26's one-to-many and one-to-one with the gains E2ELoss gives them
    at this step, or the one branch of other families (gain 1).

    Why: E2ELoss keeps its branch losses and their decaying gains as attributes (`one2many`, `one2one`, `o2m`,
    `o2o`) and has no method that assigns targets branch by branch."""
    if "one2one" in preds:
        return [(loss.o2m, loss.one2many, preds["one2many"]), (loss.o2o, loss.one2one, preds["one2one"])]
    return [(1.0, loss, preds)]


def assigned_box_loss(loss: Any, preds: dict, batch: dict) -> tuple[Any, Any, Any, Any, float]:
    """Ultralytics' task-aligned assignment and box loss of one detection branch for `batch`'s boxes
    ("batch_idx", "cls", normalised xywh "bboxes"): the foreground [B, anchors], the index of each anchor's box among
    its image's boxes [B, anchors], the assigned boxes [B, anchors, 4] (xyxy pixels), the box + DFL loss (gains
    applied, not multiplied by the batch size) and the class gain.

    Why: v8DetectionLoss returns its assignment only from `get_assigned_targets_and_loss`, and keeps its gains on
    `hyp`."""
    (fg, gt_index, boxes, _, _), losses, _ = loss.get_assigned_targets_and_loss(preds, batch)
    return fg, gt_index, boxes, losses[0] + losses[2], class_gain(loss)


def class_gain(loss: Any) -> float:
    """The class loss's gain of one detection branch's loss (v8DetectionLoss).

    Why: v8DetectionLoss keeps its gains on `hyp` and applies them inside its own call."""
    return float(loss.hyp.cls)


# ----------------------------------------------------------------------------------------------------- trainer
class TrainerHooks(DetectionTrainer):
    """Ultralytics' DetectionTrainer whose private set-up steps call overridable public hooks.

    Why private overrides: BaseTrainer has callbacks after its set-up, but none around it; the joint trainer must
    change the set-up itself (freeze layers later, wrap a CPU model in DDP, join a torchrun process group, scale the
    LR of a phase)."""

    def _setup_train(self) -> None:
        self.setup_train(super()._setup_train)

    def _setup_ddp(self) -> None:
        self.setup_ddp(super()._setup_ddp)

    def _setup_scheduler(self) -> None:
        self.setup_scheduler(super()._setup_scheduler)

    def setup_train(self, base: Callable[[], None]) -> None:
        """Ultralytics' training set-up (`base`): model, loaders, optimizer, EMA, resume state."""
        base()

    def setup_ddp(self, base: Callable[[], None]) -> None:
        """Ultralytics' DDP set-up (`base`): process group and this rank's device."""
        base()

    def setup_scheduler(self, base: Callable[[], None]) -> None:
        """Ultralytics' LR schedule set-up (`base`): `self.lf` and `self.scheduler` (also run again for `time`)."""
        base()


@contextmanager
def ddp_launcher(run: Callable[..., Any]) -> Iterator[None]:
    """Ultralytics' DDP launcher (BaseTrainer.train for several GPUs) runs `run` instead of `subprocess.run`.

    Why a patch: the launcher calls `subprocess.run` on torchrun and offers no hook for its output."""
    from ultralytics.engine import trainer as ultralytics_trainer

    with mock.patch.object(ultralytics_trainer, "subprocess", SimpleNamespace(run=run)):
        yield


@contextmanager
def ddp_wrapper(cls: type) -> Iterator[None]:
    """Ultralytics' set-up wraps the model in `cls` instead of torch's DistributedDataParallel.

    Why a patch: it passes `device_ids=[device.index]`, which torch refuses for a CPU model, and takes no class."""
    from torch import nn

    with mock.patch.object(nn.parallel, "DistributedDataParallel", cls):
        yield


# ----------------------------------------------------------------------------------------------------- model
def known_module(name: str) -> bool:
    """Whether Ultralytics' `parse_model` resolves the module name `name` of a model yaml.

    Why: parse_model looks names up in `ultralytics.nn.tasks`' globals (and nn., torchvision.ops.), with no list."""
    import torchvision
    from torch import nn
    from ultralytics.nn import tasks

    if name.startswith("nn."):
        return hasattr(nn, name[3:])
    if name.startswith("torchvision.ops."):
        return hasattr(torchvision.ops, name[16:])
    return name in vars(tasks)


def place_like(new: Any, old: Any) -> Any:
    """`new` takes `old`'s place in a model built by parse_model: its layer index, inputs, type and parameter count.

    Why: parse_model keeps these on each layer (`i`, `f`, `type`, `np`); the forward pass and the EMA read them."""
    for attr in ("i", "f", "type", "np"):
        if hasattr(old, attr):
            setattr(new, attr, getattr(old, attr))
    return new
