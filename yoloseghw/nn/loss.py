"""DetSegLoss: Ultralytics' detection loss on box images and its semantic loss on mask images, never the reverse."""

from __future__ import annotations

from copy import copy
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol

import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.loss import SemanticSegmentationLoss

from yoloseghw.utils.options import TASKS

if TYPE_CHECKING:
    from yoloseghw.nn.tasks import DetSegModel

BATCH_TASKS = {"det": ("det",), "seg": ("seg",), "joint": TASKS}  # batch['task'] -> the heads it trains
SEG_LOSS_NAMES = ("ce_loss", "dice_loss", "aux_loss")


class LossTerm(Protocol):
    """An extra training loss term (continual/ implements distillation and EWC), added by `DetSegModel.loss`.

    Its loss item `name` is logged per image from the first step of a run (zero while the term is not active)."""

    name: str

    def heads(self, task: str) -> tuple[str, ...]:
        """The heads the student must run on a batch of `task` ('det', 'seg' or 'joint') for this term."""

    def __call__(self, model: DetSegModel, preds: tuple[Any, Any], batch: dict) -> torch.Tensor:
        """The term for one batch, scaled as Ultralytics scales its losses (a sum over the batch's images)."""


class DetSegLoss:
    """Routes each loss to the images labelled for it, so a mask-only image never teaches "no objects here".

    The detection criterion is the model family's own (v8 or YOLO26's end-to-end), built as `DetectionModel` builds
    it (it reads `model.class_weights`); the semantic one is `SemanticSegmentationLoss` on the semantic head with
    `model.seg_class_weights`. Loss items always carry every name of both tasks, as Ultralytics' trainer expects a
    fixed set; the task a batch does not train repeats its last value, so running means stay per task. The names of
    the model's extra loss terms (`model.loss_term_names`) are groups of one item each; `DetSegModel.loss` adds them.
    """

    def __init__(self, model: DetSegModel):
        self.det = DetectionModel.init_criterion(model)
        seg_args = copy(model.args) if not isinstance(model.args, dict) else SimpleNamespace(**model.args)
        seg_args.data = getattr(model, "seg_data_yaml", "")  # Ultralytics picks Cityscapes weights by data name
        weights = getattr(model, "seg_class_weights", None)
        owner = SimpleNamespace(
            model=[model.semantic], parameters=model.parameters, args=seg_args, class_weights=weights
        )
        self.seg = SemanticSegmentationLoss(owner)
        self.seg_weight = float(getattr(model, "seg_weight", 1.0))
        det_names = getattr(self.det, "loss_names", None) or self.det.one2one.loss_names
        self.names = {"det": tuple(det_names), "seg": SEG_LOSS_NAMES}
        device = next(model.parameters()).device
        self.last = {name: torch.zeros((), device=device) for names in self.names.values() for name in names}
        self.names.update({name: (name,) for name in getattr(model, "loss_term_names", ())})

    def __call__(self, preds: tuple[Any, Any], batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss to backpropagate, loss items of both tasks) for a 'det', 'seg' or 'joint' batch."""
        det_preds, seg_preds = preds
        total = None
        for task in BATCH_TASKS[batch["task"]]:
            if task == "det":
                loss, items = self.det(det_preds, batch)
                loss = loss.sum()
            else:
                loss, items = self.seg(seg_preds, batch)
                loss = self.seg_weight * loss
            total = loss if total is None else total + loss
            self.last.update({k: v.detach() for k, v in items.items()})
        return total, dict(self.last)

    @property
    def updates(self) -> int:
        """Epochs counted by YOLO26's one-to-many decay (0 for other families)."""
        return getattr(self.det, "updates", 0)

    @updates.setter
    def updates(self, value: int) -> None:
        if hasattr(self.det, "updates"):
            self.det.updates = value

    def update(self) -> None:
        """Once per epoch, as Ultralytics' trainer calls it: YOLO26 decays its one-to-many loss weight."""
        if hasattr(self.det, "update"):
            self.det.update()
