"""results.png: loss and metric curves of both tasks per epoch (from results.csv), with the phase change marked."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

from yoloseghw.utils.metrics import DET_KEYS, SEG_KEYS

PANELS = (
    ("detection losses", ("train/box_loss", "train/cls_loss", "train/dfl_loss", "train/l1_loss")),
    ("segmentation losses", ("train/ce_loss", "train/dice_loss", "train/aux_loss")),
    ("forgetting remedies", ("train/distill_loss", "train/ewc_loss")),
    ("cross-task (--link)", ("train/b2m_loss", "train/m2b_loss")),
    ("detection (box val set)", DET_KEYS),
    ("segmentation (mask val set)", SEG_KEYS),
)


def read_rows(path: Path) -> list[dict[str, float]]:
    """results.csv as a list of {column: float} rows (NaN where a value is missing)."""
    with open(path, newline="") as f:
        return [{k.strip(): _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(value: str | None) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def plot_results(csv_path: Path, path: Path, boundary: int | None = None, on_plot: Callable | None = None) -> None:
    """Plot every epoch of `csv_path` to `path` (the panels whose columns it has: the remedies' losses only with
    --distill / --ewc, the cross-task ones only with --link); `boundary` is the first epoch of phase two (0-based)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_rows(csv_path)
    columns = set(rows[0]) if rows else set()
    panels = [(title, keys) for title, keys in PANELS if columns & set(keys)] or PANELS[:1]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), tight_layout=True)
    for ax, (title, keys) in zip(axes, panels):
        for key in keys:
            points = [(r["epoch"], r[key]) for r in rows if not math.isnan(r.get(key, math.nan))]
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
    if on_plot:
        on_plot(path)
