"""Box datasets -> the Ultralytics detection layout: Pascal VOC XML, COCO instances JSON, or a YOLO dataset yaml.

Ultralytics' own converters do not fit here: `convert_coco` maps the 91 COCO category ids to the 80 COCO classes and
copies no images, and its VOC converter lives inside VOC.yaml's download script.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from yoloseghw.data.dataset import load_data_config
from yoloseghw.data.tools.common import (
    ConvertOptions,
    ConvertResult,
    OutputDir,
    class_map,
    dataset_yaml,
    is_image,
    label_path,
    list_images,
    path_split,
    per_split,
    read_yolo_labels,
    run_parallel,
    skipped_note,
    split_jobs,
    split_name,
)
from yoloseghw.utils.errors import UserInputError

Box = tuple[str, float, float, float, float]  # class name, xc, yc, w, h (normalized)


@dataclass
class DetSample:
    """One source image with its boxes and the split the source put it in (None: no split)."""

    image: Path
    split: str | None
    boxes: list[Box]


def convert_det(
    fmt: str,
    src: Path,
    dst: Path,
    options: ConvertOptions,
) -> ConvertResult:
    """Convert a 'voc', 'coco' or 'yolo' source at `src` into images/, labels/ and a dataset yaml in `dst`."""
    if not src.exists():
        raise UserInputError(f"--from {fmt}: source not found: {src}")
    out = OutputDir(dst, src, options.force, options.link)
    samples, source_names, notes = READERS[fmt](src)
    cmap = class_map(options.classes, source_names)
    jobs = split_jobs(samples, [s.split for s in samples], [s.image for s in samples], options.val, options.seed)

    def write(job: tuple[DetSample, str, str]) -> tuple[str, int]:
        sample, split, stem = job
        rows = [(cmap.ids[c], *xywh) for c, *xywh in sample.boxes if c in cmap.ids]
        out.image(sample.image, split, stem)
        out.labels(split, stem, rows)
        return split, len(rows)

    with out:
        written = run_parallel(write, jobs, f"convert {fmt}")
        yaml = out.commit(
            options.name or dst.name,
            dataset_yaml(cmap.names, [split for _, split, _ in jobs], masks=False),
            header=f"# yoloseg data convert --from {fmt} {src}\n",
        )
    boxes: dict[str, int] = {}
    for split, n in written:
        boxes[split] = boxes.get(split, 0) + n
    return ConvertResult(yaml, per_split(split for split, _ in written), boxes, cmap.names, notes)


def _image_index(root: Path) -> dict[str, list[Path]]:
    """Images under `root` by file name and by stem, to find an annotation's image wherever it lies."""
    index: dict[str, list[Path]] = {}
    for f in sorted(root.rglob("*.*")):
        if is_image(f):
            index.setdefault(f.name, []).append(f)
            index.setdefault(f.stem, []).append(f)
    return index


def _find_image(candidates: list[Path], index: dict[str, list[Path]], *keys: str) -> Path | None:
    """The first existing candidate, else the only indexed image with one of `keys` as its name or stem."""
    for c in candidates:
        if c.is_file():
            return c
    for key in keys:
        if len(found := index.get(key, [])) == 1:
            return found[0]
    return None


def _clip_box(x0: float, y0: float, x1: float, y1: float, w: float, h: float) -> tuple[float, ...] | None:
    """Pixel corners -> normalized (xc, yc, w, h) clipped to the image; None for an empty box."""
    x0, x1 = np.clip([x0, x1], 0, w) / w
    y0, y1 = np.clip([y0, y1], 0, h) / h
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0


