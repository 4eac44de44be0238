"""The forgetting report of a run: each task's validation metric at its peak, at the end of its phase and at the
end of the run, with the share of the peak it kept.

Both val sets are validated after every epoch, whichever task trained in it, so the metric of the task that is not
training is measured all along (from results.csv: the EMA model that each epoch validated). In `phased`, the first
task's figures are the ones that tell forgetting: its peak during phase one, its value when phase one ended, its
value at the end of the run. In `alternate` and `joint` each task gets its peak and its final value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from yoloseghw.utils.console import console
from yoloseghw.utils.files import atomic_path
from yoloseghw.utils.metrics import MAP50_95, MIOU

TASK_METRIC = {"det": MAP50_95, "seg": MIOU}  # the metric that stands for each task
REPORT_FILE = "forgetting.json"


def forgetting_report(
    columns: dict[str, list],
    schedule: str,
    boundary: int | None,
    order: tuple[str, str],
    start: dict[str, float] | None = None,
) -> dict:
    """The report from results.csv's `columns` (Ultralytics' read_results_csv); `boundary` is the number of epochs
    of phase one (phased only), `order` the tasks in the order they were learned, `start` the starting weights'
    metrics (schedule `single`, where `order[0]` was learned before this run)."""
    epochs = [int(e) for e in columns.get("epoch", [])]
    report: dict[str, Any] = {"schedule": schedule, "epochs": len(epochs), "tasks": {}}
    if schedule == "phased":
        report["phase_one_epochs"], report["order"] = boundary, list(order)
    elif schedule == "single":
        report["order"] = list(order)
    for task, key in TASK_METRIC.items():
        values = [float(v) for v in columns.get(key, [])]
        if not values:
            continue
        first = schedule in ("phased", "single") and task == order[0]
        if schedule == "single" and first:  # learned before this run: its peak is what the starting weights knew
            span, labels = [float(start[key])], [0]
        else:  # the first task's peak is the one it reached in its phase
            span, labels = (values[:boundary] if first else values), epochs
        peak = max(range(len(span)), key=span.__getitem__)
        row = {"metric": key, "peak": span[peak], "peak_epoch": labels[peak], "end_of_run": values[-1]}
        if first:  # its value when its phase ended (`single`: when this run started)
            row["end_of_phase"] = span[-1]
        row["retention"] = values[-1] / span[peak] if span[peak] > 0 else None
        report["tasks"][task] = row
    return report


def write_report(report: dict, save_dir: Path) -> Path:
    """forgetting.json in the run folder (atomically)."""
    path = Path(save_dir) / REPORT_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return path


def print_report(report: dict) -> None:
    """The report as a table in the log."""
    schedule = report["schedule"]
    sequential = schedule in ("phased", "single")
    title = f"Forgetting ({schedule}" + (
        f", phase one {report['phase_one_epochs']} epochs)" if schedule == "phased" else ")"
    )
    first_end = "end of phase one" if schedule == "phased" else "at start"
    table = Table(title=title, title_justify="left")
    for col in ("task", "metric", "peak (epoch)", *((first_end,) if sequential else ()), "end of run", "kept"):
        table.add_column(col, justify="left" if col in ("task", "metric") else "right")
    for task, row in report["tasks"].items():
        kept = f"{row['retention']:.1%}" if row["retention"] is not None else "-"
        phase = (f"{row['end_of_phase']:.4f}" if "end_of_phase" in row else "",) if sequential else ()
        metric = row["metric"].removeprefix("metrics/")
        table.add_row(
            task, metric, f"{row['peak']:.4f} ({row['peak_epoch']})", *phase, f"{row['end_of_run']:.4f}", kept
        )
    console.print(table)
