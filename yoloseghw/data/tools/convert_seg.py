"""Mask datasets -> the Ultralytics semantic layout (images/, masks/ of uint8 train ids with 255 = ignore, yaml).

Formats: Pascal VOC segmentation, Cityscapes gtFine labelIds, ADE20K (ADEChallengeData2016), CamVid (SegNet 11-class
index masks, or colour masks grouped into those 11 classes), CamVid32 (the 32-colour originals), and plain index masks.
Class names and id mappings of VOC, Cityscapes and ADE20K come from Ultralytics' own dataset yamls.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from ultralytics.utils import ROOT, YAML

from yoloseghw.data.tools.common import (
    IGNORE,
    ConvertOptions,
    ConvertResult,
    OutputDir,
    class_map,
    dataset_yaml,
    is_image,
    path_split,
    per_split,
    read_label_image,
    run_parallel,
    skipped_note,
    split_jobs,
    split_name,
)
from yoloseghw.utils.errors import UserInputError

Pair = tuple[Path, Path, "str | None", str]  # image, mask, split, output stem

# CamVid colour coding (label_colors.txt of Brostow et al. 2008): 31 classes and Void (ignore)
CAMVID32 = {
    "Animal": (64, 128, 64),
    "Archway": (192, 0, 128),
    "Bicyclist": (0, 128, 192),
    "Bridge": (0, 128, 64),
    "Building": (128, 0, 0),
    "Car": (64, 0, 128),
    "CartLuggagePram": (64, 0, 192),
    "Child": (192, 128, 64),
    "Column_Pole": (192, 192, 128),
    "Fence": (64, 64, 128),
    "LaneMkgsDriv": (128, 0, 192),
    "LaneMkgsNonDriv": (192, 0, 64),
    "Misc_Text": (128, 128, 64),
    "MotorcycleScooter": (192, 0, 192),
    "OtherMoving": (128, 64, 64),
    "ParkingBlock": (64, 192, 128),
    "Pedestrian": (64, 64, 0),
    "Road": (128, 64, 128),
    "RoadShoulder": (128, 128, 192),
    "Sidewalk": (0, 0, 192),
    "SignSymbol": (192, 128, 128),
    "Sky": (128, 128, 128),
    "SUVPickupTruck": (64, 128, 192),
    "TrafficCone": (0, 0, 64),
    "TrafficLight": (0, 64, 64),
    "Train": (192, 64, 128),
    "Tree": (128, 128, 0),
    "Truck_Bus": (192, 128, 192),
    "Tunnel": (64, 0, 64),
    "VegetationMisc": (192, 192, 0),
    "Wall": (64, 192, 0),
}
CAMVID_VOID = (0, 0, 0)
# The 11 classes of the SegNet CamVid version (index masks 0-10, 11 = void) and the usual grouping of the 31 originals
CAMVID11 = ["sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car", "pedestrian", "bicyclist"]
CAMVID32_TO_11 = {
    "Sky": "sky",
    "Bridge": "building",
    "Building": "building",
    "Wall": "building",
    "Tunnel": "building",
    "Archway": "building",
    "Column_Pole": "pole",
    "TrafficCone": "pole",
    "Road": "road",
    "LaneMkgsDriv": "road",
    "LaneMkgsNonDriv": "road",
    "Sidewalk": "pavement",
    "ParkingBlock": "pavement",
    "RoadShoulder": "pavement",
    "Tree": "tree",
    "VegetationMisc": "tree",
    "SignSymbol": "sign",
    "Misc_Text": "sign",
    "TrafficLight": "sign",
    "Fence": "fence",
    "Car": "car",
    "SUVPickupTruck": "car",
    "Truck_Bus": "car",
    "Train": "car",
    "OtherMoving": "car",
    "Pedestrian": "pedestrian",
    "Child": "pedestrian",
    "CartLuggagePram": "pedestrian",
    "Animal": "pedestrian",
    "Bicyclist": "bicyclist",
    "MotorcycleScooter": "bicyclist",
}
SEGNET_PAVEMENT = (60, 40, 222)  # SegNet's colour for pavement in its 11-class colour masks
MASK_DIR_WORDS = ("annot", "label", "mask")  # a folder whose name contains one of these (or starts with gt) holds masks
MASK_SUFFIXES = ("_L", "_mask", "_label", "_labels", "_labelIds", "_gt", "_annot", "_seg")  # stripped to pair files


@dataclass(frozen=True)
class SegFormat:
    """How to read one mask format: source class names, raw id -> class id, colour -> class id, file pairing."""

    names: list[str]
    index: np.ndarray | None  # 256 raw ids -> class id (255 ignore, -1 invalid); None: colour masks only
    palette: dict[tuple[int, int, int], int] | None  # RGB -> class id; None: index masks only
    pairs: Callable[[Path], tuple[list[Pair], list[str]]]
    hint: str = ""  # appended to 'wrong kind of mask' errors


def convert_seg(
    fmt: str,
    src: Path,
    dst: Path,
    options: ConvertOptions,
) -> ConvertResult:
    """Convert a mask dataset in `fmt` at `src` into images/, masks/ and a semantic dataset yaml in `dst`."""
    if not src.is_dir():
        raise UserInputError(f"--from {fmt}: source folder not found: {src}")
    out = OutputDir(dst, src, options.force, options.link)
    spec = seg_format(fmt)
    pairs, notes = spec.pairs(src)
    if not pairs:
        raise UserInputError(f"--from {fmt}: no image/mask pairs found under {src} (see docs/data.md for the layout)")
    placeholder = fmt == "masks" and not options.classes  # plain index masks come without class names
    cmap = class_map(options.classes, spec.names)
    lut = cmap.lut(spec.names)
    jobs = split_jobs(pairs, [p[2] for p in pairs], [Path(p[3]) for p in pairs], options.val, options.seed)

    def write(job: tuple[Pair, str, str]) -> tuple[str, int] | str:
        (image, mask_file, _, _), split, stem = job
        try:
            raw = read_label_image(mask_file)
            with Image.open(image) as im:
                size = im.size[::-1]
        except (OSError, ValueError) as e:
            return f"{mask_file}: {e}"
        if raw.shape[:2] != size:
            return f"{mask_file}: mask size {raw.shape[:2]} differs from image size {size}"
        ids = lut[decode(raw, spec, fmt, mask_file)]
        out.image(image, split, stem)
        out.mask(split, stem, ids)
        labelled = ids[ids != IGNORE]
        return split, int(labelled.max()) if labelled.size else -1

    with out:
        written = run_parallel(write, jobs, f"convert {fmt}")
        done = [w for w in written if not isinstance(w, str)]
        if not done:
            raise UserInputError(f"--from {fmt}: no usable image/mask pair ({written[0]})")
        skipped_note(notes, "unreadable or mismatched image/mask pairs", [w for w in written if isinstance(w, str)])
        names = [f"class{i}" for i in range(max(m for _, m in done) + 1)] if placeholder else cmap.names
        if placeholder:
            notes.append("class names are placeholders (class0, ...): name them with --classes '0=sky,1=road,...'")
        yaml = out.commit(
            options.name or dst.name,
            dataset_yaml(names, {s for s, _ in done}, masks=True),
            header=f"# yoloseg data convert --from {fmt} {src}\n# masks: class ids, 255 = ignore\n",
        )
    return ConvertResult(yaml, per_split(split for split, _ in done), None, names, notes)


def decode(raw: np.ndarray, spec: SegFormat, fmt: str, file: Path) -> np.ndarray:
    """Class ids (uint8, 255 = ignore) of a mask read by `read_label_image`, via the format's id table or palette."""
    if raw.ndim == 3:
        if spec.palette is None:
            raise UserInputError(f"--from {fmt}: {file} is a colour mask; this format expects index masks{spec.hint}")
        keys = (raw[..., 0].astype(np.int32) << 16) | (raw[..., 1].astype(np.int32) << 8) | raw[..., 2]
        uniq, inverse = np.unique(keys, return_inverse=True)
        colours = [((k >> 16) & 255, (k >> 8) & 255, k & 255) for k in uniq.tolist()]
        unknown = [c for c in colours if c not in spec.palette]
        if unknown:
            shown = ", ".join(f"RGB{c}" for c in unknown[:4]) + (", ..." if len(unknown) > 4 else "")
            raise UserInputError(f"--from {fmt}: {file}: colour {shown} is not in the {fmt} palette")
        return np.array([spec.palette[c] for c in colours], np.uint8)[inverse.reshape(-1)].reshape(keys.shape)
    if spec.index is None:
        raise UserInputError(f"--from {fmt}: {file} is an index mask; this format expects colour masks{spec.hint}")
    if raw.max(initial=0) > 255 or (bad := spec.index[raw] < 0).any():
        values = np.unique(raw[raw > 255] if raw.max() > 255 else raw[bad]).tolist()
        raise UserInputError(f"--from {fmt}: {file}: mask values {values[:8]} are not {fmt} class ids")
    return spec.index[raw].astype(np.uint8)