# ----------------------------------------------------------------------------------------------------------- VOC
def read_voc(src: Path) -> tuple[list[DetSample], list[str], list[str]]:
    """Pascal VOC: *.xml annotations (VOCdevkit/VOC20xx/Annotations or next to the images), classes from the XMLs.

    Splits come from ImageSets/Main/{train,val,test}.txt or from train/val/test folders; objects marked
    `difficult` are left out, as in Ultralytics' VOC.yaml.
    """
    xmls = sorted(src.rglob("*.xml"))
    if not xmls:
        raise UserInputError(f"--from voc: no .xml annotation files under {src}")
    index, splits = _image_index(src), _voc_splits(src)
    parsed = run_parallel(lambda x: _read_voc_xml(x, index), xmls, "read VOC xml", transient=True)
    samples, bad, missing, difficult = [], [], [], 0
    for xml, result in zip(xmls, parsed):
        if isinstance(result, str):
            (missing if result.startswith("image not found") else bad).append(f"{xml}: {result}")
            continue
        image, boxes, n_difficult = result
        difficult += n_difficult
        split = splits.get(xml.stem) or path_split(xml, src)
        samples.append(DetSample(image, split, boxes))
    notes: list[str] = []
    skipped_note(notes, "unreadable VOC XML files", bad)
    skipped_note(notes, "annotations whose image was not found", missing)
    if difficult:
        notes.append(f"left out {difficult} objects marked difficult")
    if not samples:
        raise UserInputError(f"--from voc: no usable annotations under {src} ({(bad or missing)[0]})")
    names = sorted({box[0] for s in samples for box in s.boxes})
    if not names:
        raise UserInputError(f"--from voc: the annotations under {src} hold no objects")
    return samples, names, notes


def _voc_splits(src: Path) -> dict[str, str]:
    """Image stem -> split from every ImageSets/Main/{train,val,test}.txt under `src`."""
    splits = {}
    for split in ("train", "val", "test"):
        for listing in src.rglob(f"ImageSets/Main/{split}.txt"):
            splits.update({line.split()[0]: split for line in listing.read_text().splitlines() if line.strip()})
    return splits


