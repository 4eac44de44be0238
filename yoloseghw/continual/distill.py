"""Learning without Forgetting by dense response distillation: a frozen teacher supervises the head whose labels a
batch does not have, through the outputs that inference reads, never through thresholded pseudo-labels.

- On a detection batch the student's semantic head learns the teacher's soft class maps: KL divergence of the
  temperature-softened logits, times T^2, mean per pixel.
- On a segmentation batch its Detect learns the teacher's responses on the branch that inference reads (YOLO26's
  one-to-many branch unless the head is end-to-end):
  - class scores at every anchor: the Bernoulli KL of the teacher's sigmoid scores to the student's, summed over
    classes and averaged over anchors. Its gradient is sigmoid(student) - sigmoid(teacher): a score is pulled to the
    teacher's, never below it, so an image where the teacher sees nothing teaches only what the teacher believes;
  - boxes at the anchors a per-image statistic of the teacher's scores selects (ERD, CVPR 2022: the anchors whose
    top score is above mean + 2 std of the image's): KL over the DFL bins (v8, 11), or L1 of the box distances in
    stride units (YOLO26, which has no DFL), averaged over the selected anchors.
  Each image's term is normalised per anchor, so its size depends neither on the batch size nor on how many boxes
  the teacher finds; a student equal to its teacher gets a zero term and a zero gradient.
The teacher runs in eval mode under `torch.no_grad()`: it is never updated by it, and its passes touch no BatchNorm
statistics, its own or the student's (it is a separate module: the phase-one model, the starting weights, a
checkpoint, or in `alternate` the EMA).
"""

from __future__ import annotations

from copy import deepcopy
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F

from yoloseghw.utils.options import TASKS

if TYPE_CHECKING:
    from yoloseghw.nn.tasks import DetSegModel

DISTILL_LOSS = "distill_loss"  # the loss item yoloseg logs for it (train/distill_loss in results.csv)
DISTILL_ANCHORS = "distill_anchors"  # anchors whose boxes were distilled, per segmentation image (results.csv)
SELECT_STD = 2.0  # ERD's statistic: anchors whose top teacher score is above mean + SELECT_STD * std of the image's


def frozen_copy(model: DetSegModel) -> DetSegModel:
    """A float eval-mode copy of `model` with every parameter frozen: a teacher that cannot change."""
    teacher = deepcopy(model).float().eval()
    teacher.criterion = None
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def inference_branch(preds: dict, end2end: bool) -> dict[str, torch.Tensor]:
    """The raw Detect outputs ({boxes, scores, feats}) of the branch inference reads."""
    if "one2one" in preds:
        return preds["one2one" if end2end else "one2many"]
    return preds


def selected_anchors(teacher_scores: torch.Tensor) -> torch.Tensor:
    """[B, A] mask of the anchors whose top teacher score is above mean + SELECT_STD * std of its image's (always
    at least the top anchor)."""
    top = teacher_scores.sigmoid().amax(1)
    threshold = top.mean(1, keepdim=True) + SELECT_STD * top.std(1, keepdim=True)
    return (top > threshold) | (top == top.amax(1, keepdim=True))


def score_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Per image [B]: the Bernoulli KL(teacher || student) of the sigmoid scores [B, nc, A], summed over classes and
    averaged over anchors (zero with a zero gradient where the two are equal)."""
    target = teacher.sigmoid()
    kl = F.binary_cross_entropy_with_logits(student, target, reduction="none")
    kl = kl - F.binary_cross_entropy_with_logits(teacher, target, reduction="none")
    return kl.sum(1).mean(1)


def box_distance(student: torch.Tensor, teacher: torch.Tensor, reg_max: int, mask: torch.Tensor) -> torch.Tensor:
    """Per image [B]: the distance of the student's box outputs [B, 4*reg_max, A] to the teacher's at the `mask`
    anchors [B, A], averaged over them: KL over the DFL bins (reg_max > 1) or L1 of the distances (reg_max 1)."""
    b, _, a = student.shape
    if reg_max > 1:
        s, t = student.view(b, 4, reg_max, a), teacher.view(b, 4, reg_max, a)
        per_anchor = F.kl_div(F.log_softmax(s, 2), F.log_softmax(t, 2), reduction="none", log_target=True).sum((1, 2))
    else:
        per_anchor = (student - teacher).abs().sum(1)
    mask = mask.to(per_anchor.dtype)
    return (per_anchor * mask).sum(1) / mask.sum(1).clamp(min=1)


def detection_distillation(
    student: dict, teacher: dict, reg_max: int, end2end: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image [B]: the dense detection term (scores everywhere, boxes at the selected anchors), and [B] the number
    of anchors whose boxes it used."""
    s, t = inference_branch(student, end2end), inference_branch(teacher, end2end)
    mask = selected_anchors(t["scores"].float())
    term = score_kl(s["scores"].float(), t["scores"].float())
    term = term + box_distance(s["boxes"].float(), t["boxes"].float(), reg_max, mask)
    return term, mask.sum(1)