@cache
def seg_format(fmt: str) -> SegFormat:
    """The reading rules of one --from mask format."""
    if fmt == "voc-seg":
        names = ["background", *YAML.load(ROOT / "cfg/datasets/VOC.yaml")["names"].values()]
        index = _table(dict(zip(range(len(names)), range(len(names)))))
        return SegFormat(names, index, _voc_palette(len(names)), _voc_pairs)
    if fmt in ("cityscapes", "ade20k"):
        data = YAML.load(ROOT / f"cfg/datasets/{fmt}.yaml")
        mapping = {int(k): IGNORE if v == "ignore_label" else int(v) for k, v in data["label_mapping"].items()}
        return SegFormat(
            list(data["names"].values()),
            _table(mapping),
            None,
            _cityscapes_pairs if fmt == "cityscapes" else _generic_pairs,
        )
    if fmt == "camvid":
        palette = {rgb: CAMVID11.index(CAMVID32_TO_11[n]) for n, rgb in CAMVID32.items()}
        palette |= {SEGNET_PAVEMENT: CAMVID11.index("pavement"), CAMVID_VOID: IGNORE}
        return SegFormat(CAMVID11, _table({**{i: i for i in range(11)}, 11: IGNORE}), palette, _generic_pairs)
    if fmt == "camvid32":
        palette = {rgb: i for i, rgb in enumerate(CAMVID32.values())} | {CAMVID_VOID: IGNORE}
        return SegFormat(
            list(CAMVID32),
            None,
            palette,
            _generic_pairs,
            hint=" (CamVid index masks are the 11-class SegNet version: use --from camvid)",
        )
    if fmt == "masks":
        return SegFormat(
            [str(i) for i in range(IGNORE)],
            np.arange(256, dtype=np.int16),
            None,
            _generic_pairs,
            hint=" (class ids as pixel values, 255 = ignore)",
        )
    raise ValueError(f"unknown mask format {fmt}")


