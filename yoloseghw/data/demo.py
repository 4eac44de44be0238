"""Built-in demo data: a box-only and a mask-only set of generated road-like scenes, with their yamls."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

DET_NAMES = ["car", "person", "sign"]
SEG_NAMES = ["sky", "road", "vegetation", "car", "person"]
SIZE = 128  # image side in pixels
SKY, ROAD, VEGETATION, CAR, PERSON = range(5)  # semantic ids, as SEG_NAMES
DEMO_DIR = Path("datasets") / "yoloseg-demo"  # where `yoloseg train` with no data writes the demo
DEMO_DEFAULTS = {"epochs": 15, "imgsz": 128, "batch": 16, "nbs": 16}  # its training options (an optimizer step a batch)


def _noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Smooth texture noise in [-scale, scale]."""
    small = rng.uniform(-scale, scale, (shape[0] // 8 + 1, shape[1] // 8 + 1)).astype(np.float32)
    fine = rng.uniform(-scale / 2, scale / 2, shape).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC) + fine


def _background(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sky, vegetation band and road with lane marks; returns (BGR image, class map)."""
    img = np.zeros((SIZE, SIZE, 3), np.float32)
    mask = np.full((SIZE, SIZE), SKY, np.uint8)
    horizon = int(rng.integers(SIZE * 3 // 10, SIZE * 9 // 20))
    grass = horizon + int(rng.integers(6, 14))
    img[:] = (235, 190, 140) + rng.uniform(-20, 20, 3)  # sky (BGR)
    img[horizon:grass] = (60, 140, 60) + rng.uniform(-20, 20, 3)
    mask[horizon:grass] = VEGETATION
    road = np.array([110, 110, 110]) + rng.uniform(-25, 25)
    for y in range(grass, SIZE):  # road widening towards the camera, vegetation on the verges
        half = int(SIZE * (0.25 + 0.3 * (y - grass) / max(SIZE - grass, 1)))
        left, right = SIZE // 2 - half, SIZE // 2 + half
        img[y] = (60, 140, 60)
        mask[y] = VEGETATION
        img[y, max(left, 0) : min(right, SIZE)] = road
        mask[y, max(left, 0) : min(right, SIZE)] = ROAD
    for y in range(grass + 4, SIZE, 14):  # dashed centre line
        cv2.rectangle(img, (SIZE // 2 - 1, y), (SIZE // 2 + 1, y + 6), (240, 240, 240), -1)
    img += _noise(rng, (SIZE, SIZE), 18)[..., None]
    return img, mask


def _draw_car(img, mask, rng, x, y, w, h) -> None:
    colour = tuple(float(c) for c in rng.uniform(20, 230, 3))
    cv2.rectangle(img, (x, y + h // 3), (x + w, y + h), colour, -1)
    cv2.rectangle(img, (x + w // 5, y), (x + 4 * w // 5, y + h // 3), colour, -1)
    cv2.rectangle(img, (x + w // 4, y + 2), (x + 3 * w // 4, y + h // 3), (40, 30, 30), -1)  # window
    for wx in (x + w // 5, x + 4 * w // 5):
        cv2.circle(img, (wx, y + h), max(h // 6, 2), (15, 15, 15), -1)
    cv2.rectangle(mask, (x, y + h // 3), (x + w, y + h), CAR, -1)
    cv2.rectangle(mask, (x + w // 5, y), (x + 4 * w // 5, y + h // 3), CAR, -1)
    for wx in (x + w // 5, x + 4 * w // 5):
        cv2.circle(mask, (wx, y + h), max(h // 6, 2), CAR, -1)


def _draw_person(img, mask, rng, x, y, w, h) -> None:
    shirt = tuple(float(c) for c in rng.uniform(30, 255, 3))
    r = max(w // 3, 2)
    cv2.circle(img, (x + w // 2, y + r), r, (140, 170, 220), -1)  # head
    cv2.rectangle(img, (x, y + 2 * r), (x + w, y + 2 * r + (h - 2 * r) // 2), shirt, -1)
    cv2.rectangle(img, (x + 1, y + 2 * r + (h - 2 * r) // 2), (x + w - 1, y + h), (70, 40, 30), -1)
    cv2.circle(mask, (x + w // 2, y + r), r, PERSON, -1)
    cv2.rectangle(mask, (x, y + 2 * r), (x + w, y + h), PERSON, -1)


def _draw_sign(img, rng, x, y, w, h) -> None:
    cv2.rectangle(img, (x + w // 2 - 1, y + w), (x + w // 2 + 1, y + h), (80, 80, 80), -1)  # pole
    colour = (30, 30, 220) if rng.random() < 0.5 else (30, 200, 230)
    cv2.circle(img, (x + w // 2, y + w // 2), w // 2, colour, -1)
    cv2.circle(img, (x + w // 2, y + w // 2), max(w // 4, 1), (245, 245, 245), -1)


def render_scene(
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, float, float, float, float]]]:
    """One scene: (BGR uint8 image, semantic class map, YOLO boxes as (cls, xc, yc, w, h) normalized)."""
    img, mask = _background(rng)
    boxes = []
    for _ in range(int(rng.integers(1, 5))):
        kind = int(rng.choice(3, p=[0.5, 0.3, 0.2]))
        if kind == 0:
            w = int(rng.integers(22, 44))
            h = int(w * rng.uniform(0.55, 0.75))
            x, y = int(rng.integers(10, SIZE - w - 10)), int(rng.integers(SIZE // 2, SIZE - h - 6))
            _draw_car(img, mask, rng, x, y, w, h)
            box = (x, y, x + w, y + h + max(h // 6, 2))
        elif kind == 1:
            w = int(rng.integers(8, 14))
            h = int(w * rng.uniform(2.4, 3.0))
            x, y = int(rng.integers(2, SIZE - w - 2)), int(rng.integers(SIZE * 2 // 5, SIZE - h - 2))
            _draw_person(img, mask, rng, x, y, w, h)
            box = (x, y, x + w, y + h)
        else:
            w = int(rng.integers(10, 18))
            h = int(w * rng.uniform(2.2, 3.0))
            x, y = (
                int(rng.choice([rng.integers(2, 24), rng.integers(SIZE - 24, SIZE - w - 2)])),
                int(rng.integers(20, 60)),
            )
            _draw_sign(img, rng, x, y, w, h)
            box = (x, y, x + w, y + h)
        x0, y0, x1, y1 = (min(max(v, 0), SIZE) for v in box)
        boxes.append((kind, (x0 + x1) / 2 / SIZE, (y0 + y1) / 2 / SIZE, (x1 - x0) / SIZE, (y1 - y0) / SIZE))
    return np.clip(img, 0, 255).astype(np.uint8), mask, boxes


def _write_yaml(path: Path, names: list[str], masks: bool) -> None:
    lines = ["# yoloseg built-in demo data (synthetic road scenes)", "train: images/train", "val: images/val"]
    if masks:
        lines.append("masks_dir: masks")
    lines.append("names:")
    lines += [f"  {i}: {n}" for i, n in enumerate(names)]
    path.write_text("\n".join(lines) + "\n")


def make_demo(root: str | Path, n_train: int = 200, n_val: int = 50, seed: int = 0) -> tuple[Path, Path]:
    """Write `root/demo-det` (boxes only) and `root/demo-seg` (masks only); return their yaml paths.

    The two sets are rendered from different random scenes, as two real datasets would be. They are written into a
    hidden folder in `root` and moved into place once complete, so that a failed write (a full disk) leaves no half
    demo behind; it is a UserInputError naming the file.
    """
    from yoloseghw.utils.errors import UserInputError

    if n_train < 1 or n_val < 1:
        raise UserInputError(f"--train-images and --val-images must be at least 1, got {n_train} and {n_val}")
    root = Path(root)
    made = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserInputError(f"could not write the demo in {root}: {e.strerror or e}") from None
    for stale in root.glob(".yoloseg-demo-*"):  # what a killed earlier run left
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".yoloseg-demo-{os.getpid()}"
    try:
        tmp.mkdir()
        _render_demo(tmp, n_train, n_val, seed)
        for name in ("demo-det", "demo-seg"):
            (tmp / name).rename(root / name)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if made and not any(root.iterdir()):
            root.rmdir()
        raise UserInputError(f"could not write the demo in {root}: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / "demo-det" / "demo-det.yaml", root / "demo-seg" / "demo-seg.yaml"


def _render_demo(root: Path, n_train: int, n_val: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("val", n_val)):
        for sub in ("demo-det/images", "demo-det/labels", "demo-seg/images", "demo-seg/masks"):
            (root / sub / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img, _, boxes = render_scene(rng)
            _imwrite(root / "demo-det/images" / split / f"{i:04d}.jpg", img)
            text = "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes)
            (root / "demo-det/labels" / split / f"{i:04d}.txt").write_text(text)
            img, mask, _ = render_scene(rng)
            _imwrite(root / "demo-seg/images" / split / f"{i:04d}.jpg", img)
            _imwrite(root / "demo-seg/masks" / split / f"{i:04d}.png", mask)
    _write_yaml(root / "demo-det" / "demo-det.yaml", DET_NAMES, masks=False)
    _write_yaml(root / "demo-seg" / "demo-seg.yaml", SEG_NAMES, masks=True)


def _imwrite(path: Path, image: np.ndarray) -> None:
    """cv2.imwrite, whose failure (a full disk) is an OSError like any other write's."""
    if not cv2.imwrite(str(path), image):
        raise OSError(28, "could not write the file (is the disk full?)", str(path))


def make_demo_if_missing(root: Path) -> tuple[Path, Path]:
    """The demo pair under `root`, generated on first use."""
    from yoloseghw.utils.console import console

    det, seg = root / "demo-det" / "demo-det.yaml", root / "demo-seg" / "demo-seg.yaml"
    if not (det.is_file() and seg.is_file()):
        console.print(f"Generating the built-in demo datasets in {root} ...")
        det, seg = make_demo(root)
    return det, seg
