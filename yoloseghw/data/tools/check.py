"""`yoloseg data check`: per-split counts, class histograms, unreadable files, bad class ids, image sizes and
duplicate images across splits of a detection or semantic dataset yaml, as a rich report."""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table
from ultralytics.data.utils import exif_size

from yoloseghw.data.masks import CONVERT_HINT, read_class_mask
from yoloseghw.data.tools.common import label_lut, label_path, list_images, load_dataset, read_yolo_labels, run_parallel
from yoloseghw.utils.errors import UserInputError

SPLITS = ("train", "val", "test")
EXAMPLES = 3  # example files shown per problem


@dataclass
class FileResult:
    """What one image (and its label file or mask) looked like."""

    split: str
    image: Path
    digest: str = ""
    size: tuple[int, int] | None = None  # (w, h)
    label: str = "ok"  # ok | missing | empty
    hist: np.ndarray | None = None  # boxes (det) or pixels (seg, 256 bins, 255 = ignore) per class id
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, "file: detail")


@dataclass
class SplitStats:
    """Totals of one split."""

    name: str
    images: int = 0
    labelled: int = 0
    empty: int = 0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))  # per class id; seg: [255] = ignore
    sizes: list[tuple[int, int]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Report:
    """The check of one dataset yaml."""

    path: Path
    kind: str  # det | seg
    names: list[str]
    splits: list[SplitStats]
    cross_duplicates: list[list[str]]  # groups of identical images found in different splits
    split_duplicates: list[list[str]]  # groups of identical images within one split
    seconds: float

    def problems(self) -> list[tuple[bool, str, list[str]]]:
        """(is_error, message, example files) for everything worth a line; errors make `check` exit with code 1."""
        label = "label file" if self.kind == "det" else "mask"
        titles = {
            "unreadable": (f"unreadable or malformed images/{label}s", True),
            "bad_ids": (
                f"{label}s with class ids outside 0-{len(self.names) - 1}"
                + (" (other than 255 = ignore)" if self.kind == "seg" else ""),
                True,
            ),
            "mismatch": ("masks whose size differs from their image", True),
            "colour": (f"colour masks, not class ids ({CONVERT_HINT})", True),
        }
        out = []
        for s in self.splits:
            if s.images == 0:
                out.append((True, f"{s.name}: no images", []))
            elif s.labelled == 0:
                out.append((True, f"{s.name}: no {label}s at all", s.missing[:EXAMPLES]))
            elif s.missing:
                consequence = "trained as background" if self.kind == "det" else "skipped by training"
                out.append(
                    (
                        False,
                        f"{s.name}: {len(s.missing)} images without a {label} ({consequence})",
                        s.missing[:EXAMPLES],
                    )
                )
            for kind, files in s.problems.items():
                title, is_error = titles[kind]
                out.append((is_error, f"{s.name}: {len(files)} {title}", files[:EXAMPLES]))
        train = next((s for s in self.splits if s.name == "train" and s.labelled), None)
        if train is not None:
            absent = [n for i, n in enumerate(self.names) if train.hist[i] == 0]
            if absent:
                out.append(
                    (
                        False,
                        f"train: {len(absent)} classes never appear: {', '.join(absent[:10])}"
                        + (", ..." if len(absent) > 10 else ""),
                        [],
                    )
                )
        if self.cross_duplicates:
            out.append(
                (
                    True,
                    f"{len(self.cross_duplicates)} images appear in more than one split (identical bytes)",
                    [" = ".join(g) for g in self.cross_duplicates[:EXAMPLES]],
                )
            )
        if self.split_duplicates:
            out.append(
                (
                    False,
                    f"{len(self.split_duplicates)} images have an identical copy in the same split",
                    [" = ".join(g) for g in self.split_duplicates[:EXAMPLES]],
                )
            )
        return out

    @property
    def errors(self) -> int:
        """Number of error lines in the report."""
        return sum(is_error for is_error, *_ in self.problems())


def check_dataset(path: Path) -> Report:
    """Read every image and label file (or mask) of every split of a dataset yaml and collect the statistics."""
    start = time.perf_counter()
    kind, data = load_dataset(path)
    names = [str(n) for n in data["names"].values()]
    lut = label_lut(data) if kind == "seg" else None
    jobs = [(split, image) for split in SPLITS if data.get(split) for image in list_images(data[split])]
    results = run_parallel(lambda job: _inspect(*job, kind, data, lut, len(names)), jobs, f"check {path.name}")
    splits = {
        split: SplitStats(split, hist=np.zeros(max(256, len(names)), np.int64)) for split in SPLITS if data.get(split)
    }
    by_digest: dict[str, list[FileResult]] = {}
    for r in results:
        s = splits[r.split]
        s.images += 1
        if r.size:
            s.sizes.append(r.size)
        if r.label == "missing":
            s.missing.append(str(r.image))
        else:
            s.labelled += 1
            s.empty += r.label == "empty"
        if r.hist is not None:
            s.hist[: len(r.hist)] += r.hist
        for problem, detail in r.problems:
            s.problems.setdefault(problem, []).append(detail)
        if r.digest:
            by_digest.setdefault(r.digest, []).append(r)
    groups = [g for g in by_digest.values() if len(g) > 1]
    cross = [[f"{r.split}/{r.image.name}" for r in g] for g in groups if len({r.split for r in g}) > 1]
    within = [[f"{r.split}/{r.image.name}" for r in g] for g in groups if len({r.split for r in g}) == 1]
    return Report(path, kind, names, list(splits.values()), cross, within, time.perf_counter() - start)


def _inspect(split: str, image: Path, kind: str, data: dict[str, Any], lut: np.ndarray | None, nc: int) -> FileResult:
    """Hash and decode one image, then read its YOLO label file or its mask."""
    r = FileResult(split, image)
    try:
        raw = image.read_bytes()
        r.digest = hashlib.sha1(raw).hexdigest()
        with Image.open(io.BytesIO(raw)) as im:
            size = exif_size(im)
            im.load()  # decodes: truncated or corrupt files fail here
        if min(size) < 10:
            raise ValueError(f"image size {size} is under 10 pixels (Ultralytics skips it)")
        r.size = size
    except Exception as e:
        r.problems.append(("unreadable", f"{image}: {e}"))
    if kind == "det":
        _inspect_labels(r, nc)
    else:
        _inspect_mask(r, data.get("masks_dir", "masks"), lut, nc)
    return r


def _inspect_labels(r: FileResult, nc: int) -> None:
    file = label_path(r.image)
    if not file.is_file():
        r.label = "missing"
        return
    try:
        rows = read_yolo_labels(file)
    except (ValueError, OSError) as e:
        r.problems.append(("unreadable", f"{file}: {e}"))
        return
    if not len(rows):
        r.label = "empty"
        return
    if not np.isfinite(rows).all():
        r.problems.append(("unreadable", f"{file}: a value is NaN or infinite (training drops the image as corrupt)"))
        return
    cls = rows[:, 0]
    bad = (cls < 0) | (cls >= nc) | (cls % 1 != 0)
    if bad.any():
        r.problems.append(("bad_ids", f"{file}: {sorted({int(c) if c % 1 == 0 else c for c in cls[bad]})}"))
    if rows[:, 1:].max() > 1.01 or rows[:, 1:].min() < -0.01:
        r.problems.append(("unreadable", f"{file}: coordinates outside 0-1 (not normalized)"))
    r.hist = np.bincount(cls[~bad].astype(int), minlength=nc)


def _inspect_mask(r: FileResult, masks_dir: str, lut: np.ndarray, nc: int) -> None:
    file = label_path(r.image, masks_dir, ".png")
    if not file.is_file():
        r.label = "missing"
        return
    try:
        with Image.open(file) as im:
            mode = im.mode
        mask = read_class_mask(str(file), mode)
    except UserInputError as e:  # a colour mask: its message names the file and the fix
        r.problems.append(("colour", str(e)))
        return
    except Exception as e:
        r.problems.append(("unreadable", f"{file}: {e}"))
        return
    if mask.ndim != 2:
        r.problems.append(("unreadable", f"{file}: {mask.ndim}-D mask (expected one channel of class ids)"))
        return
    if r.size and mask.shape != r.size[::-1]:
        r.problems.append(("mismatch", f"{file}: {mask.shape[1]}x{mask.shape[0]} vs image {r.size[0]}x{r.size[1]}"))
    over = mask > 255
    ids = lut[np.where(over, 0, mask)]
    bad = over | ((ids >= nc) & (ids != 255))
    if bad.any():
        r.problems.append(("bad_ids", f"{file}: {np.unique(mask[bad]).tolist()[:8]}"))
    r.hist = np.bincount(ids[~bad].ravel(), minlength=256)


def print_report(report: Report, console: Console) -> None:
    """The report of one dataset: splits table, class table, problems."""
    det = report.kind == "det"
    console.print(
        f"\n[bold]{report.path}[/]: {'detection (boxes)' if det else 'semantic (masks)'}, "
        f"{len(report.names)} classes, checked in {report.seconds:.1f}s"
    )
    table = Table(title_justify="left")
    for col in (
        "split",
        "images",
        "boxes" if det else "masks",
        "no label" if det else "no mask",
        "size min",
        "size median",
        "size max",
    ):
        table.add_column(col, justify="left" if col == "split" else "right")
    for s in report.splits:
        sizes = np.array(s.sizes or [(0, 0)])
        spread = [f"{int(w)}x{int(h)}" for w, h in (sizes.min(0), np.median(sizes, 0), sizes.max(0))]
        count = int(s.hist[: len(report.names)].sum()) if det else s.labelled
        table.add_row(s.name, str(s.images), str(count), str(len(s.missing)), *spread)
    console.print(table)
    console.print(_class_table(report))
    for is_error, message, examples in report.problems():
        mark = "[red]✗ error[/]" if is_error else "[yellow]! warning[/]"
        console.print(f"{mark} {message}", soft_wrap=True)
        for example in examples:
            console.print(f"    {example}", soft_wrap=True, markup=False)
    console.print(f"[red]{report.errors} errors[/]" if report.errors else "[green]No errors[/]")


def _class_table(report: Report) -> Table:
    det = report.kind == "det"
    table = Table(title="boxes per class" if det else "pixels per class (% of labelled pixels)", title_justify="left")
    table.add_column("id", justify="right")
    table.add_column("class")
    for s in report.splits:
        table.add_column(s.name, justify="right")
    nc = len(report.names)
    totals = [max(int(s.hist[:nc].sum()), 1) for s in report.splits]
    for i, name in enumerate(report.names):
        cells = [str(int(s.hist[i])) if det else f"{100 * s.hist[i] / t:.2f}" for s, t in zip(report.splits, totals)]
        table.add_row(str(i), name, *cells)
    if not det:
        shares = (f"{100 * s.hist[255] / max(int(s.hist.sum()), 1):.2f}*" for s in report.splits)
        table.add_row("255", "ignore", *shares)
        table.caption = "* ignore: % of all mask pixels"
    return table


def print_overlap(a: Report, b: Report, console: Console) -> None:
    """Class names shared by two datasets (compared case-insensitively); the two heads are independent."""
    key = lambda n: n.strip().lower()  # noqa: E731
    shared = sorted({key(n) for n in a.names} & {key(n) for n in b.names})
    console.print(
        f"\n[bold]Class overlap[/] between {a.path.name} ({a.kind}) and {b.path.name} ({b.kind}): "
        f"{len(shared)} shared name{'s' if len(shared) != 1 else ''}" + (f": {', '.join(shared)}" if shared else ""),
        soft_wrap=True,
    )
    for r, other in ((a, b), (b, a)):
        only = [n for n in r.names if key(n) not in {key(m) for m in other.names}]
        console.print(f"  only in {r.path.name}: {', '.join(only) or '-'}", soft_wrap=True)
    console.print("  (the detection and segmentation heads keep separate class lists, so nothing has to match)")
