"""results.png: loss and metric curves of both tasks per epoch, with the phase boundary marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PANELS = (
    ("detection losses", ("train/det/box_loss", "train/det/cls_loss", "train/det/dfl_loss", "train/det/l1_loss")),
    ("segmentation losses", ("train/seg/ce_loss", "train/seg/dice_loss", "train/seg/aux_loss")),
    ("detection mAP", ("metrics/mAP50(B)", "metrics/mAP50-95(B)", "metrics/precision(B)", "metrics/recall(B)")),
    ("segmentation", ("metrics/mIoU", "metrics/pixel_acc")),
)


def plot_results(rows: list[dict[str, Any]], path: Path, boundary: int | None = None) -> None:
    """Plot the per-epoch `rows` (as in results.csv) to `path`; `boundary` is the first epoch of phase two (0-based)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.4), tight_layout=True)
    for ax, (title, keys) in zip(axes, PANELS):
        for key in keys:
            points = [(r["epoch"], r[key]) for r in rows if r.get(key) not in (None, "")]
            if points:
                x, y = zip(*points)
                ax.plot(x, y, marker=".", label=key.split("/")[-1])
        if boundary is not None:
            ax.axvline(boundary + 0.5, color="grey", linestyle="--", linewidth=1, label="phase change")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize=7)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
