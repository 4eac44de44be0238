"""`yoloseg data show`: a PNG grid of random samples with their boxes (detection) or mask overlay (semantic), drawn
by Ultralytics' `plot_images`, plus a legend of the classes shown."""

from __future__ import annotations

import math
import random
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from ultralytics.data.utils import read_mask
from ultralytics.utils.plotting import colors, plot_images

from yoloseghw.data.tools.common import IGNORE, label_lut, label_path, list_images, load_dataset, read_yolo_labels
from yoloseghw.utils.console import warn
from yoloseghw.utils.drawing import legend_entries, legend_strip
from yoloseghw.utils.errors import UserInputError

PAD_COLOUR = 114  # letterbox grey, as in Ultralytics


def show(
    path: Path, split: str = "train", n: int = 16, out: Path = Path("grid.png"), seed: int = 0, imgsz: int = 320
) -> tuple[Path, int, tuple[int, int]]:
    """Draw `n` random images of one split into a grid of ceil(sqrt(n))^2 cells of `imgsz` px, with a legend below.

    Returns (output path, images drawn, (width, height) of the PNG).
    """
    if n < 1 or imgsz < 32:
        raise UserInputError(f"--n must be at least 1 and --imgsz at least 32 (got {n} and {imgsz})")
    kind, data = load_dataset(path)
    if not data.get(split):
        raise UserInputError(f"--split: {path} has no '{split}' split")
    files = list_images(data[split])
    if not files:
        raise UserInputError(f"--split: no images in the {split} split of {path}")
    lut = label_lut(data) if kind == "seg" else None
    cells, masks, cls, boxes, index, shown = [], [], [], [], [], []
    for file in random.Random(seed).sample(files, min(n, len(files))):
        img = cv2.imread(str(file))
        if img is None:
            warn(f"skipped unreadable image {file}")
            continue
        cell, scale, pad = _letterbox(img, imgsz, cv2.INTER_AREA, PAD_COLOUR)
        if kind == "det":
            rows = _labels(file)
            h, w = img.shape[:2]
            for c, x, y, bw, bh in rows:  # normalized in the image -> normalized in the cell
                cls.append(int(c))
                boxes.append(
                    (
                        (x * w * scale + pad[0]) / imgsz,
                        (y * h * scale + pad[1]) / imgsz,
                        bw * w * scale / imgsz,
                        bh * h * scale / imgsz,
                    )
                )
                index.append(len(cells))
        else:
            masks.append(_mask(file, data.get("masks_dir", "masks"), lut, img.shape[:2], imgsz))
        cells.append(cell[..., ::-1])  # BGR -> RGB
        shown.append(str(file))
    if not cells:
        raise UserInputError(f"no readable images among the {min(n, len(files))} drawn from {path} ({split})")
    labels = (
        {
            "cls": np.array(cls, np.int64),
            "bboxes": np.array(boxes, np.float32).reshape(-1, 4),
            "batch_idx": np.array(index, np.int64),
        }
        if kind == "det"
        else {"semantic_mask": np.stack(masks)}
    )
    present = sorted(set(cls)) if kind == "det" else sorted(set(np.unique(np.stack(masks)).tolist()))
    cols = math.ceil(len(cells) ** 0.5)
    grid = plot_images(
        labels,
        np.stack(cells).transpose(0, 3, 1, 2),
        paths=shown,
        names=data["names"],
        save=False,
        max_subplots=len(cells),
        max_size=cols * imgsz,
        threaded=False,
    )
    entries = legend_entries(present, data["names"], colors)
    grid = np.vstack([np.asarray(grid), legend_strip(entries, grid.shape[1])])
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.ascontiguousarray(grid[..., ::-1])):
        raise UserInputError(f"--out: cannot write {out} (use a .png or .jpg name in a writable folder)")
    return out, len(cells), (grid.shape[1], grid.shape[0])


def _letterbox(img: np.ndarray, size: int, interpolation: int, pad: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Fit `img` into a size x size square, centred; returns (square, scale, (pad x, pad y))."""
    h, w = img.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    px, py = (size - nw) // 2, (size - nh) // 2
    square = np.full((size, size, *img.shape[2:]), pad, img.dtype)
    square[py : py + nh, px : px + nw] = cv2.resize(img, (nw, nh), interpolation=interpolation)
    return square, scale, (px, py)


def _labels(image: Path) -> np.ndarray:
    """YOLO rows of an image (empty when the label file is missing or malformed)."""
    file = label_path(image)
    try:
        return read_yolo_labels(file) if file.is_file() else np.zeros((0, 5))
    except (ValueError, OSError) as e:
        warn(f"ignored malformed label file {file}: {e}")
        return np.zeros((0, 5))


def _mask(image: Path, masks_dir: str, lut: np.ndarray, shape: tuple[int, int], size: int) -> np.ndarray:
    """Train-id mask of an image letterboxed like the image (all ignore when missing or unreadable)."""
    file = label_path(image, masks_dir, ".png")
    try:
        with Image.open(file) as im:
            mode = im.mode
        mask = read_mask(str(file), mode)
        ids = lut[np.minimum(mask, 255)].clip(0, 255).astype(np.uint8)
    except (OSError, ValueError) as e:
        warn(f"no mask drawn for {image}: {e}")
        ids = np.full(shape, IGNORE, np.uint8)
    return _letterbox(ids, size, cv2.INTER_NEAREST, IGNORE)[0]
