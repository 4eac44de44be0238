"""Shared rich console and progress bars (labelled with the task of the current step)."""

from __future__ import annotations

import re
import textwrap

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from ultralytics.utils import RANK

console = Console(highlight=False, quiet=RANK > 0)  # under DDP, rank 0 speaks for all
error_console = Console(stderr=True, highlight=False)
ERROR_PREFIX = "Error: "
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes, e.g. in Ultralytics' log prefixes


def plain(text: str) -> str:
    """`text` without colour codes: rich colours what it prints itself, and only on a terminal."""
    return ANSI.sub("", text)


def shorten(text: str, width: int = 160) -> str:
    """`text` on one line, cut at a word boundary (with an ellipsis) when longer than `width`."""
    return textwrap.shorten(plain(text), width, placeholder=" …")


def print_error(message: str) -> None:
    """The one line that bad input ends a command with (on stderr, from every rank)."""
    error_console.print(f"[red]{ERROR_PREFIX.strip()}[/] {escape(plain(message))}", soft_wrap=True)


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


def fit_info(text: str) -> str:
    """Cut a progress bar's free text to the room the fixed columns leave, so they never get squeezed."""
    room = max(console.width - 68, 12)
    return text if len(text) <= room else text[: room - 1] + "…"


def warn(message: str) -> None:
    """One-line warning (Ultralytics' own logger is quiet under YOLO_VERBOSE=False)."""
    console.print(f"[yellow]Warning:[/] {escape(plain(message))}", soft_wrap=True)
