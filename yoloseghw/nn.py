"""DetSegModel: an Ultralytics detection network with a semantic head on the same neck features."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.head import SemanticSegment
from ultralytics.nn.tasks import DetectionModel, yaml_model_load
from ultralytics.utils.loss import SemanticSegmentationLoss
from ultralytics.utils.torch_utils import fuse_conv_and_bn, initialize_weights

from .errors import UserInputError


class DetSegModel(DetectionModel):
    """Ultralytics `DetectionModel` + `SemanticSegment` head reading the P3/P4 maps that feed `Detect`.

    `Detect` stays the last layer of `self.model`, so everything in Ultralytics that reads `model[-1]` (stride,
    losses, export flags) keeps working; the semantic head lives in `self.semantic`.
    Eval forward returns `(detections, semantic_logits)`; training forward returns both heads' training outputs.
    """

    def __init__(
        self,
        cfg: str | dict = "yolo26n.yaml",
        ch: int = 3,
        nc: int | None = None,
        seg_nc: int = 2,
        verbose: bool = True,
    ):
        """Build the detector from `cfg` with `nc` detection classes, then attach a `seg_nc`-class semantic head."""
        super().__init__(cfg, ch=ch, nc=nc, verbose=False)
        detect = self.model[-1]
        p3, p4 = detect.f[:2]
        channels = [detect.cv2[k][0].conv.in_channels for k in (0, 1)]
        head = SemanticSegment(seg_nc, channels)
        head.f, head.i, head.type = [p3, p4], len(self.model), "SemanticSegment"
        head.np = sum(p.numel() for p in head.parameters())
        head.stride = self.stride[:2].clone()
        initialize_weights(head)
        self.semantic = head
        self.yaml["seg_nc"] = seg_nc
        self.seg_names = {i: f"class{i}" for i in range(seg_nc)}
        self.det_criterion = self.seg_criterion = None
        if verbose:
            self.info()

    @property
    def input_stride(self) -> int:
        """The multiple that input sizes must have: the largest Detect stride, at least 32 (as Ultralytics uses)."""
        return max(int(self.stride.max()), 32)

    @property
    def det_names(self) -> dict[int, str]:
        """Detection class names (Ultralytics' `names`)."""
        return self.names

    def _predict_once(self, x: torch.Tensor, profile: bool = False, embed: list | None = None) -> Any:
        """Run backbone + neck + Detect, and the semantic head on the saved P3/P4 outputs."""
        if getattr(self, "semantic", None) is None or profile or embed:
            return super()._predict_once(x, profile, embed)  # stride pass in __init__, profiling, embeddings
        return self.forward_heads(x, ("det", "seg"))

    def forward_heads(self, x: torch.Tensor, tasks: tuple[str, ...]) -> tuple[Any, Any]:
        """(Detect output or None, semantic output or None): only the heads in `tasks` run, so a training step of
        one task neither spends compute on the other head nor moves its BatchNorm statistics."""
        y = []
        detect = self.model[-1]
        for m in self.model:
            if m is detect and "det" not in tasks:
                break
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
        det = x if "det" in tasks else None
        seg = self.semantic([y[j] for j in self.semantic.f]) if "seg" in tasks else None
        return det, seg

    def loss(self, batch: dict, preds: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of the task the batch is labelled for (`batch['task']` is 'det' or 'seg'); the other head gets none."""
        task = batch["task"]
        det_preds, seg_preds = self.forward_heads(batch["img"], (task,)) if preds is None else preds
        if task == "det":
            if self.det_criterion is None:
                self.det_criterion = self.init_criterion()
            return self.det_criterion(det_preds, batch)
        if self.seg_criterion is None:
            owner = SimpleNamespace(
                model=[self.semantic], parameters=self.parameters, args=self.args, class_weights=None
            )
            self.seg_criterion = SemanticSegmentationLoss(owner)
        return self.seg_criterion(seg_preds, batch)

    def fuse(self, verbose: bool = True, imgsz: int | list[int] = 640) -> DetSegModel:
        """Fuse Conv+BN in the detector (Ultralytics) and in the semantic head."""
        super().fuse(verbose=False, imgsz=imgsz)
        for m in self.semantic.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                m.conv = fuse_conv_and_bn(m.conv, m.bn)
                delattr(m, "bn")
                m.forward = m.forward_fuse
        if verbose:
            self.info()
        return self

    def _apply(self, fn):
        """Keep the semantic head's stride buffer on the model's device/dtype."""
        super()._apply(fn)
        if getattr(self, "semantic", None) is not None:
            self.semantic.stride = fn(self.semantic.stride)
        return self


def load_model_cfg(name: str | Path | dict) -> dict:
    """Model yaml dict for a stock detection name ('yolo26n', 'yolov8s.yaml', any scale) or a user yaml path."""
    if isinstance(name, dict):
        return deepcopy(name)
    name = str(name)
    path = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    try:
        cfg = yaml_model_load(path)
    except (FileNotFoundError, OSError):
        raise UserInputError(
            f"--model: unknown model '{name}' (use a stock name like yolo26n, yolo11s, yolov8m, or a yaml path)"
        ) from None
    head = cfg.get("head") or [[None, None, None]]
    if head[-1][2] != "Detect":
        raise UserInputError(f"--model: {name} is not a detection model yaml (its last layer is {head[-1][2]})")
    return cfg


def build_model(cfg: str | Path | dict, det_nc: int, seg_nc: int, verbose: bool = False) -> DetSegModel:
    """Build a DetSegModel from a stock detection name, a yaml path or a yaml dict."""
    return DetSegModel(load_model_cfg(cfg), nc=det_nc, seg_nc=seg_nc, verbose=verbose)
