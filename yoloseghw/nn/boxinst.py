"""BoxInst's two losses of a mask learnt from boxes (Tian et al., CVPR 2021), for one class probability map:

- the projection (multiple-instance) loss: every row and every column of a box holds the class somewhere;
- the pairwise colour-affinity loss: two neighbouring cells of near-equal colour, one of them inside a box, take the
  same label. It is what keeps a mask learnt from boxes off the background the box also holds: that background
  continues past the box's edge in the same colour, where the class is absent.

The maps are at the semantic head's resolution (a stride-8 grid); `cells` places a box on it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

EPS = 1e-6
COLOUR_THETA = 2.0  # BoxInst's colour similarity exp(-||Lab_i - Lab_j|| / theta) ...
COLOUR_SIMILAR = 0.3  # ... and the similarity above which two neighbours must share their label
NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def cells(xywh: torch.Tensor, h: int, w: int, inner: bool = False) -> tuple[int, int, int, int]:
    """A normalised xywh box as cells (x0, y0, x1, y1, end exclusive) of an h x w map: those it touches, or with
    `inner` those whose centres it holds (as a nearest-neighbour resize of its mask would have them). At least one
    cell either way: a box narrower than a cell gets the cell of its centre."""
    x, y, bw, bh = xywh.tolist()
    x0, x1 = _span(x, bw, w, inner)
    y0, y1 = _span(y, bh, h, inner)
    return x0, y0, x1, y1


def _span(centre: float, size: float, n: int, inner: bool) -> tuple[int, int]:
    """The cells [start, end) of a map n cells long that a normalised interval touches (or, `inner`, holds)."""
    lo, hi = (centre - size / 2) * n, (centre + size / 2) * n
    start, end = (math.ceil(lo - 0.5), math.floor(hi - 0.5) + 1) if inner else (math.floor(lo), math.ceil(hi))
    if end <= start:
        start = int(centre * n)
    start = min(max(start, 0), n - 1)
    return start, max(min(end, n), start + 1)


def projection_loss(prob: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """The projection loss of a probability map [h, w] for one box (x0, y0, x1, y1 in cells): every row and column
    inside the box holds the class somewhere (their maxima are pulled to 1). Zero for a mask that fills each row and
    column."""
    x0, y0, x1, y1 = box
    crop = prob[y0:y1, x0:x1]
    rows, cols = crop.amax(1), crop.amax(0)
    return -(torch.log(rows.clamp(min=EPS)).mean() + torch.log(cols.clamp(min=EPS)).mean())


def lab_image(rgb: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """[3, h, w] CIE Lab (L 0-100) of an RGB image [3, H, W] in 0-1, averaged down to the h x w grid."""
    small = torch.nn.functional.interpolate(rgb[None].float(), size=(h, w), mode="area")[0]
    lab = cv2.cvtColor(np.ascontiguousarray(small.permute(1, 2, 0).cpu().numpy(), np.float32), cv2.COLOR_RGB2LAB)
    return torch.from_numpy(lab).permute(2, 0, 1).to(rgb.device)


def pairwise_loss(prob: torch.Tensor, lab: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """The colour-affinity loss of a probability map [h, w]: over the pairs of 8-neighbour cells whose Lab colours
    [3, h, w] are similar (COLOUR_SIMILAR) and whose first cell is `inside` a box ([h, w] bool), the mean of
    -log P(same label) = -log(p_i p_j + (1 - p_i)(1 - p_j)). Zero where no such pair exists."""
    h, w = prob.shape
    losses, count = prob.new_zeros(()), 0
    for dy, dx in NEIGHBOURS:
        a = (slice(max(-dy, 0), h - max(dy, 0)), slice(max(-dx, 0), w - max(dx, 0)))  # cell i
        b = (slice(max(dy, 0), h - max(-dy, 0)), slice(max(dx, 0), w - max(-dx, 0)))  # its neighbour j at (dy, dx)
        similarity = torch.exp(-(lab[(slice(None), *a)] - lab[(slice(None), *b)]).norm(dim=0) / COLOUR_THETA)
        edges = (similarity >= COLOUR_SIMILAR) & inside[a]
        if edges.any():
            pi, pj = prob[a][edges], prob[b][edges]
            losses = losses - torch.log((pi * pj + (1 - pi) * (1 - pj)).clamp(min=EPS)).sum()
            count += int(edges.sum())
    return losses / max(count, 1)
