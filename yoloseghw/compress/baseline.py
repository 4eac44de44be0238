"""The stock single-task Ultralytics models of a joint model's family and class counts, exported by Ultralytics'
own exporter: what the joint model is timed against (`yoloseg bench --baseline`, benchmarks/onnx_speed.py)."""

from __future__ import annotations

from pathlib import Path

from ultralytics.engine.exporter import Exporter
from ultralytics.nn.tasks import DetectionModel, SemanticSegmentationModel


def stock_models(family: str, det_nc: int, seg_nc: int) -> dict[str, DetectionModel]:
    """{'detect': the stock detector, 'semantic': the stock semantic model} of a family yaml (`yolo26n.yaml`)."""
    return {
        "detect": DetectionModel(family, nc=det_nc, verbose=False),
        "semantic": SemanticSegmentationModel(family.replace(".yaml", "-sem.yaml"), nc=seg_nc, verbose=False),
    }


def stock_onnx(model: DetectionModel | SemanticSegmentationModel, path: Path, imgsz: int) -> Path:
    """Export a stock Ultralytics model with Ultralytics' exporter to `path` (FP32, static, batch 1)."""
    model.pt_path = str(path.with_suffix(".pt"))  # the exporter names its output after this
    model.task = "semantic" if isinstance(model, SemanticSegmentationModel) else "detect"
    return Path(Exporter(overrides={"format": "onnx", "imgsz": imgsz, "batch": 1, "device": "cpu"})(model))
