"""Learning without Forgetting: a frozen teacher supervises the head whose labels a batch does not have.

On a detection batch the student's semantic head learns the teacher's soft class maps (KL divergence of the
temperature-softened logits, times T^2); on a segmentation batch its detection head learns the teacher's boxes above
a confidence threshold as pseudo-labels, through the model family's own detection loss. The teacher runs in eval
mode under `torch.no_grad()`: it holds no gradients and its passes touch no BatchNorm statistics, its own or the
student's (it is a separate module: the phase-one model, the EMA, or a checkpoint).
"""

from __future__ import annotations

from copy import deepcopy
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from ultralytics.utils.nms import non_max_suppression
from ultralytics.utils.ops import xyxy2xywh

from yoloseghw.utils.options import TASKS

if TYPE_CHECKING:
    from yoloseghw.nn.tasks import DetSegModel

DISTILL_LOSS = "distill_loss"  # the loss item yoloseg logs for it (train/distill_loss in results.csv)


def frozen_copy(model: DetSegModel) -> DetSegModel:
    """A float eval-mode copy of `model` with every parameter frozen: a teacher that cannot change."""
    teacher = deepcopy(model).float().eval()
    teacher.criterion = None
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class Distillation:
    """The distillation loss term (nn/loss.py's LossTerm) for a 'det' or 'seg' batch; zero on joint batches, which
    carry both labels.

    `teacher` returns the teacher model when called: a frozen copy, or the trainer's current EMA model (which a
    resume or a NaN recovery replaces).
    """

    name = DISTILL_LOSS

    def __init__(self, teacher: Callable[[], DetSegModel], temperature: float, weight: float, pseudo_conf: float):
        self.teacher, self.temperature, self.weight, self.pseudo_conf = teacher, temperature, weight, pseudo_conf

    def heads(self, task: str) -> tuple[str, ...]:
        """Both heads: the one the batch has labels for, and the one the teacher supervises."""
        return TASKS

    def __call__(self, model: DetSegModel, preds: tuple[Any, Any], batch: dict) -> torch.Tensor:
        """`weight` x the term for the head the batch has no labels for."""
        if batch["task"] == "joint":
            return torch.zeros((), device=batch["img"].device)
        det_loss = model.criterion.det
        det_preds, seg_preds = preds
        teacher = self.teacher()
        teacher.eval()  # a module reached through a parent's .train() stays a teacher
        with torch.no_grad():
            t_det, t_seg = teacher.forward_heads(batch["img"], ("seg",) if batch["task"] == "det" else ("det",))
        if batch["task"] == "det":
            student = seg_preds[0] if isinstance(seg_preds, tuple) else seg_preds
            term = soft_target_kl(student, t_seg, self.temperature) * student.shape[0]
        else:
            term = det_loss(det_preds, self.pseudo_labels(teacher, t_det, batch["img"]))[0].sum()
        return self.weight * term

    def pseudo_labels(self, teacher: DetSegModel, out: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The teacher's boxes above `pseudo_conf` as an Ultralytics label batch (normalised xywh boxes)."""
        end2end = bool(getattr(teacher, "end2end", False))
        kept = non_max_suppression(out, self.pseudo_conf, 0.7, nc=teacher.model[-1].nc, end2end=end2end, max_det=300)
        h, w = images.shape[2:]
        scale = torch.tensor([w, h, w, h], device=images.device, dtype=torch.float32)
        boxes = [xyxy2xywh(k[:, :4]) / scale for k in kept]
        return {
            "batch_idx": torch.cat([torch.full((len(k),), i, device=images.device) for i, k in enumerate(kept)]),
            "cls": torch.cat([k[:, 5:6] for k in kept]),
            "bboxes": torch.cat(boxes).clamp(0, 1),
            "img": images,
        }


def soft_target_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean per-pixel KL(teacher || student) of the class distributions softened by `temperature`, times T^2."""
    if teacher.shape[2:] != student.shape[2:]:
        teacher = F.interpolate(teacher, size=student.shape[2:], mode="bilinear", align_corners=False)
    log_p = F.log_softmax(student.float() / temperature, dim=1)
    q = F.softmax(teacher.float() / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="none").sum(1).mean() * temperature**2
