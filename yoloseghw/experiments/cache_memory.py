"""RAM that `cache=ram` takes, per 1000 training images of a box dataset and of a mask dataset.

Builds each train set as training does (Ultralytics' dataset, yoloseg's mask cache), in a fresh process each time,
with and without `cache=ram`, and reports the bytes of the cached arrays (images; masks as uint8) and how much more
resident memory (RSS) the cached build holds, both scaled to 1000 images.

    python benchmarks/cache_memory.py --det ../shared/data/highway/highway.yaml \
        --seg ../shared/data/camvid/camvid.yaml --imgsz 640
"""

from __future__ import annotations

import argparse
import json
from multiprocessing import get_context

import psutil

from yoloseghw.data.dataset import build_dataset, load_data_config
from yoloseghw.utils.options import ultralytics_args

MIB = 1 << 20


def build(yaml: str, task: str, imgsz: int, cache: str) -> tuple[int, int, int, int]:
    """Images, cached image bytes, cached mask bytes, and the RSS growth of building one train set (cache or not)."""
    before = psutil.Process().memory_info().rss
    args = ultralytics_args({"imgsz": imgsz, "cache": cache or False, "workers": 0}, "train")
    dataset = build_dataset(args, load_data_config(yaml, task), "train", task, stride=32, batch=16)
    rss = psutil.Process().memory_info().rss - before
    images = sum(im.nbytes for im in dataset.ims) if cache else 0
    masks = sum(m.nbytes for m in dataset.mask_cache) if cache and task == "seg" else 0
    return dataset.ni, images, masks, rss


def cached_ram(yaml: str, task: str, imgsz: int) -> dict[str, float]:
    """MiB per 1000 images: the cached image and mask arrays, and the RSS the cache adds."""
    with get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        n, _, _, plain = pool.apply(build, (yaml, task, imgsz, ""))
        _, images, masks, cached = pool.apply(build, (yaml, task, imgsz, "ram"))
    per_1000 = 1000 / n / MIB
    return {
        "images": n,
        "image_arrays_mib": round(images * per_1000, 1),
        "mask_arrays_mib": round(masks * per_1000, 1),
        "rss_added_mib": round((cached - plain) * per_1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--det", required=True, help="detection dataset yaml")
    parser.add_argument("--seg", required=True, help="semantic dataset yaml")
    parser.add_argument("--imgsz", type=int, nargs="+", default=[640])
    args = parser.parse_args()
    for imgsz in args.imgsz:
        for task, yaml in (("det", args.det), ("seg", args.seg)):
            print(json.dumps({"task": task, "imgsz": imgsz, **cached_ram(yaml, task, imgsz)}))


if __name__ == "__main__":
    main()
