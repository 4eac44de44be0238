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


def naive_row(rows: list[dict]) -> dict:
    """The plain model every variant is measured against: its ONNX Runtime FP32 export when benched, else the
    PyTorch checkpoint."""
    return next((r for r in rows if r["variant"] == "ONNX FP32"), rows[0])


def plot(rows: list[dict], path: Path) -> None:
    """Each task's accuracy as a share of the plain model's against the speed-up over it, one point per variant
    (the plain model marked); the accuracy axis spans at least 90-102%, so that noise of a thousandth does not look
    like a cliff."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    naive = naive_row(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), tight_layout=True)
    for ax, key, title in ((axes[0], MAP50_95, "detection: mAP50-95"), (axes[1], MIOU, "segmentation: mIoU")):
        shares = []
        for row in rows:
            x, y = naive["p50_ms"] / row["p50_ms"], 100 * row[key] / naive[key] if naive[key] else 100.0
            shares.append(y)
            plain = row is naive
            ax.scatter(x, y, s=90 if plain else 40, marker="*" if plain else "o", color="k" if plain else None)
            label = f"{row['variant']} (plain)" if plain else row["variant"]
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4 + 9 * (len(shares) % 3)), fontsize=8)
        ax.axhline(100, color="grey", linewidth=0.8)
        ax.axvline(1, color="grey", linewidth=0.8)
        ax.set_ylim(min(90.0, min(shares) - 2), max(102.0, max(shares) + 2))
        ax.set(
            xlabel=f"speed-up over {naive['variant']} (network p50, batch 1)",
            ylabel=f"{title.split(': ')[1]}, % of {naive['variant']}",
            title=title,
        )
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
