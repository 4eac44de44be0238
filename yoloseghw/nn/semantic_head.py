"""The semantic heads a DetSegModel can carry, chosen by the model yaml's `seg_head` key (`--seg-head`).

- `conv`: Ultralytics' `SemanticSegment` as it is (classifier: Conv 3x3 + BN + SiLU, then a 1x1 to the classes).
- `separable`: the same head with its 3x3 convolution made depthwise-separable (DWConv 3x3 + Conv 1x1, as Detect's
  class branches are in YOLO11/YOLO26): an eighth of that convolution's multiply-adds. Its aux head (training only)
  and everything else is Ultralytics'.
"""

from __future__ import annotations

from torch import nn
from ultralytics.nn.modules import Conv, DWConv
from ultralytics.nn.modules.head import SemanticSegment

from yoloseghw.utils.errors import UserInputError


class SeparableSemanticSegment(SemanticSegment):
    """Ultralytics' `SemanticSegment` with a depthwise-separable classifier (same inputs, outputs and aux head)."""

    def __init__(self, nc: int = 19, ch: list[int] | tuple[int, ...] = ()):
        """`SemanticSegment(nc, ch)` with the classifier DWConv 3x3 -> Conv 1x1 -> 1x1 class convolution on P3."""
        super().__init__(nc, ch)
        c = ch[0]
        self.classifier = nn.Sequential(DWConv(c, c, 3), Conv(c, c, 1), nn.Conv2d(c, nc, 1))


SEG_HEADS: dict[str, type[SemanticSegment]] = {"conv": SemanticSegment, "separable": SeparableSemanticSegment}
DEFAULT_SEG_HEAD = "conv"


def seg_head_class(name: str, flag: str = "--seg-head") -> type[SemanticSegment]:
    """The head class called `name`; a UserInputError naming `flag` for an unknown one."""
    if name not in SEG_HEADS:
        raise UserInputError(f"{flag}: expected one of {', '.join(SEG_HEADS)}, got '{name}'")
    return SEG_HEADS[name]


def seg_head_name(head: SemanticSegment) -> str:
    """The `seg_head` name of a head module (a checkpoint from before the key existed has the `conv` one)."""
    return next(name for name, cls in SEG_HEADS.items() if type(head) is cls)
