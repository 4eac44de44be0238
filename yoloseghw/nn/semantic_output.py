"""The semantic output kinds a model can give, and the one transform from the head's stride-8 logits to each.

A kind is a class map (the argmax taken in the network, uint8 ids) or logits (floats, one map per class), at the
network's input size or at a stride of it:
- `classmap`, `classmap2`, `classmap4`, `classmap8`: uint8 [B, H/s, W/s] class ids;
- `logits`, `logits2`, `logits4`, `logits8`: float [B, nc, H/s, W/s].
The head predicts at stride 8; a smaller stride is reached by a bilinear upsample (as Ultralytics' `SemanticSegment`
export does), and the argmax follows it. Whatever the stride, post-processing resizes the output once, straight to
the original image (engine/predictor.py). The default is the fastest kind that keeps Ultralytics' full-size class
map's mIoU, chosen by measurement (docs/inference.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from yoloseghw.utils.errors import UserInputError

HEAD_STRIDE = 8  # SemanticSegment predicts at stride 8
STRIDES = (1, 2, 4, 8)
KINDS = tuple(f"{base}{s if s > 1 else ''}" for base in ("classmap", "logits") for s in STRIDES)
DEFAULT_SEMANTIC_OUTPUT = "classmap4"


@dataclass(frozen=True)
class SemanticOutput:
    """One output kind: a class map or logits, at `stride` of the network input (1: the input size)."""

    name: str
    stride: int
    classmap: bool

    @classmethod
    def parse(cls, name: str, flag: str = "--semantic") -> SemanticOutput:
        """The kind called `name`; a UserInputError naming `flag` for an unknown one."""
        if name not in KINDS:
            raise UserInputError(f"{flag}: expected one of {', '.join(KINDS)}, got '{name}'")
        base = "classmap" if name.startswith("classmap") else "logits"
        return cls(name, int(name[len(base) :] or 1), base == "classmap")

    def __call__(self, logits: torch.Tensor, nc: int | None = None) -> torch.Tensor:
        """This kind's output from the head's `nc`-class logits [B, nc, H/8, W/8] (`nc` given: no traced shape)."""
        nc = int(logits.shape[1]) if nc is None else nc
        factor = HEAD_STRIDE // self.stride
        y = logits if factor == 1 else F.interpolate(logits, scale_factor=factor, mode="bilinear", align_corners=False)
        if not self.classmap:
            return y
        if nc == 1:
            return (y[:, 0] > 0).to(torch.uint8)
        # ONNX gets an ArgMax node; in PyTorch on the CPU max(dim) streams where argmax(1) loops per output (10x slower)
        ids = y.argmax(1) if torch.onnx.is_in_onnx_export() else y.max(1).indices
        return ids.to(torch.uint8 if nc <= 256 else torch.int32)

    def dynamic_axes(self) -> dict[int, str]:
        """ONNX dynamic axes of the output."""
        return {0: "batch", 1: "height", 2: "width"} if self.classmap else {0: "batch", 2: "height", 3: "width"}
