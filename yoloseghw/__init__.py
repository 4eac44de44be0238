"""yoloseg: one Ultralytics YOLO network for object detection + semantic segmentation from two datasets."""

# isort: off
from yoloseghw.utils import offline  # noqa: F401  (first: nothing may import Ultralytics before the offline set-up)
from yoloseghw.engine.model import YOLOSeg
from yoloseghw.utils.version import __version__

# isort: on

__all__ = ["YOLOSeg", "__version__"]