def _table(mapping: dict[int, int]) -> np.ndarray:
    """256-entry raw id -> class id table; ids not in `mapping` are invalid (-1), 255 stays ignore."""
    table = np.full(256, -1, np.int16)
    table[IGNORE] = IGNORE
    for raw, cls in mapping.items():
        if 0 <= raw < 256:
            table[raw] = cls
    return table


def _voc_palette(n: int) -> dict[tuple[int, int, int], int]:
    """The Pascal VOC colour map for ids 0..n-1 and 255 (the (224, 224, 192) object border, ignored)."""
    palette = {}
    for i in [*range(n), IGNORE]:
        r = g = b = 0
        c = i
        for j in range(8):
            r, g, b = r | (c & 1) << (7 - j), g | (c >> 1 & 1) << (7 - j), b | (c >> 2 & 1) << (7 - j)
            c >>= 3
        palette[(r, g, b)] = i
    return palette


# ------------------------------------------------------------------------------------------------- file pairing
def _voc_pairs(src: Path) -> tuple[list[Pair], list[str]]:
    """VOC: .../SegmentationClass/<id>.png with .../JPEGImages/<id>.jpg; splits from ImageSets/Segmentation."""
    pairs, missing = [], []
    for mask in sorted(src.rglob("SegmentationClass/*.png")):
        year = mask.parent.parent
        image = year / "JPEGImages" / f"{mask.stem}.jpg"
        if not image.is_file():
            missing.append(str(image))
            continue
        pairs.append((image, mask, _listed_split(year / "ImageSets" / "Segmentation", mask.stem), mask.stem))
    notes: list[str] = []
    skipped_note(notes, "masks without their JPEG image", missing)
    return pairs, notes


