"""The joint model (a DetectionModel with a semantic head) and its inference backends (PyTorch, ONNX Runtime)."""

from yoloseghw.nn.tasks import DetSegModel, build_model, load_model_cfg

__all__ = ["DetSegModel", "build_model", "load_model_cfg"]
