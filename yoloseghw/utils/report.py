"""Rich tables for validation results (per-class detection and segmentation)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from yoloseghw.utils.console import console
from yoloseghw.utils.metrics import DET_KEYS, MIOU, PIXEL_ACC


def print_val_report(result: dict[str, Any]) -> None:
    """Print the per-class tables and the summary of a `YOLOSeg.val` result."""
    metrics, classes = result["metrics"], result["classes"]
    if "det" in classes:
        table = Table(title="Detection (box val set)", title_justify="left")
        for col in ("class", "images", "instances", "precision", "recall", "mAP50", "mAP50-95"):
            table.add_column(col, justify="left" if col == "class" else "right")
        for row in classes["det"]:
            table.add_row(
                row["class"],
                str(row["images"]),
                str(row["instances"]),
                *(f"{row[k]:.3f}" for k in ("precision", "recall", "mAP50", "mAP50-95")),
            )
        table.add_row(
            "[bold]all",
            "",
            "",
            *(f"[bold]{metrics[k]:.3f}" for k in DET_KEYS),
        )
        console.print(table)
    if "seg" in classes:
        table = Table(title="Semantic segmentation (mask val set)", title_justify="left")
        for col in ("class", "images", "pixels", "IoU", "pixel acc"):
            table.add_column(col, justify="left" if col == "class" else "right")
        for row in classes["seg"]:
            table.add_row(
                row["class"], str(row["images"]), str(row["pixels"]), f"{row['IoU']:.3f}", f"{row['pixel_acc']:.3f}"
            )
        table.add_row(
            "[bold]all (mIoU / pixel acc)",
            "",
            "",
            f"[bold]{metrics[MIOU]:.3f}",
            f"[bold]{metrics[PIXEL_ACC]:.3f}",
        )
        console.print(table)
    console.print(
        f"fitness {metrics['fitness']:.4f} (mean of 0.1*mAP50+0.9*mAP50-95 and mIoU over the tasks evaluated)"
    )
