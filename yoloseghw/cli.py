"""The `yoloseg` command line: a thin Typer layer over the YOLOSeg facade."""

from __future__ import annotations

import json
import sys
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console

app = typer.Typer(
    name="yoloseg",
    help="One YOLO network for object detection + semantic segmentation, trained from a box-only and a mask-only dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Dataset tools.", no_args_is_help=True)
app.add_typer(data_app, name="data")
err = Console(stderr=True, highlight=False)


def cli_errors(fn: Callable) -> Callable:
    """Turn bad input into one line on stderr and exit code 2; Ctrl-C into exit code 130."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .errors import UserInputError

        try:
            return fn(*args, **kwargs)
        except UserInputError as e:
            err.print(f"[red]Error:[/] {e}", soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper


def _given(**kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if v is not None}


@app.command()
@cli_errors
def train(
    det: Optional[Path] = typer.Option(None, help="Detection dataset yaml (images + YOLO txt boxes)."),
    seg: Optional[Path] = typer.Option(None, help="Semantic dataset yaml (images + PNG class masks, 255 = ignore)."),
    model: str = typer.Option("yolo26n", help="Stock detection model name (yolov8n, yolo11s, yolo26m, ...) or a yaml."),
    weights: Optional[Path] = typer.Option(None, help="Ultralytics detection .pt to initialise matching layers from."),
    schedule: str = typer.Option("alternate", help="alternate | phased | joint."),
    ratio: str = typer.Option("1:1", help="alternate: det:seg steps per cycle, e.g. 2:1."),
    det_epochs: Optional[int] = typer.Option(None, help="phased: epochs of the detection phase (default: half)."),
    order: str = typer.Option("det,seg", help="phased: det,seg or seg,det."),
    freeze: Optional[int] = typer.Option(None, help="Freeze the first N layers (phased: in phase two, default 10)."),
    lr_scale: float = typer.Option(0.1, help="phased: LR multiplier in phase two."),
    seg_weight: float = typer.Option(1.0, help="Weight of the segmentation loss against the detection loss."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default 100; 15 for the demo)."),
    imgsz: Optional[int] = typer.Option(None, help="Train/val image size (default 640; 128 for the demo)."),
    batch: Optional[int] = typer.Option(None, help="Batch size per task (default 16)."),
    device: Optional[str] = typer.Option(None, help="cpu, 0, 0,1 ... (default: best available)."),
    workers: Optional[int] = typer.Option(None, help="Dataloader workers per loader."),
    fraction: Optional[float] = typer.Option(None, help="Fraction of each training set to use."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    lr0: Optional[float] = typer.Option(None, help="Initial LR (used when --optimizer is not auto)."),
    optimizer: Optional[str] = typer.Option(None, help="auto, SGD, AdamW, ... as in Ultralytics."),
    patience: Optional[int] = typer.Option(None, help="Early-stop after N epochs without fitness gain."),
    cache: Optional[str] = typer.Option(None, help="Cache images: ram or disk."),
    project: str = typer.Option("runs/yoloseg", help="Parent folder of runs."),
    name: str = typer.Option("train", help="Run name (a new run never overwrites an old one: train-2, train-3, ...)."),
    resume: Optional[Path] = typer.Option(None, help="Continue an interrupted run: its folder or weights/last.pt."),
) -> None:
    """Train on a box dataset and a mask dataset (no data arguments: the built-in demo)."""
    from . import YOLOSeg

    overrides = _given(epochs=epochs, imgsz=imgsz, batch=batch, device=device, workers=workers, fraction=fraction,
                       seed=seed, lr0=lr0, optimizer=optimizer, patience=patience, cache=cache)
    result = YOLOSeg(model).train(
        det=det, seg=seg, schedule=schedule, ratio=ratio, det_epochs=det_epochs, order=order, freeze=freeze,
        lr_scale=lr_scale, seg_weight=seg_weight, weights=weights, resume=resume or False, project=project,
        name=name, **overrides,
    )
    m = result["metrics"]
    typer.echo(
        f"Final (best.pt): mAP50 {m['metrics/mAP50(B)']:.3f}, mAP50-95 {m['metrics/mAP50-95(B)']:.3f}, "
        f"mIoU {m['metrics/mIoU']:.3f}, pixel acc {m['metrics/pixel_acc']:.3f}"
    )


@app.command()
@cli_errors
def val(
    weights: Path = typer.Option(..., help="yoloseg checkpoint (best.pt / last.pt)."),
    det: Optional[Path] = typer.Option(None, help="Detection dataset yaml; its val split is used."),
    seg: Optional[Path] = typer.Option(None, help="Semantic dataset yaml; its val split is used."),
    imgsz: Optional[int] = typer.Option(None, help="Image size (default: the training size)."),
    batch: int = typer.Option(16, help="Batch size."),
    device: str = typer.Option("", help="cpu, 0, ..."),
    conf: Optional[float] = typer.Option(None, help="Detection confidence threshold (default 0.001)."),
    iou: Optional[float] = typer.Option(None, help="NMS IoU threshold (default 0.7)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write metrics and per-class tables to this file."),
) -> None:
    """Evaluate a checkpoint on a det and/or seg val set, with per-class tables."""
    from . import YOLOSeg

    result = YOLOSeg(_checkpoint(weights)).val(det=det, seg=seg, imgsz=imgsz, batch=batch, device=device,
                                               **_given(conf=conf, iou=iou))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2))
        typer.echo(f"Wrote {json_path}")


@app.command()
@cli_errors
def info(weights: Path = typer.Argument(..., help="yoloseg checkpoint.")) -> None:
    """Show a checkpoint's two class lists, size and training metrics."""
    from rich.table import Table

    from . import YOLOSeg
    from .console import console

    summary = YOLOSeg(_checkpoint(weights)).info()
    table = Table(show_header=False, title=str(weights), title_justify="left")
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items())
        table.add_row(key, str(value))
    console.print(table)


@data_app.command("demo")
@cli_errors
def data_demo(
    directory: Path = typer.Argument(..., help="Output folder (gets demo-det/ and demo-seg/)."),
    train_images: int = typer.Option(200, help="Training images per dataset."),
    val_images: int = typer.Option(50, help="Validation images per dataset."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write the built-in synthetic demo pair: a box-only set and a mask-only set."""
    from .demo import make_demo
    from .errors import UserInputError

    if any((directory / d).exists() for d in ("demo-det", "demo-seg")):
        raise UserInputError(f"{directory} already holds demo data; choose an empty folder")
    det, seg = make_demo(directory, train_images, val_images, seed)
    typer.echo(f"Wrote {det} and {seg}\nTrain: yoloseg train --det {det} --seg {seg}")


def _checkpoint(path: Path) -> str:
    """A yoloseg checkpoint path, checked for existence and suffix before loading."""
    from .errors import UserInputError

    if not path.is_file():
        raise UserInputError(f"--weights: file not found: {path}")
    if path.suffix not in {".pt", ".pth"}:
        raise UserInputError(f"--weights: {path} is not a PyTorch checkpoint (.pt)")
    return str(path)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
