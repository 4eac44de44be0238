"""Shared pieces of the dataset tools: output folder, splits, the --classes map, file listing, label reading."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import cv2
import numpy as np
from PIL import Image
from ultralytics.data.utils import IMG_FORMATS, img2label_paths, read_mask
from ultralytics.utils import NUM_THREADS, YAML
from ultralytics.utils.ops import segments2boxes

from yoloseghw.data.dataset import load_data_config
from yoloseghw.utils.console import make_progress
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.metrics import IGNORE

SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
STAGE = ".yoloseg-convert"  # staging folder inside --to while converting
T = TypeVar("T")
R = TypeVar("R")


def split_name(name: str) -> str | None:
    """'train', 'val' or 'test' for a folder or file name such as train2017, trainannot, val_labels, validation."""
    word = re.sub(r"[\W_]*(annot\w*|labels?|masks?|\d+)$", "", name.lower())
    return SPLIT_WORDS.get(word)


def path_split(path: Path, root: Path) -> str | None:
    """The split named by the first folder between `root` and `path` that names one (train2017/, valannot/, ...)."""
    for part in path.relative_to(root).parts[:-1]:
        if split := split_name(part):
            return split
    return None


def assign_splits(splits: list[str | None], val: float, seed: int) -> list[str]:
    """Keep the source's splits when it has a val split; otherwise draw a seeded `val` fraction of the train images."""
    if "val" in splits:
        return [s or "train" for s in splits]
    if not 0 < val < 1:
        raise UserInputError(f"--val: the source has no val split, so a fraction in (0, 1) is needed, not {val}")
    pool = [i for i, s in enumerate(splits) if s in (None, "train")]
    if len(pool) < 2:
        raise UserInputError(f"--val: need at least 2 images to make a val split, found {len(pool)}")
    chosen = set(random.Random(seed).sample(pool, max(1, min(len(pool) - 1, round(len(pool) * val)))))
    return ["val" if i in chosen else (s or "train") for i, s in enumerate(splits)]


@dataclass
class ConvertResult:
    """What a conversion wrote: the yaml, images (and boxes) per split, class names, and notes on skipped input."""

    yaml: Path
    images: dict[str, int]
    boxes: dict[str, int] | None
    names: list[str]
    notes: list[str]


@dataclass(frozen=True)
class ConvertOptions:
    """What `yoloseg data convert` takes besides the format and the two folders (one definition for both kinds).

    Attributes:
        classes: keep/rename/merge classes ('car,person=pedestrian' or a file; see docs/data.md).
        val: the val fraction drawn from train when the source has no val split.
        seed: the seed of that draw.
        name: the dataset yaml's name (default: the output folder's).
        force: replace the dataset in a non-empty output folder.
        link: hard-link images instead of copying them.
    """

    classes: str | None = None
    val: float = 0.2
    seed: int = 0
    name: str | None = None
    force: bool = False
    link: bool = False


@dataclass
class ClassMap:
    """Output class names (id = index) and which output id each kept source class goes to."""

    names: list[str]
    ids: dict[str, int]  # source class name -> output id; source classes not in it are dropped

    def lut(self, source_names: list[str]) -> np.ndarray:
        """256-entry table: source id -> output id; dropped classes and 255 -> 255 (ignore)."""
        table = np.full(256, IGNORE, np.uint8)
        for i, name in enumerate(source_names[:IGNORE]):
            if name in self.ids:
                table[i] = self.ids[name]
        return table


def class_map(spec: str | None, source: list[str]) -> ClassMap:
    """Parse --classes: keep/rename/merge source classes in the listed order (None keeps all, unchanged)."""
    if not spec:
        return ClassMap(list(source), {n: i for i, n in enumerate(source)})
    names: list[str] = []
    ids: dict[str, int] = {}
    for src, dst in _class_entries(spec):
        if src not in source:
            shown = ", ".join(source[:30]) + (", ..." if len(source) > 30 else "")
            raise UserInputError(f"--classes: {src!r} is not a class of the source (source classes: {shown})")
        if src in ids:
            raise UserInputError(f"--classes: {src!r} is listed twice")
        if dst not in names:
            names.append(dst)
        ids[src] = names.index(dst)
    return ClassMap(names, ids)