@cache
def _split_lists(folder: Path) -> dict[str, str]:
    """Image id -> split from {train,val,test}.txt in `folder`."""
    return {
        line.strip(): split
        for split in ("train", "val", "test")
        if (folder / f"{split}.txt").is_file()
        for line in (folder / f"{split}.txt").read_text().splitlines()
        if line.strip()
    }


def _listed_split(folder: Path, stem: str) -> str | None:
    return _split_lists(folder).get(stem)


def _cityscapes_pairs(src: Path) -> tuple[list[Pair], list[str]]:
    """Cityscapes: gtFine/<split>/<city>/*_gtFine_labelIds.png with leftImg8bit/<split>/<city>/*_leftImg8bit.png.
    The test split is left out (its public masks are all void)."""
    pairs, missing, test = [], [], 0
    for mask in sorted(src.rglob("*_gtFine_labelIds.png")):
        parts = mask.relative_to(src).parts
        if "gtFine" not in parts[:-1]:
            continue
        i = parts.index("gtFine")
        split = split_name(parts[i + 1]) if i + 2 < len(parts) else None
        if split == "test":
            test += 1
            continue
        stem = mask.name.removesuffix("_gtFine_labelIds.png")
        image = src.joinpath(*parts[:i], "leftImg8bit", *parts[i + 1 : -1], f"{stem}_leftImg8bit.png")
        if image.is_file():
            pairs.append((image, mask, split, stem))
        else:
            missing.append(str(image))
    notes = [f"left out the test split ({test} masks, all void in the public release)"] if test else []
    skipped_note(notes, "masks without their leftImg8bit image", missing)
    return pairs, notes


def _generic_pairs(src: Path) -> tuple[list[Pair], list[str]]:
    """Images and masks in separate folders, masks in folders named *annot*, *label*, *mask* or gt*; files paired by
    split and stem (mask suffixes such as _L or _mask ignored); splits from train/val/test folder names."""
    images: dict[tuple[str | None, str], Path] = {}
    masks: dict[tuple[str | None, str], Path] = {}
    for f in sorted(src.rglob("*.*")):
        if not is_image(f):
            continue
        rel = f.relative_to(src)
        is_mask = any(any(w in d.lower() for w in MASK_DIR_WORDS) or d.lower().startswith("gt") for d in rel.parts[:-1])
        stem = f.stem
        if is_mask:
            stem = next((stem.removesuffix(s) for s in MASK_SUFFIXES if stem.endswith(s)), stem)
        (masks if is_mask else images).setdefault((path_split(f, src), stem), f)
    pairs = [(image, masks[key], key[0], image.stem) for key, image in images.items() if key in masks]
    notes: list[str] = []
    skipped_note(notes, "images without a mask", [str(p) for k, p in images.items() if k not in masks])
    skipped_note(notes, "masks without an image", [str(p) for k, p in masks.items() if k not in images])
    return pairs, notes
