"""Metric keys, the ignore value of masks, and the combined fitness: each defined once for the whole package."""

from __future__ import annotations

IGNORE = 255  # mask value that no loss or metric counts
DET_KEYS = ("metrics/precision(B)", "metrics/recall(B)", "metrics/mAP50(B)", "metrics/mAP50-95(B)")
SEG_KEYS = ("metrics/mIoU", "metrics/pixel_acc")
MAP50, MAP50_95, MIOU, PIXEL_ACC = DET_KEYS[2], DET_KEYS[3], SEG_KEYS[0], SEG_KEYS[1]


def combined_fitness(metrics: dict[str, float]) -> float:
    """Model selection score: mean of detection fitness (0.1*mAP50 + 0.9*mAP50-95) and mIoU, over the tasks present."""
    parts = []
    if MAP50_95 in metrics:
        parts.append(0.1 * metrics[MAP50] + 0.9 * metrics[MAP50_95])
    if MIOU in metrics:
        parts.append(metrics[MIOU])
    return sum(parts) / len(parts) if parts else 0.0
