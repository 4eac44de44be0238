"""Agreement of two predictions of the same images (e.g. PyTorch vs its ONNX export): boxes and mask pixels."""

from __future__ import annotations

from typing import Any

from ultralytics.utils.metrics import box_iou

from yoloseghw.engine.results import DetSegResult

BOX_IOU = 0.99  # a box "agrees" when the other side has one of the same class overlapping it this much
MASK_AGREEMENT = 0.995  # share of identical class-map pixels required
CONF_MARGIN = 1e-3  # reference boxes this close to the threshold are not counted (may fall either side)


def compare_predictions(reference: list[DetSegResult], other: list[DetSegResult], min_conf: float) -> dict[str, Any]:
    """Match every reference box with confidence >= `min_conf` to the other side's best-overlapping box.

    Reference boxes within CONF_MARGIN of `min_conf` are not counted, so a score that differs in the last
    decimals cannot decide the result. Returns counts, the lowest IoU among matched boxes, the share of boxes whose
    match has the same class, and the share of identical mask pixels.
    """
    if len(reference) != len(other):
        raise ValueError(f"{len(reference)} reference results but {len(other)} others")
    counted = matched = same_class = pixels = equal = 0
    lowest_iou = 1.0
    for a, b in zip(reference, other):
        equal += int((a.semantic_mask == b.semantic_mask).sum())
        pixels += a.semantic_mask.size
        keep = a.boxes.conf >= min_conf + CONF_MARGIN
        boxes_a, cls_a = a.boxes.xyxy[keep], a.boxes.cls[keep]
        counted += len(boxes_a)
        if not len(boxes_a) or not len(b.boxes):
            continue
        iou = box_iou(boxes_a, b.boxes.xyxy)
        best, index = iou.max(1)
        hit = best > BOX_IOU
        matched += int(hit.sum())
        same_class += int((b.boxes.cls[index][hit] == cls_a[hit]).sum())
        if hit.any():
            lowest_iou = min(lowest_iou, float(best[hit].min()))
    return {
        "images": len(reference),
        "boxes": counted,
        "boxes_matched": matched,
        "box_match_rate": matched / counted if counted else 1.0,
        "class_agreement": same_class / matched if matched else 1.0,
        "lowest_matched_iou": lowest_iou if matched else None,
        "mask_agreement": equal / pixels if pixels else 1.0,
    }


def agrees(report: dict[str, Any]) -> bool:
    """Every counted box matched with the same class, and enough identical mask pixels."""
    return (
        report["box_match_rate"] == 1.0
        and report["class_agreement"] == 1.0
        and report["mask_agreement"] >= MASK_AGREEMENT
    )
