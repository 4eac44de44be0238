"""Large-data options: `cache=ram|disk` for both datasets (masks cached as uint8) and `workers` on the CPU."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from yoloseghw import YOLOSeg
from yoloseghw.data.dataset import build_dataset, load_data_config
from yoloseghw.utils.options import ultralytics_args

from .conftest import TINY


def train_dataset(yaml, task: str, cache: str):
    args = ultralytics_args({"imgsz": 64, "cache": cache}, "train")
    return build_dataset(args, load_data_config(yaml, task), "train", task, stride=32, batch=4)


def png_mask(dataset, i: int) -> np.ndarray:
    return cv2.imread(dataset.labels[i]["mask_file"], cv2.IMREAD_UNCHANGED)


def test_cache_ram_holds_images_of_both_sets_and_masks_as_uint8_at_image_size(pair_copy):
    det, seg = train_dataset(pair_copy[0], "det", "ram"), train_dataset(pair_copy[1], "seg", "ram")
    assert all(im is not None for im in det.ims) and all(im is not None for im in seg.ims)
    assert len(seg.mask_cache) == seg.ni
    for i, mask in enumerate(seg.mask_cache):
        assert mask.dtype == np.uint8 and mask.shape == seg.im_hw[i] == seg.ims[i].shape[:2]
        h, w = seg.im_hw[i]
        assert np.array_equal(mask, cv2.resize(png_mask(seg, i), (w, h), interpolation=cv2.INTER_NEAREST))
    served = seg.load_mask(0)
    served[:] = 7  # what augmentation does to a served mask never reaches the cache
    assert not (seg.mask_cache[0] == 7).all()


def test_cache_disk_writes_masks_as_uint8_npy_and_reads_them_back(pair_copy):
    seg = train_dataset(pair_copy[1], "seg", "disk")
    for i in range(seg.ni):
        npy = np.load(seg.labels[i]["mask_file"].replace(".png", ".npy"))
        assert npy.dtype == np.uint8 and np.array_equal(npy, png_mask(seg, i))
    first = seg.labels[0]["mask_file"].replace(".png", ".npy")
    np.save(first, np.zeros_like(np.load(first)))  # the cached copy, not the PNG, is what training reads
    assert not seg.load_mask(0).any()


@pytest.mark.parametrize("cache", ["ram", "disk"])
def test_training_caches_both_datasets_and_honours_workers_on_the_cpu(pair_copy, tmp_path, cache):
    seen = {}

    def on_train_start(trainer):
        loaders = trainer.train_loader.loaders
        seen.update(workers={t: loader.num_workers for t, loader in loaders.items()})
        seen.update(cache={t: loader.dataset.cache for t, loader in loaders.items()})

    model = YOLOSeg("yolo26n")
    model.add_callback("on_train_start", on_train_start)
    options = {**TINY, "workers": 2, "cache": cache}
    model.train(det=pair_copy[0], seg=pair_copy[1], project=tmp_path, name="cache", **options)
    assert seen == {"workers": {"det": 2, "seg": 2}, "cache": {"det": cache, "seg": cache}}
    assert (tmp_path / "cache" / "weights" / "best.pt").is_file()
