"""Masks read exactly as stored: class ids, never a colour image averaged into grey."""

from __future__ import annotations

import cv2
import numpy as np
from ultralytics.data.utils import read_mask

from yoloseghw.utils.errors import UserInputError

CONVERT_HINT = "convert colour masks to class ids: yoloseg data convert SRC --from masks|voc-seg|camvid --to OUT"
COLOUR = "a colour mask, not class ids"
COLOUR_MODES = {"RGB", "RGBA", "LA"}  # PIL modes of masks stored as colour images


def read_class_mask(file: str, mode: str) -> np.ndarray:
    """The class ids of a mask PNG of PIL image mode `mode`, exactly as stored.

    Single-channel and palette masks are read by Ultralytics' `read_mask` (16-bit ids kept). A colour mask is read
    unchanged: equal channels are grey ids and are taken as they are; any other colour mask is a UserInputError
    naming the file, since converting it to grey would change class ids without a word.
    """
    if mode not in COLOUR_MODES:
        return read_mask(file, mode)
    mask = cv2.imread(file, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise FileNotFoundError(f"Semantic mask not found or unreadable: {file}")
    if mask.ndim == 3:
        colour = mask[..., :3] if mask.shape[2] >= 3 else mask[..., :1]
        if not (colour == colour[..., :1]).all():
            raise UserInputError(f"{file}: {COLOUR} ({CONVERT_HINT})")
        mask = colour[..., 0]
    return mask