def _class_entries(spec: str) -> list[tuple[str, str]]:
    """(source, output) name pairs from 'a,b=c' or from a .txt (one entry a line), .yaml or .json file."""
    path = Path(spec)
    if path.suffix.lower() in {".txt", ".yaml", ".yml", ".json"}:
        if not path.is_file():
            raise UserInputError(f"--classes: file not found: {path}")
        if path.suffix.lower() == ".txt":
            return _pairs(path.read_text(encoding="utf-8-sig").splitlines(), spec)
        try:
            raw = json.loads(path.read_text()) if path.suffix.lower() == ".json" else YAML.load(path)
        except Exception as e:
            raise UserInputError(f"--classes: cannot parse {path}: {str(e).splitlines()[0]}") from None
        if isinstance(raw, list):
            return _pairs([str(x) for x in raw], spec)
        if isinstance(raw, dict) and raw:
            return [(str(k), str(k) if v is None else str(v)) for k, v in raw.items()]
        raise UserInputError(f"--classes: {path} must hold a list of names or a mapping source: output")
    return _pairs(spec.split(","), spec)


def _pairs(entries: Iterable[str], spec: str) -> list[tuple[str, str]]:
    pairs = []
    for entry in entries:
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        src, _, dst = (part.strip() for part in entry.partition("="))
        if not src or ("=" in entry and not dst):
            raise UserInputError(f"--classes: bad entry {entry!r} in {spec!r} (expected 'name' or 'name=new_name')")
        pairs.append((src, dst or src))
    if not pairs:
        raise UserInputError(f"--classes: no classes in {spec!r}")
    return pairs


def split_jobs(items: list[Any], splits: list[str | None], stems: list[Path], val: float, seed: int) -> list[tuple]:
    """(item, split, output stem) per item: the source's splits kept (or a seeded `val` fraction drawn), and stems
    made unique within each split."""
    taken: set[tuple[str, str]] = set()
    chosen = assign_splits(splits, val, seed)
    return [(item, split, unique_stem(stem, split, taken)) for item, split, stem in zip(items, chosen, stems)]


def per_split(splits: Iterable[str]) -> dict[str, int]:
    """How many times each split occurs."""
    counts: dict[str, int] = {}
    for split in splits:
        counts[split] = counts.get(split, 0) + 1
    return counts


def skipped_note(notes: list[str], what: str, items: list[str]) -> None:
    """Record source files left out, with the first one as an example."""
    if items:
        notes.append(f"skipped {len(items)} {what} (first: {items[0]})")


def unique_stem(path: Path, split: str, taken: set[tuple[str, str]]) -> str:
    """Output file stem for `path` that no earlier file of the same split uses."""
    stem = path.stem
    if (split, stem) in taken:
        stem = f"{path.parent.name}_{path.stem}"
    base, i = stem, 1
    while (split, stem) in taken:
        stem, i = f"{base}_{i}", i + 1
    taken.add((split, stem))
    return stem


OWNED_FOLDERS = ("images", "labels", "masks")  # what a conversion writes into its output folder, besides its yaml
CONVERT_HEADER = "# yoloseg data convert"  # the first line of every yaml a conversion writes


