"""yoloseg: one Ultralytics YOLO network for object detection + semantic segmentation from two datasets."""

__version__ = "0.2.0"

from yoloseghw.engine.model import YOLOSeg  # noqa: E402
from yoloseghw.utils import offline  # noqa: E402,F401  (must run before ultralytics is imported)

__all__ = ["YOLOSeg", "__version__"]
