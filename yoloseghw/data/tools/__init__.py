"""Dataset tools behind `yoloseg data convert | check | show`: bring VOC/COCO/Cityscapes/ADE20K/CamVid/... data into
the Ultralytics layouts that `yoloseg train` reads, validate them, and draw their labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from yoloseghw.data.tools.common import ConvertOptions, ConvertResult
from yoloseghw.utils.errors import UserInputError

DET_FORMATS = ("voc", "coco", "yolo")
SEG_FORMATS = ("voc-seg", "cityscapes", "ade20k", "camvid", "camvid32", "masks")


def convert(fmt: str, src: Path, dst: Path, **options: Any) -> ConvertResult:
    """Convert a dataset in `fmt` (a DET_FORMATS or SEG_FORMATS name) at `src` into the Ultralytics layout in `dst`;
    `options` are the fields of ConvertOptions."""
    if fmt in DET_FORMATS:
        from yoloseghw.data.tools.convert_det import convert_det

        return convert_det(fmt, src, dst, ConvertOptions(**options))
    if fmt in SEG_FORMATS:
        from yoloseghw.data.tools.convert_seg import convert_seg

        return convert_seg(fmt, src, dst, ConvertOptions(**options))
    raise UserInputError(f"--from: unknown format {fmt!r}; choose one of {', '.join(DET_FORMATS + SEG_FORMATS)}")