class OutputDir:
    """Writes a converted dataset into `root/.yoloseg-convert/` and moves it into `root` only when complete.

    A non-empty `root` is refused unless `force`; with `force`, what a conversion owns there is replaced: images/,
    labels/, masks/ and every yaml an earlier `yoloseg data convert` wrote (of either kind, so no stale masks/ or
    yaml of another kind stay); other files are left alone. On failure, the partial output is removed.
    """

    def __init__(self, root: Path, source: Path, force: bool, link: bool) -> None:
        src, dst = source.resolve(), root.resolve()
        src = src if src.is_dir() else src.parent
        if dst == src or src in dst.parents or dst in src.parents:
            raise UserInputError(f"--to {root} overlaps the source {source}; choose an output folder outside it")
        if root.exists() and not root.is_dir():
            raise UserInputError(f"--to {root} is a file, not a folder")
        if root.is_dir() and any(p.name != STAGE for p in root.iterdir()) and not force:
            raise UserInputError(f"--to {root} is not empty; pass --force to replace the dataset in it")
        self.root, self.link, self.created = root, link, not root.exists()
        self.stage = root / STAGE

    def __enter__(self) -> OutputDir:
        shutil.rmtree(self.stage, ignore_errors=True)
        try:
            self.stage.mkdir(parents=True)
        except OSError as e:
            raise UserInputError(f"--to {self.root}: cannot create it: {e}") from None
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, _: Any) -> None:
        if exc_type is None:
            return
        shutil.rmtree(self.stage, ignore_errors=True)
        if self.created and self.root.is_dir() and not any(self.root.iterdir()):
            self.root.rmdir()
        if isinstance(exc, OSError):  # disk full, no permission, unreadable source file, ...
            raise UserInputError(f"converting into {self.root} failed: {exc}") from None

    def image(self, src: Path, split: str, stem: str) -> None:
        """Copy (or hard-link) an image to images/<split>/<stem><suffix>."""
        dst = self.stage / "images" / split / f"{stem}{src.suffix.lower()}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if self.link:
            try:
                os.link(src, dst)
                return
            except OSError:  # other file system, or links not supported: copy
                pass
        shutil.copyfile(src, dst)

    def labels(self, split: str, stem: str, rows: Iterable[tuple[int, float, float, float, float]]) -> None:
        """Write labels/<split>/<stem>.txt with YOLO rows 'cls xc yc w h' (normalized)."""
        path = self.stage / "labels" / split / f"{stem}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in rows))

    def mask(self, split: str, stem: str, mask: np.ndarray) -> None:
        """Write masks/<split>/<stem>.png (single-channel uint8 class ids, 255 = ignore)."""
        path = self.stage / "masks" / split / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), mask):
            raise OSError(f"could not write {path}")

    def commit(self, name: str, data: dict[str, Any], header: str) -> Path:
        """Write the dataset yaml and move everything from the staging folder into `root`; return the yaml path."""
        YAML.save(self.stage / f"{name}.yaml", data, header=header)
        for owned in (*(self.root / d for d in OWNED_FOLDERS), *self.root.glob("*.yaml")):
            if owned.is_dir():
                shutil.rmtree(owned)
            elif owned.is_file() and owned.read_text(errors="replace").startswith(CONVERT_HEADER):
                owned.unlink()
        for entry in sorted(self.stage.iterdir()):
            target = self.root / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            entry.rename(target)
        self.stage.rmdir()
        return self.root / f"{name}.yaml"


def dataset_yaml(names: list[str], splits: Iterable[str], masks: bool) -> dict[str, Any]:
    """Ultralytics dataset yaml content; paths are relative to the yaml's folder (no `path:` key)."""
    data: dict[str, Any] = {s: f"images/{s}" for s in ("train", "val", "test") if s in set(splits)}
    if masks:
        data["masks_dir"] = "masks"
    data["names"] = dict(enumerate(names))
    return data


def run_parallel(fn: Callable[[T], R], items: list[T], description: str, transient: bool = False) -> list[R]:
    """`fn` over `items` on a thread pool with a progress bar (`transient`: removed when done); results in order."""
    results = []
    with make_progress(transient) as progress, ThreadPool(NUM_THREADS) as pool:
        task = progress.add_task(description, total=len(items), info="")
        try:
            for result in pool.imap(fn, items):
                results.append(result)
                progress.advance(task)
        except BaseException:
            progress.live.transient = True  # a failed run leaves no half-filled bar above its error line
            pool.terminate()
            pool.join()  # no worker may still be writing when the caller cleans up after the error
            raise
    return results


