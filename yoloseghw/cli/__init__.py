"""The `yoloseg` command line: a thin Typer layer over the YOLOSeg facade."""

from yoloseghw.cli.app import app, main

__all__ = ["app", "main"]
