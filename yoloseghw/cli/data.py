"""`yoloseg data demo | convert | check | show`: the dataset tools."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from yoloseghw.cli.errors import cli_errors

data_app = typer.Typer(help="Dataset tools.", no_args_is_help=True)


@data_app.command("demo")
@cli_errors
def data_demo(
    directory: Path = typer.Argument(..., help="Output folder (gets demo-det/ and demo-seg/)."),
    train_images: int = typer.Option(200, help="Training images per dataset."),
    val_images: int = typer.Option(50, help="Validation images per dataset."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write the built-in synthetic demo pair: a box-only set and a mask-only set."""
    from yoloseghw.data.demo import make_demo
    from yoloseghw.utils.errors import UserInputError
    from yoloseghw.utils.files import check_output_folder

    check_output_folder(directory, "DIRECTORY")
    if any((directory / d).exists() for d in ("demo-det", "demo-seg")):
        raise UserInputError(f"{directory} already holds demo data; choose an empty folder")
    det, seg = make_demo(directory, train_images, val_images, seed)
    typer.echo(f"Wrote {det} and {seg}\nTrain: yoloseg train --det {det} --seg {seg}")


@data_app.command("convert")
@cli_errors
def data_convert(
    source: Path = typer.Argument(..., help="Source dataset: a folder (a COCO .json or YOLO .yaml file also works)."),
    fmt: str = typer.Option(
        ...,
        "--from",
        help="Boxes: voc | coco | yolo. Masks: voc-seg | cityscapes | ade20k | camvid | camvid32 | masks.",
    ),
    to: Path = typer.Option(..., "--to", help="Output folder (gets images/, labels/ or masks/, and <name>.yaml)."),
    classes: Optional[str] = typer.Option(
        None,
        help="Keep/rename/merge classes, in this order: "
        "'car,person=pedestrian' or a .txt/.yaml/.json file "
        "(see docs/data.md).",
    ),
    val: float = typer.Option(0.2, help="Val fraction drawn from train when the source has no val split."),
    seed: int = typer.Option(0, help="Random seed of that split."),
    name: Optional[str] = typer.Option(None, help="Name of the yaml (default: the output folder's name)."),
    link: bool = typer.Option(False, help="Hard-link images instead of copying them (copies across file systems)."),
    force: bool = typer.Option(False, help="Replace the dataset in a non-empty output folder."),
) -> None:
    """Convert a VOC/COCO/YOLO box dataset or a VOC/Cityscapes/ADE20K/CamVid/index-mask dataset for `yoloseg train`."""
    from yoloseghw.data.tools import DET_FORMATS, convert
    from yoloseghw.utils.console import console

    result = convert(fmt, source, to, classes=classes, val=val, seed=seed, name=name, force=force, link=link)
    counts = ", ".join(
        f"{s} {n} images" + (f" / {result.boxes[s]} boxes" if result.boxes else "")
        for s, n in sorted(result.images.items(), key=lambda kv: ("train", "val", "test").index(kv[0]))
    )
    for note in result.notes:
        console.print(f"Note: {note}", soft_wrap=True, markup=False)
    shown = ", ".join(result.names[:12]) + (", ..." if len(result.names) > 12 else "")
    flag = "--det" if fmt in DET_FORMATS else "--seg"
    console.print(
        f"Wrote {result.yaml}: {counts}; {len(result.names)} classes: {shown}\n"
        f"Check: yoloseg data check {result.yaml}\nTrain: yoloseg train {flag} {result.yaml} ...",
        soft_wrap=True,
        markup=False,
    )


@data_app.command("check")
@cli_errors
def data_check(
    yamls: list[Path] = typer.Argument(..., help="A detection and/or a semantic dataset yaml (one or two)."),
) -> None:
    """Check datasets: counts, class histograms, bad files and ids, image sizes, duplicates (exit 1 on errors)."""
    from yoloseghw.data.tools.check import check_dataset, print_overlap, print_report
    from yoloseghw.utils.console import console
    from yoloseghw.utils.errors import UserInputError

    if len(yamls) > 2:
        raise UserInputError(f"data check takes one or two dataset yamls, got {len(yamls)}")
    reports = [check_dataset(path) for path in yamls]
    for report in reports:
        print_report(report, console)
    if len(reports) == 2:
        print_overlap(*reports, console)
    if any(r.errors for r in reports):
        raise typer.Exit(1)


@data_app.command("show")
@cli_errors
def data_show(
    yaml: Path = typer.Argument(..., help="A detection or semantic dataset yaml."),
    split: str = typer.Option("train", help="Split to draw from: train, val or test."),
    n: int = typer.Option(16, "--n", help="Number of random images."),
    out: Path = typer.Option(Path("grid.png"), help="Output PNG."),
    seed: int = typer.Option(0, help="Random seed of the sample."),
    imgsz: int = typer.Option(320, help="Size of one grid cell in pixels."),
) -> None:
    """Draw random samples with their boxes or a mask overlay and a class legend into a PNG grid."""
    from yoloseghw.data.tools.show import show
    from yoloseghw.utils.files import check_output_file

    check_output_file(out, "--out", (".png", ".jpg", ".jpeg"))
    path, count, (width, height) = show(yaml, split=split, n=n, out=out, seed=seed, imgsz=imgsz)
    typer.echo(f"Wrote {path}: {count} {split} images of {yaml.name}, {width}x{height} px")
