"""Network inputs from images: Ultralytics' LetterBox to the model's square, RGB, float 0-1 [B,3,H,W], and the
sample of both datasets' images that calibration and benchmarks run on."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
from ultralytics.data.augment import LetterBox
from ultralytics.data.utils import IMG_FORMATS

from yoloseghw.utils.errors import UserInputError


def network_input(images: list[np.ndarray], letterbox: LetterBox) -> np.ndarray:
    """BGR uint8 images -> the letterboxed RGB float32 batch [B,3,H,W] in 0-1 that every backend takes.

    The channel flip and the transpose are done on the bytes, then one conversion and an in-place division: the same
    values as dividing the float array, faster (a CamVid image at 640 px: 1.2 ms instead of 5.6; docs/benchmarks.md)."""
    batch = np.ascontiguousarray(np.stack([letterbox(image=im) for im in images])[..., ::-1].transpose(0, 3, 1, 2))
    out = batch.astype(np.float32)
    out /= 255
    return out


def letterboxed(files: list[Path], imgsz: int | tuple[int, int]) -> list[np.ndarray]:
    """Each readable image file as a network input [1,3,H,W] at `imgsz` (unreadable files are left out)."""
    box = LetterBox(imgsz if isinstance(imgsz, tuple) else (imgsz, imgsz), auto=False)
    images = (cv2.imread(str(f)) for f in files)
    return [network_input([im], box) for im in images if im is not None]


def sample_images(det_data: dict, seg_data: dict, n: int, seed: int = 0, split: str = "train") -> list[Path]:
    """`n` images of `split`, half from each dataset (fewer when a set is smaller), drawn at random with `seed`."""
    if n < 1:
        raise UserInputError(f"--calib must be at least 1, got {n}")
    pools = []
    for flag, data in (("--det", det_data), ("--seg", seg_data)):
        folder = Path(data[split]) if isinstance(data[split], str) else Path(data[split][0])
        files = sorted(p for p in folder.rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)
        if not files:
            raise UserInputError(f"{flag}: no {split} images in {folder}")
        pools.append(files)
    rng = random.Random(seed)
    half = (n + 1) // 2
    det = rng.sample(pools[0], min(half, len(pools[0])))
    seg = rng.sample(pools[1], min(n - len(det), len(pools[1])))
    return det + seg
