"""The two dataset configs (boxes-only and masks-only), their datasets and loaders, with strict label checks."""

from __future__ import annotations

from functools import partial
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from ultralytics.data.build import build_dataloader
from ultralytics.data.dataset import SemanticDataset, YOLODataset
from ultralytics.data.utils import check_det_dataset, read_mask
from ultralytics.utils import NUM_THREADS, YAML, colorstr

from yoloseghw.data.masks import COLOUR, COLOUR_MODES, read_class_mask
from yoloseghw.data.multitask import task_args
from yoloseghw.utils.console import warn
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.ultralytics import NO_LABELS, ScanMessages, caught_warnings, dataset_error_text, fatal_scan_message


def read_yaml_mapping(path: str | Path, flag: str, kind: str) -> dict[str, Any]:
    """The mapping in a yaml file; UserInputError (naming `flag` and `kind`) when missing, invalid or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{flag}: {kind} not found: {path}")
    try:
        raw = YAML.load(path)
    except Exception as e:
        raise UserInputError(f"{flag}: {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise UserInputError(f"{flag}: {path} is not a {kind} (expected a mapping)")
    return raw


def load_data_config(path: str | Path, task: str) -> dict[str, Any]:
    """Parse and resolve a detection ('det') or semantic ('seg') dataset yaml; never runs its `download:` key."""
    flag, path = f"--{task}", Path(path)
    raw = read_yaml_mapping(path, flag, "dataset yaml")
    if task == "det" and raw.get("masks_dir"):
        raise UserInputError(f"--det: {path} is a semantic dataset (it has 'masks_dir'); pass it as --seg")
    if task == "seg" and not raw.get("masks_dir"):
        raise UserInputError(
            f"--seg: {path} has no 'masks_dir' key, so it is not a semantic mask dataset; pass it as --det"
        )
    check_values(raw, flag, path)
    try:
        data = check_det_dataset(str(path), autodownload=False)
    except Exception as e:
        raise UserInputError(f"{flag}: {path}: {dataset_error_text(e)}") from None
    data["yaml_path"] = str(path)
    names = list(data["names"].values())
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        warn(f"{flag}: {path} names {', '.join(map(str, repeated))} more than once (their classes stay apart)")
    return data


def check_values(raw: dict[str, Any], flag: str, path: Path) -> None:
    """UserInputError for dataset yaml values of the wrong type or meaning, before Ultralytics reads them."""
    channels = raw.get("channels", 3)
    if channels != 3:
        raise UserInputError(f"{flag}: {path}: channels: {channels} (yoloseg trains on 3-channel RGB images)")
    mapping = raw.get("label_mapping")
    if mapping is not None and not (
        isinstance(mapping, dict) and all(isinstance(k, int) and isinstance(v, int) for k, v in mapping.items())
    ):
        raise UserInputError(f"{flag}: {path}: label_mapping must map raw mask ids to class ids (int: int)")


class DetDataset(ScanMessages, YOLODataset):
    """Ultralytics YOLODataset (images + YOLO txt boxes) that reports its scan messages."""


class SegDataset(ScanMessages, SemanticDataset):
    """Ultralytics SemanticDataset (images + PNG class masks, 255 = ignore) that reports its scan messages and caches
    its masks with its images: `cache='ram'` keeps each mask in RAM as uint8 at its cached image's size; `'disk'`
    writes each mask as a uint8 `.npy` beside its PNG (as Ultralytics does for images)."""

    mask_cache: list[np.ndarray] | None = None

    def verify_args(self) -> tuple:
        """Ultralytics' image/mask verification, with each mask first read exactly as stored (a colour mask whose
        channels differ is rejected there, where Ultralytics would read it as grey)."""
        verify, args = super().verify_args()
        return partial(verify_exact_mask, verify), args

    def cache_images(self) -> None:
        """Ultralytics' image cache, then the masks' (Ultralytics caches images only)."""
        super().cache_images()
        with ThreadPool(NUM_THREADS) as pool:
            if self.cache == "ram":
                self.mask_cache = pool.map(self._mask_at_image_size, range(self.ni))
            elif self.cache == "disk":
                pool.map(self._write_mask_npy, range(self.ni))

    def load_mask(self, index: int, image_shape: tuple[int, int] | None = None) -> np.ndarray:
        """The uint8 class-id mask: from the RAM or disk cache when there is one, else read from its PNG."""
        if self.mask_cache is not None:
            return self.mask_cache[index].copy()  # augmentations must not alter the cached mask
        npy = Path(self.labels[index]["mask_file"]).with_suffix(".npy")
        if self.cache == "disk" and npy.exists():
            mask = np.load(npy)
            return self.convert_label(mask) if self.label_mapping else mask
        return super().load_mask(index, image_shape)

    def _mask_at_image_size(self, index: int) -> np.ndarray:
        mask, (h, w) = super().load_mask(index), self.im_hw[index]
        return mask if mask.shape[:2] == (h, w) else cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)

    def _write_mask_npy(self, index: int) -> None:
        label = self.labels[index]
        png, npy = Path(label["mask_file"]), Path(label["mask_file"]).with_suffix(".npy")
        if not npy.exists() or npy.stat().st_mtime < png.stat().st_mtime:  # the ids as stored, before label_mapping
            try:
                np.save(npy, read_mask(str(png), label["mode"]).astype(np.uint8), allow_pickle=False)
            except OSError:  # a read-only mask folder: this mask is read from its PNG
                npy.unlink(missing_ok=True)


BAD_MASK = "the mask is empty or not an image (a PNG of class ids)"


def verify_exact_mask(verify: Any, args: tuple) -> tuple:
    """Ultralytics' `verify_image_mask` for one (image, mask, prefix, invalid) tuple, after the exact-read check of
    a colour mask; a colour mask that is not grey gives Ultralytics' rejected-sample result with our message."""
    im_file, mask_file, prefix = args[:3]
    try:
        with Image.open(mask_file) as im:
            mode = im.mode
        if mode in COLOUR_MODES:
            read_class_mask(mask_file, mode)
    except UserInputError as e:
        return None, None, None, None, 0, 1, 1, f"{prefix}{im_file}: ignoring corrupt image/mask: {e}"
    except FileNotFoundError:
        pass  # missing: Ultralytics' own verification says so
    except (OSError, ImportError):  # empty or not an image (Ultralytics' Image.open then looks for a HEIF plugin)
        return (
            None,
            None,
            None,
            None,
            0,
            1,
            1,
            f"{prefix}{im_file}: ignoring corrupt image/mask: {mask_file}: {BAD_MASK}",
        )
    return verify(args)