def _read_voc_xml(xml: Path, index: dict[str, list[Path]]) -> tuple[Path, list[Box], int] | str:
    """(image, boxes, number of difficult objects) of one VOC XML, or why it cannot be used."""
    try:
        root = ET.parse(xml).getroot()
        if root.tag != "annotation":
            return f"root element is <{root.tag}>, not <annotation>"
        filename = (root.findtext("filename") or "").strip()
        image = _find_image(
            [xml.parent.parent / "JPEGImages" / filename, xml.parent / filename] if filename else [],
            index,
            filename,
            xml.stem,
        )
        if image is None:
            return f"image not found ({filename or xml.stem})"
        w, h = (float(root.findtext(f"size/{k}") or 0) for k in ("width", "height"))
        if w <= 0 or h <= 0:
            with Image.open(image) as im:
                w, h = im.size
        boxes, difficult = [], 0
        for obj in root.iter("object"):
            if (obj.findtext("difficult") or "0").strip() == "1":
                difficult += 1
                continue
            name = (obj.findtext("name") or "").strip()
            x0, y0, x1, y1 = (float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            if not name:
                return "an <object> has no <name>"
            if box := _clip_box(x0 - 1, y0 - 1, x1 - 1, y1 - 1, w, h):  # VOC pixel coordinates start at 1
                boxes.append((name, *box))
        return image, boxes, difficult
    except (ET.ParseError, TypeError, ValueError, OSError) as e:
        return str(e) or type(e).__name__


# ---------------------------------------------------------------------------------------------------------- COCO
def read_coco(src: Path) -> tuple[list[DetSample], list[str], list[str]]:
    """COCO instances JSON: one file, or a folder of them (annotations/instances_<split>.json or Roboflow's
    <split>/_annotations.coco.json). Classes are the categories in id order; crowd annotations are left out."""
    files = [src] if src.is_file() else sorted(src.rglob("instances_*.json")) or sorted(src.rglob("*.json"))
    if not files:
        raise UserInputError(f"--from coco: no .json files under {src}")
    index = _image_index(src if src.is_dir() else src.parent)
    categories: dict[int, dict[str, Any]] = {}
    entries, missing, crowd = [], [], 0
    for file in files:
        data = _load_coco_json(file)
        for cat in data["categories"]:
            old = categories.setdefault(int(cat["id"]), cat)
            if old["name"] != cat["name"]:
                raise UserInputError(
                    f"--from coco: category id {cat['id']} is {old['name']!r} in one file and {cat['name']!r} in {file}"
                )
        by_image: dict[Any, list[dict]] = {}
        for ann in data["annotations"]:
            by_image.setdefault(ann.get("image_id"), []).append(ann)
        raw_split = file.stem.removeprefix("instances_")
        split = split_name(raw_split) or split_name(file.parent.name)
        for img in data["images"]:
            fn = str(img.get("file_name", ""))
            image = _find_image(
                [
                    file.parent / fn,
                    file.parent.parent / raw_split / fn,
                    file.parent.parent / "images" / raw_split / fn,
                    file.parent.parent / "images" / fn,
                ],
                index,
                Path(fn).name,
            )
            if image is None:
                missing.append(f"{fn} (in {file.name})")
                continue
            anns = by_image.get(img.get("id"), [])
            crowd += sum(bool(a.get("iscrowd")) for a in anns)
            entries.append((image, split, img, [a for a in anns if not a.get("iscrowd")]))
    used = {int(a["category_id"]) for *_, anns in entries for a in anns}
    unknown = used - set(categories)
    if unknown:
        raise UserInputError(
            f"--from coco: annotations use category ids {sorted(unknown)[:5]}, which are missing from 'categories'"
        )

    def is_root(i: int) -> bool:  # Roboflow exports add an unused category that is the others' supercategory
        return any(c.get("supercategory") == categories[i]["name"] for j, c in categories.items() if j != i)

    ids = [i for i in sorted(categories) if i in used or not is_root(i)]
    names = [str(categories[i]["name"]) for i in ids]
    samples = [
        DetSample(image, split, _coco_boxes(img, anns, categories, image)) for image, split, img, anns in entries
    ]
    notes: list[str] = []
    skipped_note(notes, "images listed in the JSON but not found", missing)
    if crowd:
        notes.append(f"left out {crowd} crowd annotations (iscrowd=1)")
    if not samples:
        raise UserInputError(f"--from coco: none of the images listed in {src} were found")
    return samples, names, notes


def _load_coco_json(file: Path) -> dict[str, Any]:
    """A COCO instances JSON, checked for its three lists."""
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except (ValueError, OSError) as e:
        raise UserInputError(f"--from coco: {file} is not valid JSON: {e}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise UserInputError(f"--from coco: {file} has no '{key}' list, so it is not a COCO instances file")
    return data


def _coco_boxes(img: dict, anns: list[dict], categories: dict[int, dict], image: Path) -> list[Box]:
    """Normalized boxes of one COCO image ([x, y, w, h] pixels -> centre/size fractions)."""
    w, h = float(img.get("width") or 0), float(img.get("height") or 0)
    if w <= 0 or h <= 0:
        with Image.open(image) as im:
            w, h = im.size
    boxes = []
    for ann in anns:
        x, y, bw, bh = (float(v) for v in ann["bbox"])
        if box := _clip_box(x, y, x + bw, y + bh, w, h):
            boxes.append((str(categories[int(ann["category_id"])]["name"]), *box))
    return boxes


# ---------------------------------------------------------------------------------------------------------- YOLO
def read_yolo(src: Path) -> tuple[list[DetSample], list[str], list[str]]:
    """An Ultralytics/YOLO detection dataset (its yaml, or a folder holding one yaml): re-split, subset or rename."""
    yamls = [src] if src.is_file() else sorted(src.glob("*.yaml")) + sorted(src.glob("*.yml"))
    if len(yamls) != 1:
        raise UserInputError(
            f"--from yolo: expected one dataset yaml in {src}, found {len(yamls)}; pass the yaml itself"
        )
    try:
        data = load_data_config(yamls[0], "det")
    except UserInputError as e:
        raise UserInputError(f"--from yolo: {str(e).removeprefix('--det: ')}") from None
    names = [str(n) for n in data["names"].values()]
    samples, bad = [], []
    for split in ("train", "val", "test"):
        if not data.get(split):
            continue
        for image in list_images(data[split]):
            file = label_path(image)
            try:
                rows = read_yolo_labels(file) if file.is_file() else np.zeros((0, 5))
            except (ValueError, OSError) as e:
                bad.append(f"{file}: {e}")
                continue
            if len(rows) and (rows[:, 0].max() >= len(names) or (rows[:, 0] % 1).any() or rows[:, 0].min() < 0):
                raise UserInputError(
                    f"--from yolo: {file}: class ids {sorted(set(rows[:, 0].tolist()))} are not "
                    f"all in 0-{len(names) - 1}"
                )
            boxes = [(names[int(r[0])], *(float(v) for v in r[1:])) for r in rows]
            samples.append(DetSample(image, split, boxes))
    notes: list[str] = []
    skipped_note(notes, "images whose label file is malformed", bad)
    if not samples:
        raise UserInputError(f"--from yolo: no images found for {yamls[0]}")
    return samples, names, notes


READERS = {"voc": read_voc, "coco": read_coco, "yolo": read_yolo}
