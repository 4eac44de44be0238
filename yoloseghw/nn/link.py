"""Cross-task supervision for the classes both datasets share (`--link car=car,person=pedestrian`): each dataset's
labels teach the other head, for the linked classes only. Two loss terms (nn/loss.py's LossTerm), one per direction:

- **Boxes teach masks** (`box2mask_loss`, on detection batches). For a semantic class linked to detection classes,
  its probability map is supervised by the image's boxes of those classes with BoxInst's two losses (nn/boxinst.py):
  inside each box, a projection (multiple-instance) loss, and a colour-affinity loss that keeps the mask to the
  object's colour edges; outside every such box, the class is absent (a box set labels all its instances).
- **Masks teach boxes** (`mask2box_loss`, on segmentation batches). For a detection class linked to a semantic class:
  a confident box of that class (score above CONFIDENT) whose area holds almost none of the class's pixels (under
  MAX_OVERLAP of its labelled pixels) is pushed to "not this class". Connected components of the class's mask that
  pass a size and fill test (so that two touching instances, merged into one component, are never taken for one)
  become pseudo-boxes: Ultralytics' task-aligned assigner (the detection loss's own, per branch) picks their anchors,
  which learn the box through that loss's own box terms, and the class (towards their box's IoU) on that class's
  channel only (on the union of the channels of all the detection classes linked to the semantic class, where
  several are: `car=car,bus=car,truck=car`, for a mask set whose car holds buses and trucks too). That class term
  runs through a copy of the one-to-many class branch whose parameters are detached (`feature_scores`): it teaches
  the features (neck and backbone) to carry the class, and leaves the class branch, the one that scores boxes, to
  the box set; the one-to-one branch (YOLO26), whose features Detect detaches, learns the box only. Why: trained
  through the class branch itself, the car channel learned the mask set's cars and fired on the box set's other
  vehicles (docs/benchmarks.md, "--link"). The anchors a box label set would make negatives of the class are taught
  "not this class" (on the class branch's own scores) as the detection loss teaches them: those centred on a
  labelled pixel outside the bounding box of every component of the class (of any size), where no box of the class
  could be and the assigner could not pick them. Anchors centred on unlabelled pixels (255) or inside a component's
  bounding box that is no pseudo-box get no class signal.

Only linked classes are touched: an unlinked semantic class (its logit) and an unlinked detection class (its score
channel) get exactly zero gradient from the other dataset's images. The probability of a linked semantic class is
its softmax probability with the other logits detached, for that reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call
from ultralytics.utils.metrics import bbox_iou
from ultralytics.utils.tal import dist2bbox, make_anchors

from yoloseghw.nn.boxinst import EPS, cells, lab_image, pairwise_loss, projection_loss
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.metrics import IGNORE
from yoloseghw.utils.ultralytics import assigned_box_loss, class_gain, detection_loss_branches

if TYPE_CHECKING:
    from yoloseghw.nn.tasks import DetSegModel

BOX2MASK_LOSS = "b2m_loss"  # loss items: boxes-to-masks, masks-to-boxes (train/b2m_loss, train/m2b_loss)
MASK2BOX_LOSS = "m2b_loss"
LINK_TERM_TASKS = {BOX2MASK_LOSS: "det", MASK2BOX_LOSS: "seg"}  # each term's batches (its running mean is over them)
MIN_AREA = 64  # pixels (input resolution) a component needs to become a pseudo-box
MIN_FILL = 0.5  # the share of its bounding box a component must exceed (two touching instances fill less)
CONFIDENT = 0.25  # the score above which a box of a linked class counts as found (Ultralytics' predict conf)
MAX_OVERLAP = 0.05  # a confident box with less than this share of its labelled pixels on the class is wrong
MIN_LABELLED = 0.5  # ... judged only where at least this share of the box's pixels is labelled (not 255)


def parse_link(spec: str | dict | None, det_names: dict[int, str], seg_names: dict[int, str]) -> dict[int, int]:
    """{detection class id: semantic class id} from `--link`: 'auto' (the classes whose names are the same, case
    aside), or 'det=seg,...' by name (several detection classes may link to one semantic class). UserInputError for
    an unknown name or an empty link."""
    if not spec:
        return {}
    if isinstance(spec, dict):
        return {int(k): int(v) for k, v in spec.items()}
    det = {str(n).lower(): i for i, n in det_names.items()}
    seg = {str(n).lower(): i for i, n in seg_names.items()}
    if str(spec).strip().lower() == "auto":
        link = {det[n]: seg[n] for n in det if n in seg}
        if not link:
            raise UserInputError("--link auto: the two datasets share no class name; link them by name (car=car)")
        return link
    link = {}
    for pair in str(spec).split(","):
        d, sep, s = (x.strip().lower() for x in pair.partition("="))
        if not sep or not d or not s:
            raise UserInputError(f"--link: expected det=seg pairs like car=car,person=pedestrian, got '{pair}'")
        if d not in det:
            raise UserInputError(f"--link: no detection class '{d}' (classes: {_listed(det_names)})")
        if s not in seg:
            raise UserInputError(f"--link: no semantic class '{s}' (classes: {_listed(seg_names)})")
        link[det[d]] = seg[s]
    return link


def _listed(names: dict[int, str]) -> str:
    return ", ".join(map(str, names.values()))


def describe(link: dict[int, int], det_names: dict[int, str], seg_names: dict[int, str]) -> str:
    """The link in words, 'car=car, person=pedestrian' (what `info` and the metadata show)."""
    return ", ".join(f"{det_names[d]}={seg_names[s]}" for d, s in sorted(link.items()))


def link_entry(model: Any) -> dict[str, str]:
    """{'link': its words} for a model trained with `--link` ({} otherwise): the key `info` and the metadata show."""
    link = getattr(model, "link", None)
    return {"link": describe(link, model.det_names, model.seg_names)} if link else {}


def linked_probability(logits: torch.Tensor, cls: int) -> torch.Tensor:
    """[B, h, w] softmax probability of class `cls` from logits [B, nc, h, w], the other logits detached (so that
    only this class's logit gets a gradient)."""
    others = torch.cat([logits[:, :cls], logits[:, cls + 1 :]], 1).detach()
    return torch.sigmoid(logits[:, cls] - torch.logsumexp(others, 1))


def link_terms(link: dict[int, int], weights: tuple[float, float]) -> list[BoxesTeachMasks | MasksTeachBoxes]:
    """The loss terms for `link`, weighted (box-to-mask, mask-to-box) as `--link-weight` gives. A direction of weight
    0 gets no term, so its batches do not run the other head at all (its loss item stays 0)."""
    terms = (BoxesTeachMasks(link, weights[0]), MasksTeachBoxes(link, weights[1]))
    return [term for term in terms if term.weight > 0]


class LinkTerm:
    """What both cross-task terms share (a LossTerm): the link, its weight, and the batches of `task` it runs on."""

    name: str
    task: str  # the dataset whose batches the term teaches the other head on

    def __init__(self, link: dict[int, int], weight: float):
        self.link, self.weight = link, weight
        self.by_seg: dict[int, list[int]] = {}  # semantic class -> the detection classes linked to it
        for d, s in link.items():
            self.by_seg.setdefault(s, []).append(d)

    def heads(self, task: str) -> tuple[str, ...]:
        return ("det", "seg") if task == self.task else ()


class BoxesTeachMasks(LinkTerm):
    """The box-to-mask term on detection batches: see the module docstring."""

    name, task = BOX2MASK_LOSS, "det"

    def __call__(self, model: DetSegModel, preds: tuple[Any, Any], batch: dict) -> torch.Tensor:
        """`weight` x the term, summed over the batch's images (each image's term a mean over its boxes and cells)."""
        logits = preds[1][0] if isinstance(preds[1], tuple) else preds[1]
        if batch["task"] != "det" or logits is None:
            return torch.zeros((), device=batch["img"].device)
        b, _, h, w = logits.shape
        idx, cls, boxes = batch["batch_idx"].long(), batch["cls"].view(-1).long(), batch["bboxes"]
        labs = [lab_image(batch["img"][i], h, w) for i in range(b)]
        total = logits.new_zeros(())
        for s, dets in self.by_seg.items():
            prob = linked_probability(logits.float(), s)
            for i in range(b):
                mine = (idx == i) & torch.isin(cls, torch.tensor(dets, device=cls.device))
                outside = torch.ones(h, w, dtype=torch.bool, device=logits.device)
                inside = torch.zeros_like(outside)
                projections = []
                for box in boxes[mine]:
                    x0, y0, x1, y1 = cells(box, h, w)
                    outside[y0:y1, x0:x1] = False
                    x0, y0, x1, y1 = cells(box, h, w, inner=True)
                    inside[y0:y1, x0:x1] = True
                    projections.append(projection_loss(prob[i], (x0, y0, x1, y1)))
                terms = []  # each part an equal share of the image's term, however many boxes it holds
                if projections:  # the boxes' projections, and the colour affinity (the mask follows colour edges)
                    terms += [torch.stack(projections).mean(), pairwise_loss(prob[i], labs[i], inside)]
                if outside.any():  # the class is absent outside every box of the classes linked to it
                    terms.append(-torch.log((1 - prob[i][outside]).clamp(min=EPS)).mean())
                total = total + torch.stack(terms).mean()
        return self.weight * total / max(len(self.by_seg), 1)


def component_stats(mask: np.ndarray, cls: int) -> np.ndarray:
    """[n, 5] (x, y, width, height, area in pixels) of each 8-connected component of class `cls` in a label map."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((mask == cls).astype(np.uint8), connectivity=8)
    return stats[1:count]


def components(mask: np.ndarray, cls: int, min_area: float = MIN_AREA) -> list[tuple[int, int, int, int]]:
    """The pseudo-boxes (x0, y0, x1, y1 pixels) of class `cls` in a label map: its connected components of at least
    `min_area` pixels that fill more than MIN_FILL of their bounding box (instances that touch merge into one
    component, which fills less, and is never taken for one instance)."""
    boxes = []
    for x, y, bw, bh, area in component_stats(mask, cls):
        if area >= min_area and area / float(bw * bh) > MIN_FILL:
            boxes.append((int(x), int(y), int(x + bw), int(y + bh)))
    return boxes


def background(mask: np.ndarray, cls: int) -> np.ndarray:
    """[H, W] True where a label map is labelled (not IGNORE) and outside the bounding box of every component of
    class `cls`, of any size or fill: where a box label set would hold no box of the class, so that an anchor centred
    there is one of its negatives, as Ultralytics' assigner makes it on detection images."""
    free = mask != IGNORE
    for x, y, bw, bh, _ in component_stats(mask, cls):
        free[y : y + bh, x : x + bw] = False
    return free


class MasksTeachBoxes(LinkTerm):
    """The mask-to-box term on segmentation batches: see the module docstring."""

    name, task = MASK2BOX_LOSS, "seg"

    def __call__(self, model: DetSegModel, preds: tuple[Any, Any], batch: dict) -> torch.Tensor:
        """`weight` x the term, summed over the batch's images. Each branch Detect trains (YOLO26: one-to-many and
        one-to-one) counts with the gain the model's own detection loss gives it at this epoch."""
        det = preds[0]
        if batch["task"] != "seg" or det is None:
            return torch.zeros((), device=batch["img"].device)
        detect = model.model[-1]
        labels = batch["semantic_mask"].to(detect.stride.device)
        masks = labels.cpu().numpy()
        pseudo = [self.pseudo_boxes(mask) for mask in masks]
        free = torch.from_numpy(np.stack([[background(m, s) for s in self.by_seg] for m in masks])).to(labels.device)
        total = labels.new_zeros((), dtype=torch.float)
        for k, (gain, criterion, out) in enumerate(detection_loss_branches(model.built_criterion().det, det)):
            points, steps = make_anchors(out["feats"], detect.stride, 0.5)  # [anchors, 2] in strides, [anchors, 1]
            centres = points * steps  # [anchors, 2] pixels
            xyxy = pixel_boxes(out, detect, points, steps)
            push = self.push_term(out["scores"].float(), xyxy, labels)
            negatives = self.negatives(free, centres, out["scores"].shape[1])
            # the one-to-many branch (the first) only: the one-to-one branch's features are detached (YOLO26)
            cls_head = detect.one2many["cls_head"] if k == 0 else None
            positives = pseudo_box_term(criterion, out, xyxy, centres, pseudo, negatives, labels.shape[-2:], cls_head)
            total = total + gain * (push + positives)
        return self.weight * total

    def negatives(self, free: torch.Tensor, centres: torch.Tensor, nc: int) -> torch.Tensor:
        """[B, nc, anchors] True where an anchor is a negative of a linked detection class: its centre (`centres`
        [anchors, 2], x y pixels) on the background (`free` [B, linked semantic classes, H, W], see `background`) of
        the semantic class linked to it."""
        h, w = free.shape[-2:]
        x, y = centres[:, 0].long().clamp(0, w - 1), centres[:, 1].long().clamp(0, h - 1)
        out = torch.zeros(free.shape[0], nc, len(centres), dtype=torch.bool, device=free.device)
        for k, dets in enumerate(self.by_seg.values()):
            out[:, dets] = free[:, k, y, x][:, None]
        return out

    def pseudo_boxes(self, mask: np.ndarray) -> list[tuple[tuple[int, ...], tuple[int, int, int, int]]]:
        """(detection classes, box) for the separable components of each linked semantic class: the classes are all
        those linked to it (`car=car,truck=car`: a component of car is a car or a truck, see `pseudo_box_term`)."""
        return [(tuple(dets), box) for s, dets in self.by_seg.items() for box in components(mask, s)]

    def push_term(self, scores: torch.Tensor, xyxy: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The push to "not this class" of the confident boxes of a linked class over (almost) none of its pixels,
        on one branch's scores [B, nc, anchors] and boxes [B, anchors, 4] (pixels) over label maps [B, H, W], summed
        over the images (each image's term a mean over its pushed scores)."""
        total = scores.new_zeros(())
        for i in range(scores.shape[0]):
            terms, cover = [], None
            for s, dets in self.by_seg.items():
                probs = scores[i][dets].detach().sigmoid()
                if not (probs > CONFIDENT).any():
                    continue
                cover = cover or BoxCover(labels[i], xyxy[i])  # counted once per image, for every linked class
                wrong = cover.wrong(probs, s)
                if wrong.any():
                    pushed = scores[i][dets][wrong]
                    terms.append(F.binary_cross_entropy_with_logits(pushed, torch.zeros_like(pushed)))
            if terms:
                total = total + torch.stack(terms).mean()
        return total


def pseudo_box_term(
    criterion: Any,
    out: dict,
    xyxy: torch.Tensor,
    centres: torch.Tensor,
    pseudo: list[list[tuple[tuple[int, ...], tuple[int, int, int, int]]]],
    negatives: torch.Tensor,
    size: tuple[int, int],
    cls_head: Any = None,
) -> torch.Tensor:
    """The pseudo-boxes as detection targets of one branch, assigned to anchors by the branch's own task-aligned
    assigner and its own box loss (Ultralytics' v8DetectionLoss, with its gains), summed over the images as its loss
    is. The class term is BCE, as Ultralytics' class loss is, but only on the assigned anchors' own classes (towards
    the IoU of their box with the pseudo-box, on `feature_scores` of `cls_head`) and on the `negatives` (towards 0,
    on the branch's own scores, so that the class branch learns where the class is not): Ultralytics' class loss
    would also teach every other class, and every anchor near an instance too small or too merged to be a
    pseudo-box, "no object", and a mask image may not teach that. Both sums are normalised by the IoUs' sum (at
    least 1), as Ultralytics normalises by its targets' sum.

    A pseudo-box of a semantic class that several detection classes link to (`car=car,truck=car`) is one of them,
    and the mask cannot tell which: the assigner takes the one the branch scores highest at the anchors inside the
    box, and the class term teaches their union (the probability that the anchor is any of them, 1 - prod(1 - p)),
    so that the detector's own scores, learned from the box set, decide which of them rises.

    Args:
        criterion: the branch's Ultralytics detection loss (v8DetectionLoss).
        out: the branch's outputs ("boxes", "scores" [B, nc, anchors], "feats").
        xyxy: [B, anchors, 4] the branch's decoded boxes in pixels (detached).
        centres: [anchors, 2] the anchors' centres (x, y pixels).
        pseudo: each image's (detection classes, (x0, y0, x1, y1) pixels).
        negatives: [B, nc, anchors] the scores taught "not this class" (MasksTeachBoxes.negatives).
        size: the label maps' (H, W), the network input's.
        cls_head: the class branch whose `feature_scores` of the branch's features the class term is taken on
            (computed only where an image holds a pseudo-box), or None for the box terms and the negatives alone.
    """
    scores = out["scores"].float()
    background = scores[negatives]
    negative = F.binary_cross_entropy_with_logits(background, torch.zeros_like(background), reduction="sum")
    rows = [(i, dets, box) for i, boxes in enumerate(pseudo) for dets, box in boxes]
    if not rows:
        return class_gain(criterion) * negative * len(pseudo)
    targets = xyxy.new_tensor(
        [[i, likeliest(scores[i], centres, dets, box), *normalised_xywh(box, size)] for i, dets, box in rows]
    )
    batch = {"batch_idx": targets[:, 0], "cls": targets[:, 1:2], "bboxes": targets[:, 2:]}
    fg, gt_index, target_boxes, box_loss, cls_gain = assigned_box_loss(criterion, out, batch)
    image, anchor = fg.nonzero(as_tuple=True)
    per_image = [[dets for j, dets, _ in rows if j == i] for i in range(len(pseudo))]  # as Ultralytics pads them
    members = [per_image[i][k] for i, k in zip(image.tolist(), gt_index[image, anchor].tolist())]
    width = max((len(m) for m in members), default=1)
    classes = torch.tensor([list(m) + [m[0]] * (width - len(m)) for m in members], dtype=torch.long).view(-1, width)
    held = torch.tensor([[k < len(m) for k in range(width)] for m in members], dtype=torch.bool).view(-1, width)
    classes, held = classes.to(image.device), held.to(image.device)
    quality = bbox_iou(xyxy[image, anchor], target_boxes[image, anchor], xywh=False).view(-1).clamp(min=0).detach()
    positive = 0.0
    if cls_head is not None:
        cls_scores = feature_scores(cls_head, out["feats"])
        logits = cls_scores[image[:, None], classes, anchor[:, None]]  # [assigned anchors, the most classes of a box]
        positive = union_bce(logits, held, quality)
    return (box_loss + cls_gain * (positive + negative) / quality.sum().clamp(min=1)) * len(pseudo)


def feature_scores(cls_head: Any, feats: list[torch.Tensor]) -> torch.Tensor:
    """[B, nc, anchors] class logits of `feats` through the class branch with its parameters detached (and its
    BatchNorm statistics left alone): the loss on them trains the features, not the class branch."""
    outs = []
    for head, x in zip(cls_head, feats):
        state = {n: p.detach() for n, p in head.named_parameters()} | {n: b.clone() for n, b in head.named_buffers()}
        outs.append(functional_call(head, state, (x,)).flatten(2))
    return torch.cat(outs, -1).float()


def normalised_xywh(box: tuple[int, int, int, int], size: tuple[int, int]) -> list[float]:
    """A box (x0, y0, x1, y1 pixels) as Ultralytics' labels give it: centre and size over the image's (H, W)."""
    (x0, y0, x1, y1), (h, w) = box, size
    return [(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h]


def likeliest(scores: torch.Tensor, centres: torch.Tensor, dets: tuple[int, ...], box: tuple[int, ...]) -> int:
    """Of the detection classes `dets` a pseudo-box may be, the one whose highest score ([nc, anchors] logits, not
    differentiated) at the anchors centred inside `box` (x0, y0, x1, y1 pixels) is highest (the first where no
    anchor is inside, or where there is only one)."""
    if len(dets) == 1:
        return dets[0]
    x0, y0, x1, y1 = box
    inside = (centres[:, 0] >= x0) & (centres[:, 0] < x1) & (centres[:, 1] >= y0) & (centres[:, 1] < y1)
    if not inside.any():
        return dets[0]
    best = scores.detach()[list(dets)][:, inside].amax(1)
    return dets[int(best.argmax())]


def union_bce(logits: torch.Tensor, held: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed BCE of the probability that an anchor is any of its classes, 1 - prod(1 - sigmoid(logit)), towards
    `target` [n]: `logits` [n, k] with `held` [n, k] False where a row has fewer than k classes. With one class per
    row it is BCE with logits (and computed as that)."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], target, reduction="sum")
    log_none = -(F.softplus(logits) * held).sum(1)  # log prod(1 - p)
    log_any = torch.log((-torch.expm1(log_none)).clamp(min=torch.finfo(logits.dtype).tiny))
    return -(target * log_any + (1 - target) * log_none).sum()


class BoxCover:
    """The pixels of one label map [H, W] inside each of n boxes [n, 4] (pixels, clipped to the map), counted from
    integral images: how many are labelled (not IGNORE), whether that is enough to judge the box (MIN_LABELLED of
    its area), and how many belong to a class."""

    def __init__(self, labels: torch.Tensor, xyxy: torch.Tensor):
        h, w = labels.shape
        self.labels = labels
        self.x0, self.x1 = (xyxy[:, [0, 2]].round().long().clamp(0, w)).unbind(1)
        self.y0, self.y1 = (xyxy[:, [1, 3]].round().long().clamp(0, h)).unbind(1)
        area = ((self.x1 - self.x0) * (self.y1 - self.y0)).float()
        self.labelled = self.sums(labels != IGNORE)
        self.judged = self.labelled >= MIN_LABELLED * area.clamp(min=1)

    def sums(self, values: torch.Tensor) -> torch.Tensor:
        """[n] the sum of a map [H, W] inside each box."""
        integral = F.pad(values.float().cumsum(0).cumsum(1), (1, 0, 1, 0))
        x0, y0, x1, y1 = self.x0, self.y0, self.x1, self.y1
        return integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]

    def wrong(self, probs: torch.Tensor, cls: int) -> torch.Tensor:
        """[k, n] True where a box is confident (probs [k, n] > CONFIDENT), judged, and holds less than MAX_OVERLAP
        of class `cls` among its labelled pixels."""
        off = self.judged & (self.sums(self.labels == cls) < MAX_OVERLAP * self.labelled)
        return (probs > CONFIDENT) & off


def pixel_boxes(out: dict, detect: Any, points: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """[B, anchors, 4] a branch's boxes (x0, y0, x1, y1 pixels, detached) as Detect decodes them: Ultralytics'
    dist2bbox over its DFL's distances, from the anchor `points` (in strides) and `steps` that make_anchors gives."""
    ltrb = detect.dfl(out["boxes"].detach().float())
    return (dist2bbox(ltrb, points.T.unsqueeze(0), xywh=False, dim=1) * steps.T).permute(0, 2, 1)