def build_dataset(
    args: Any, data: dict, split: str, task: str, stride: int, batch: int, rect: bool | None = None
) -> YOLODataset:
    """Build the train (augmented) or val dataset for one task, raising UserInputError on bad labels.

    `rect` (default: val only) batches images of similar aspect ratio into rectangles instead of squares.
    """
    flag, mode = f"--{task}", "train" if split == "train" else "val"
    img_path = data.get(split)
    if not img_path:
        raise UserInputError(f"{flag}: {data['yaml_path']} has no '{split}' split")
    sub = task_args(args, task)
    cls = DetDataset if task == "det" else SegDataset
    try:
        with caught_warnings(NO_LABELS) as no_labels:  # said below, naming the split
            dataset = cls(
                img_path=img_path,
                imgsz=sub.imgsz,
                batch_size=batch,
                augment=mode == "train",
                hyp=sub,
                rect=mode == "val" if rect is None else rect,
                cache=sub.cache or None,
                single_cls=False,
                stride=stride,
                pad=0.0 if (task == "seg" or mode == "train") else 0.5,
                prefix=colorstr(f"{task} {mode}: "),
                task=sub.task,
                classes=None,
                data=data,
                fraction=sub.fraction if mode == "train" else 1.0,
            )
    except (FileNotFoundError, RuntimeError, AssertionError) as e:
        first = " ".join(str(e).split("\n")[0].split())
        raise UserInputError(f"{flag}: {split} split of {data['yaml_path']}: {first or 'no images'}") from None
    check_scan(dataset, flag, split)
    if no_labels:
        warn(f"{flag}: the {split} split of {data['yaml_path']} has no labels (a labels/ folder beside images/?)")
    return dataset


def check_scan(dataset: YOLODataset, flag: str, split: str) -> None:
    """Fail on out-of-range class ids or mask values; report images that were skipped as corrupt."""
    messages = getattr(dataset, "scan_messages", [])
    fatal = fatal_scan_message(messages, extra=(COLOUR, BAD_MASK))
    if fatal:
        raise UserInputError(f"{flag}: {split} split, {fatal[0]}: {fatal[1]}")
    if messages:
        warn(f"{flag}: skipped {len(messages)} unreadable or corrupt {split} images (first: {messages[0]})")
    if len(dataset) == 0:
        raise UserInputError(f"{flag}: {split} split of {dataset.data['yaml_path']} has no usable images")


def build_loader(dataset: YOLODataset, batch: int, workers: int, shuffle: bool, rank: int = -1):
    """Ultralytics dataloader for a dataset (its own collate_fn; a DistributedSampler when `rank` >= 0)."""
    return build_dataloader(dataset, batch, workers, shuffle=shuffle, rank=rank, pin_memory=torch.cuda.is_available())
