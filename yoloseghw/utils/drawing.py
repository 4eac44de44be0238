"""Class legends (a colour swatch and a name per class), drawn below a grid or inside an annotated image."""

from __future__ import annotations

import cv2
import numpy as np

from yoloseghw.utils.metrics import IGNORE

MIN_LEGEND_SIDE = 200
FONT = cv2.FONT_HERSHEY_SIMPLEX
Entry = tuple[tuple[int, int, int], str]  # (colour, text)


def legend_entries(ids: list[int], names: dict[int, str], colour_of) -> list[Entry]:
    """One entry per class id (255 is 'ignore', drawn black); `colour_of(id)` gives the swatch colour."""
    return [((0, 0, 0), "ignore") if i == IGNORE else (colour_of(i), f"{i} {names.get(i, i)}") for i in ids]


def _layout(entries: list[Entry], width: int, scale: float) -> tuple[list[tuple[int, int, Entry]], int, int]:
    """Place entries left to right, wrapping at `width`; returns (placements, total height, row height)."""
    row_h, swatch = round(24 * scale / 0.55), round(16 * scale / 0.55)
    placed, x, y, margin = [], 8, 0, 8
    for entry in entries:
        w = swatch + 6 + cv2.getTextSize(entry[1], FONT, scale, 1)[0][0] + 18
        if x + w > width and x > margin:
            x, y = margin, y + row_h
        placed.append((x, y, entry))
        x += w
    return placed, y + row_h + 8, row_h


def _draw(canvas: np.ndarray, placed: list[tuple[int, int, Entry]], scale: float, dy: int = 0) -> None:
    swatch = round(16 * scale / 0.55)
    for x, y, (colour, text) in placed:
        top = y + dy + round(6 * scale / 0.55)
        cv2.rectangle(canvas, (x, top), (x + swatch, top + swatch), tuple(int(c) for c in colour), -1)
        cv2.rectangle(canvas, (x, top), (x + swatch, top + swatch), (80, 80, 80), 1)
        cv2.putText(canvas, text, (x + swatch + 6, top + swatch - 2), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def legend_strip(entries: list[Entry], width: int, empty: str = "no labels in these images") -> np.ndarray:
    """A white strip `width` px wide holding the legend, to stack below a picture."""
    entries = entries or [((255, 255, 255), empty)]
    scale = 0.55
    placed, height, _ = _layout(entries, width, scale)
    strip = np.full((height, width, 3), 255, np.uint8)
    _draw(strip, placed, scale)
    return strip


def draw_legend(img: np.ndarray, entries: list[Entry]) -> np.ndarray:
    """Draw the legend on a translucent white panel in the image's bottom-left corner (in place; returns img).

    Images under MIN_LEGEND_SIDE px on their short side get none: it would cover most of the picture."""
    h, w = img.shape[:2]
    if not entries or min(h, w) < MIN_LEGEND_SIDE:
        return img
    scale = float(np.clip(max(h, w) / 1400, 0.35, 0.9))
    placed, height, _ = _layout(entries, int(w * 0.6), scale)
    right = max(x + 6 + round(16 * scale / 0.55) + cv2.getTextSize(t, FONT, scale, 1)[0][0] for x, _, (_, t) in placed)
    top = max(h - height - 4, 0)
    panel = img[top : h - 4, 4 : min(right + 14, w)]
    panel[:] = cv2.addWeighted(panel, 0.3, np.full_like(panel, 255), 0.7, 0)
    _draw(img, [(x + 4, y, e) for x, y, e in placed], scale, dy=top)
    return img
