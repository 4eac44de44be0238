"""DetSegLoss: Ultralytics' detection loss on box images and its semantic loss on mask images, never the reverse."""

from __future__ import annotations

from copy import copy
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.loss import SemanticSegmentationLoss

from yoloseghw.continual.distill import DISTILL_LOSS
from yoloseghw.continual.ewc import EWC_LOSS

if TYPE_CHECKING:
    from yoloseghw.continual.distill import Distillation
    from yoloseghw.nn.tasks import DetSegModel

TASKS = ("det", "seg")
BATCH_TASKS = {"det": ("det",), "seg": ("seg",), "joint": TASKS}  # batch['task'] -> the heads it trains
SEG_LOSS_NAMES = ("ce_loss", "dice_loss", "aux_loss")


class DetSegLoss:
    """Routes each loss to the images labelled for it, so a mask-only image never teaches "no objects here".

    The detection criterion is the model family's own (v8 or YOLO26's end-to-end), built as `DetectionModel` builds
    it (it reads `model.class_weights`); the semantic one is `SemanticSegmentationLoss` on the semantic head with
    `model.seg_class_weights`. Loss items always carry every name of both tasks, as Ultralytics' trainer expects a
    fixed set; the task a batch does not train repeats its last value, so running means stay per task. With
    `model.distill` the items carry `distill_loss` too (group 'distill'), zero on steps without a teacher; with
    `model.ewc_strength`, `ewc_loss` (group 'ewc').
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
        if getattr(model, "distill", False):
            self.names["distill"] = (DISTILL_LOSS,)
        if getattr(model, "ewc_strength", 0):  # the term itself is added by DetSegModel.loss
            self.names["ewc"] = (EWC_LOSS,)
        device = next(model.parameters()).device
        self.last = {name: torch.zeros((), device=device) for names in self.names.values() for name in names}

    def __call__(
        self, preds: tuple[Any, Any], batch: dict, distillation: Distillation | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss to backpropagate, loss items of both tasks) for a 'det', 'seg' or 'joint' batch, plus the
        `distillation` term for the head the batch has no labels for."""
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
        if "distill" in self.names:
            term = torch.zeros((), device=total.device)
            if distillation is not None and batch["task"] != "joint":
                term = distillation(self.det, preds, batch)
            total = total + term
            self.last[DISTILL_LOSS] = term.detach() / len(batch["img"])  # per image, as Ultralytics logs its items
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