def soft_target_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean per-pixel KL(teacher || student) of the class distributions softened by `temperature`, times T^2."""
    if teacher.shape[2:] != student.shape[2:]:
        teacher = F.interpolate(teacher, size=student.shape[2:], mode="bilinear", align_corners=False)
    log_p = F.log_softmax(student.float() / temperature, dim=1)
    q = F.softmax(teacher.float() / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="none").sum(1).mean() * temperature**2


class Distillation:
    """The distillation loss term (nn/loss.py's LossTerm) for a 'det' or 'seg' batch; zero on joint batches, which
    carry both labels. It also counts the anchors whose boxes it distilled (`anchors` over `images`, per epoch).

    `teacher` returns the teacher model when called: a frozen copy, or the trainer's current EMA model (which a
    resume or a NaN recovery replaces).
    """

    name = DISTILL_LOSS

    def __init__(
        self, teacher: Callable[[], DetSegModel], temperature: float, weight: float, heads: tuple[str, ...] = TASKS
    ):
        """`heads`: the heads the teacher supervises (after one task: that task's head only; the teacher knows
        nothing of the task being learned)."""
        self.teacher, self.temperature, self.weight, self.taught = teacher, temperature, weight, heads
        self.anchors = self.images = 0

    def supervised(self, task: str) -> str | None:
        """The head the teacher supervises on a batch of `task`: the other one, if it is taught; None otherwise."""
        other = {"det": "seg", "seg": "det"}.get(task)
        return other if other in self.taught else None

    def heads(self, task: str) -> tuple[str, ...]:
        """The heads a batch runs for this term: the one it has labels for, and the one the teacher supervises."""
        other = self.supervised(task)
        return tuple(t for t in TASKS if t in (task, other))

    def __call__(self, model: DetSegModel, preds: tuple[Any, Any], batch: dict) -> torch.Tensor:
        """`weight` x the term for the head the batch has no labels for, summed over the batch's images."""
        if self.supervised(batch["task"]) is None:  # a joint batch, or a head the teacher does not know
            return torch.zeros((), device=batch["img"].device)
        det_preds, seg_preds = preds
        teacher = self.teacher()
        teacher.eval()  # a module reached through a parent's .train() stays a teacher
        with torch.no_grad():
            t_det, t_seg = teacher.forward_heads(batch["img"], ("seg",) if batch["task"] == "det" else ("det",))
        if batch["task"] == "det":
            student = seg_preds[0] if isinstance(seg_preds, tuple) else seg_preds
            return self.weight * soft_target_kl(student, t_seg, self.temperature) * student.shape[0]
        detect = model.model[-1]
        term, anchors = detection_distillation(det_preds, t_det[1], detect.reg_max, bool(detect.end2end))
        self.anchors += int(anchors.sum())
        self.images += len(anchors)
        return self.weight * term.sum()

    def anchors_per_image(self) -> float:
        """Mean anchors whose boxes were distilled per segmentation image since the last `reset`."""
        return self.anchors / self.images if self.images else 0.0

    def reset(self) -> None:
        """Start counting anchors afresh (each epoch)."""
        self.anchors = self.images = 0
