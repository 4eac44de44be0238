"""The output of `yoloseg bench`: its table on screen, bench.csv and bench.png (accuracy against latency)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from yoloseghw.utils.console import console
from yoloseghw.utils.files import atomic_path
from yoloseghw.utils.metrics import MAP50, MAP50_95, MIOU, PIXEL_ACC


def write_atomically(path: Path, data: bytes) -> None:
    """`data` to `path`, never half-written."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def csv_text(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row if k != "change"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot(rows: list[dict], path: Path) -> None:
    """Accuracy against latency: one point per variant, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), tight_layout=True)
    for ax, key, title in ((axes[0], MAP50_95, "detection: mAP50-95"), (axes[1], MIOU, "segmentation: mIoU")):
        for row in rows:
            ax.scatter(row["p50_ms"], row[key], s=40)
            ax.annotate(
                row["variant"], (row["p50_ms"], row[key]), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
        ax.set(xlabel="network latency p50 (ms, batch 1)", ylabel=title.split(": ")[1], title=title)
        ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomically(path, buffer.getvalue())


def print_table(result: dict[str, Any]) -> None:
    """The results as a rich table; under each variant, its changes against the reference (the first row)."""
    from rich.table import Table

    columns = {
        "size_mb": ("MB", "{:.2f}"),
        "params": ("params M", "{:.2f}"),
        "GFLOPs": ("GFLOPs", "{:.2f}"),
        "p50_ms": ("p50 ms", "{:.1f}"),
        "p90_ms": ("p90 ms", "{:.1f}"),
        "images_per_s": ("img/s", "{:.1f}"),
        MAP50_95: ("mAP50-95", "{:.4f}"),
        MAP50: ("mAP50", "{:.4f}"),
        MIOU: ("mIoU", "{:.4f}"),
        PIXEL_ACC: ("pix acc", "{:.4f}"),
    }
    table = Table(title=f"yoloseg bench ({result['machine']}, {result['imgsz']} px)", title_justify="left")
    table.add_column("variant", overflow="fold")
    for label, _ in columns.values():
        table.add_column(label, justify="right", overflow="fold")
    for row in result["variants"] + result["baseline"]:
        shown = {**row, "params": row["params"] / 1e6}
        table.add_row(row["variant"], *(fmt.format(shown[k]) if k in row else "-" for k, (_, fmt) in columns.items()))
        if "change" in row:
            change = row["change"]
            table.add_row("", *(change.get(k, "") for k in columns), style="dim")
    console.print(table)