def is_image(path: Path) -> bool:
    """True for a file with an image suffix Ultralytics reads."""
    return path.suffix[1:].lower() in IMG_FORMATS and path.is_file()


def list_images(spec: str | list[str]) -> list[Path]:
    """Image files of a dataset split (folders searched recursively, .txt lists with './' relative to the list)."""
    files: list[Path] = []
    for entry in spec if isinstance(spec, list) else [spec]:
        p = Path(entry)
        if p.is_dir():
            files += [f for f in p.rglob("*.*") if is_image(f)]
        elif p.is_file():
            lines = [x.strip() for x in p.read_text(encoding="utf-8-sig").splitlines() if x.strip()]
            files += [p.parent / x[2:] if x.startswith("./") else Path(x) for x in lines]
        else:
            raise UserInputError(f"image folder or list not found: {p}")
    return sorted(f for f in files if f.suffix[1:].lower() in IMG_FORMATS)


def label_path(image: Path, label_dir: str = "labels", suffix: str = ".txt") -> Path:
    """Label (or mask) file of an image, as Ultralytics finds it: the last images/ replaced by `label_dir`."""
    return Path(img2label_paths([image], label_dir=label_dir, suffix=suffix)[0])


def load_dataset(path: Path) -> tuple[str, dict[str, Any]]:
    """('det' or 'seg', parsed and resolved data dict) of a dataset yaml; a `masks_dir` key makes it 'seg'."""
    if not path.is_file():
        raise UserInputError(f"dataset yaml not found: {path}")
    try:
        raw = YAML.load(path)
    except Exception:
        raw = None  # load_data_config reports the parse error
    kind = "seg" if isinstance(raw, dict) and raw.get("masks_dir") else "det"
    try:
        return kind, load_data_config(path, kind)
    except UserInputError as e:
        raise UserInputError(str(e).removeprefix(f"--{kind}: ")) from None


def label_lut(data: dict[str, Any]) -> np.ndarray:
    """256-entry table applying a semantic yaml's `label_mapping` (identity without one; 'ignore_label' -> 255)."""
    table = np.arange(256, dtype=np.int64)
    mapping = data.get("label_mapping") or {}
    if not isinstance(mapping, dict):
        raise UserInputError(f"{data['yaml_path']}: label_mapping must be a mapping of raw id: train id")
    for src, dst in mapping.items():
        try:
            src = int(src)
            dst = IGNORE if dst in (None, "ignore_label") else int(dst)
        except (TypeError, ValueError):
            raise UserInputError(f"{data['yaml_path']}: bad label_mapping entry {src}: {dst}") from None
        if 0 <= src < 256:
            table[src] = dst
    return table


def read_yolo_labels(path: Path) -> np.ndarray:
    """(n, 5) array of cls, xc, yc, w, h from a YOLO txt file; polygon rows become their boxes. ValueError if bad."""
    rows = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        values = [float(x) for x in line.split()]
        if len(values) == 5:
            rows.append(values)
        elif len(values) >= 7 and len(values) % 2:
            xy = np.array(values[1:]).reshape(-1, 2)
            rows.append([values[0], *segments2boxes([xy])[0]])
        elif values:
            raise ValueError(f"a row has {len(values)} values (expected 'cls xc yc w h' or a polygon)")
    return np.array(rows, np.float64).reshape(-1, 5)


def read_label_image(path: Path) -> np.ndarray:
    """A mask file as (H, W) class ids (index/palette PNGs, 8 or 16 bit) or (H, W, 3) RGB for colour masks."""
    with Image.open(path) as im:
        mode = im.mode
        if mode in {"RGB", "RGBA"}:
            rgb = np.asarray(im.convert("RGB"))
            return rgb[..., 0] if (rgb == rgb[..., :1]).all() else rgb  # grey saved as RGB holds ids
    return read_mask(str(path), mode)
