"""DetSegResult: one image's boxes (Ultralytics `Boxes`) and semantic class map, with drawing and export helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from ultralytics.engine.results import Results
from ultralytics.utils.plotting import Annotator, colors

from yoloseghw.utils.drawing import IGNORE, draw_legend, legend_entries


class DetSegResult:
    """Prediction for one image or video frame.

    Attributes:
        boxes: Ultralytics `Boxes` in original-image pixels (`.xyxy`, `.conf`, `.cls`, ...).
        semantic_mask: H x W uint8 class ids at the original resolution.
        det_names / seg_names: the two class lists.
        path, frame: where the image came from (frame is None for still images).
        speed: milliseconds spent in preprocess / inference / postprocess.
    """

    def __init__(
        self,
        orig_img: np.ndarray,
        path: str,
        boxes: torch.Tensor,
        semantic_mask: np.ndarray,
        det_names: dict[int, str],
        seg_names: dict[int, str],
        frame: int | None = None,
    ):
        """One prediction.

        Args:
            orig_img: the original BGR image.
            path: where it came from.
            boxes: [N, 6] boxes in original-image pixels (x1, y1, x2, y2, confidence, class).
            semantic_mask: H x W uint8 class ids at the original resolution.
            det_names: the detection class names.
            seg_names: the semantic class names.
            frame: the frame number of a video frame (None for a still image).
        """
        self._det = Results(orig_img, path=path, names=det_names, boxes=boxes)
        self.orig_img, self.path, self.frame = orig_img, path, frame
        self.boxes = self._det.boxes
        self.semantic_mask = semantic_mask
        self.det_names, self.seg_names = det_names, seg_names
        self.speed: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def orig_shape(self) -> tuple[int, int]:
        return self.orig_img.shape[:2]

    def class_fractions(self) -> dict[str, float]:
        """The share of the image's pixels given to each semantic class present.

        Returns:
            {class name: share of all pixels} for each class with at least one pixel (ignored pixels count for none).
        """
        counts = np.bincount(self.semantic_mask.ravel(), minlength=256)
        total = self.semantic_mask.size
        return {self.seg_names[i]: round(float(counts[i]) / total, 5) for i in self.seg_names if counts[i]}

    def plot(self, alpha: float = 0.5, conf: bool = True, labels: bool = True, legend: bool = True) -> np.ndarray:
        """Draw the prediction: the class map blended in, boxes with labels on top, a legend of the classes present.

        Semantic colours follow the detection colours in Ultralytics' palette, so a box never shares its colour
        with a region of another class.

        Args:
            alpha: the opacity of the class map.
            conf: show each box's confidence.
            labels: show each box's class name.
            legend: draw the legend of the semantic classes present.

        Returns:
            The annotated BGR image.
        """
        offset = len(self.det_names)
        shifted = np.where(self.semantic_mask == IGNORE, IGNORE, self.semantic_mask.astype(np.int32) + offset)
        annotator = Annotator(self.orig_img.copy())
        annotator.semantic_mask(shifted, alpha=alpha)
        img = self._det.plot(img=annotator.result(), conf=conf, labels=labels)
        if legend:
            present = [int(i) for i in np.unique(self.semantic_mask) if int(i) in self.seg_names]
            draw_legend(img, legend_entries(present, self.seg_names, lambda i: colors(i + offset, True)))
        return img

    def detections(self) -> list[dict[str, Any]]:
        """The boxes as dicts.

        Returns:
            One {"class", "name", "confidence", "box" (x1, y1, x2, y2 pixels)} per box.
        """
        return [
            {
                "class": int(c),
                "name": self.det_names[int(c)],
                "confidence": round(float(s), 5),
                "box": [round(float(v), 2) for v in box],
            }
            for box, s, c in zip(self.boxes.xyxy.tolist(), self.boxes.conf.tolist(), self.boxes.cls.tolist())
        ]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (one line of predictions.jsonl).

        Returns:
            {"source", "frame", "width", "height", "detections", "semantic" (pixel shares), "speed_ms"}.
        """
        h, w = self.orig_shape
        return {
            "source": str(self.path),
            "frame": self.frame,
            "width": w,
            "height": h,
            "detections": self.detections(),
            "semantic": self.class_fractions(),
            "speed_ms": {k: round(v, 2) for k, v in self.speed.items()},
        }

    def summary(self) -> str:
        """'3 cars, 1 person; road 41%, sky 22%' style line."""
        counts: dict[str, int] = {}
        for c in self.boxes.cls.tolist():
            counts[self.det_names[int(c)]] = counts.get(self.det_names[int(c)], 0) + 1
        det = ", ".join(f"{n} {name}{'s' * (n > 1)}" for name, n in counts.items()) or "no detections"
        top = sorted(self.class_fractions().items(), key=lambda kv: -kv[1])[:3]
        return det + "; " + ", ".join(f"{name} {frac:.0%}" for name, frac in top)

    def save_txt(self, path: str | Path, save_conf: bool = False) -> None:
        """Write the boxes as YOLO txt rows `class x y w h [conf]` (normalized); an empty file when there are none.

        Args:
            path: the txt file.
            save_conf: add each box's confidence.
        """
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("")
        self._det.save_txt(path, save_conf=save_conf)

    def save_mask(self, path: str | Path) -> bool:
        """Write the class map as a PNG of class ids (255 = ignore) at the original resolution.

        Args:
            path: the PNG file.

        Returns:
            Whether the file was written (OpenCV's answer).
        """
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return bool(cv2.imwrite(str(path), self.semantic_mask))
