"""yoloseg: one Ultralytics YOLO network for object detection + semantic segmentation from two datasets."""

__version__ = "0.1.0"

from . import _offline  # noqa: E402,F401  (must run before ultralytics is imported)
from .model import YOLOSeg  # noqa: E402

__all__ = ["YOLOSeg", "__version__"]
