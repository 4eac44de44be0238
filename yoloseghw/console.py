"""Shared rich console and progress bars (labelled with the task of the current step)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(highlight=False)


def make_progress(transient: bool = False) -> Progress:
    """Progress bar: label, bar, done/total, elapsed, remaining, then free text (losses)."""
    return Progress(
        TextColumn("{task.description:<18}", markup=False, style="bold"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        console=console,
        transient=transient,
    )


def warn(message: str) -> None:
    """One-line warning (Ultralytics' own logger is quiet under YOLO_VERBOSE=False)."""
    console.print(f"[yellow]Warning:[/] {message}", soft_wrap=True)
