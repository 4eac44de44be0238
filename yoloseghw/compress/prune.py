"""Structured pruning of a DetSegModel with torch-pruning's dependency graph: a smaller dense model.

Channels are removed consistently across the backbone, the neck and both heads; each head's output convolutions keep
their class counts, and attention blocks keep their heads. torch-pruning cannot follow the `chunk`/`split` that
C2f, C3k2 and C2PSA apply to their first convolution, so that convolution is first rewritten as two (the same
function, exactly). The semantic head is traced as in training, so that its auxiliary branch (used only in training)
is pruned with the features it reads; BatchNorm statistics are left as they were.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import torch
from torch import nn
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.block import C2PSA, C2f, C3k2
from ultralytics.utils.torch_utils import get_flops

from yoloseghw.nn.tasks import DetSegModel
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.ultralytics import place_like

CRITERIA = ("l1", "l2", "bn")
MAX_CHANNEL_SHARE = 0.9  # no layer loses more than this share of its channels
ROUND_TO = 16  # channel counts stay multiples of 16: OpenVINO's AVX-512 INT8 convolutions block channels by 16 (at
# 8 the pruned INT8 model ran no faster than the unpruned one), ONNX Runtime's blocked (NCHWc) ones by 8


def _conv_rows(conv: Conv, rows: slice) -> Conv:
    """A copy of an Ultralytics Conv (conv + BN + act) keeping only output channels `rows`."""
    new = copy.deepcopy(conv)
    c = conv.conv
    new.conv = nn.Conv2d(
        c.in_channels,
        rows.stop - rows.start,
        c.kernel_size,
        c.stride,
        c.padding,
        c.dilation,
        c.groups,
        c.bias is not None,
    )
    new.conv.weight.data = c.weight.data[rows].clone()
    if c.bias is not None:
        new.conv.bias.data = c.bias.data[rows].clone()
    bn = conv.bn
    new.bn = nn.BatchNorm2d(rows.stop - rows.start, bn.eps, bn.momentum)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new.bn, name).data = getattr(bn, name).data[rows].clone()
    return new.train(conv.training)


class C2fTwoConv(nn.Module):
    """A C2f (or C3k2) block whose first convolution is two (cv1a, cv1b) instead of one split in two: the same
    function, which torch-pruning can follow."""

    def __init__(self, block: C2f):
        super().__init__()
        self.c = block.c
        self.cv1a, self.cv1b = _conv_rows(block.cv1, slice(0, self.c)), _conv_rows(block.cv1, slice(self.c, 2 * self.c))
        self.m, self.cv2 = block.m, block.cv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1a(x), self.cv1b(x)]
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class C3k2TwoConv(C2fTwoConv):
    """C3k2 whose first convolution is two (cv1a, cv1b)."""


class C2PSATwoConv(C2fTwoConv):
    """C2PSA whose first convolution is two (cv1a, cv1b)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1a(x), self.cv1b(x)
        return self.cv2(torch.cat((a, self.m(b)), 1))


TWO_CONV = {C2f: C2fTwoConv, C3k2: C3k2TwoConv, C2PSA: C2PSATwoConv}


def split_first_convs(model: nn.Module) -> None:
    """Replace every C2f/C3k2/C2PSA block by its two-convolution twin, in place (the same function)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            cls = TWO_CONV.get(type(child))
            if cls is not None:
                setattr(parent, name, place_like(cls(child).train(child.training), child))


def output_layers(model: DetSegModel) -> list[nn.Module]:
    """Layers whose output channels are fixed: each head's output convolutions (class counts, box coordinates), the
    DFL, and attention blocks (their channels are split into heads)."""
    detect, semantic = model.model[-1], model.semantic
    fixed = [semantic.classifier[-1]] + ([semantic.aux_head[-1]] if semantic.aux_head is not None else [])
    for name in ("cv2", "cv3", "one2one_cv2", "one2one_cv3"):
        fixed += [branch[-1] for branch in getattr(detect, name, None) or []]
    if hasattr(detect, "dfl"):
        fixed.append(detect.dfl)
    return fixed + [m for m in model.modules() if type(m).__name__ == "Attention"]


def _tensors(out: Any) -> Iterator[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for v in out.values():
            yield from _tensors(v)
    elif isinstance(out, (list, tuple)):
        for v in out:
            yield from _tensors(v)


def _trace_forward(model: DetSegModel, x: torch.Tensor) -> Any:
    """torch-pruning traces in eval mode; the semantic head runs as in training, so its auxiliary branch is traced."""
    model.semantic.train()
    try:
        return model(x)
    finally:
        model.semantic.eval()


def check_options(ratio: float, criterion: str) -> None:
    """UserInputError for a GFLOPs share outside (0, 1) or an unknown importance criterion."""
    if not 0 < ratio < 1:
        raise UserInputError(f"--ratio is the share of GFLOPs to remove: between 0 and 1 (exclusive), got {ratio}")
    if criterion not in CRITERIA:
        raise UserInputError(f"--criterion: expected one of {', '.join(CRITERIA)}, got '{criterion}'")


def prune(model: DetSegModel, ratio: float, criterion: str = "l2", imgsz: int = 640) -> float:
    """Remove channels so that the GFLOPs at `imgsz` drop by the achievable share nearest to `ratio` (0-1; channel
    counts move in steps of ROUND_TO, so the GFLOPs do too); returns the GFLOPs left. The model is changed in place
    (float32, training mode)."""
    check_options(ratio, criterion)
    model.float().train()
    split_first_convs(model)
    target = (1 - ratio) * get_flops(model, imgsz)
    trial = copy.deepcopy(model)  # a first pass finds the step count whose GFLOPs come nearest to the target
    flops = [get_flops(trial, imgsz)]
    with closing(_pruning_steps(trial, criterion, imgsz)) as rounds:
        for _ in rounds:
            flops.append(get_flops(trial, imgsz))
            if flops[-1] <= target:
                break
    steps = min(range(1, len(flops)), key=lambda k: abs(flops[k] - target))
    with closing(_pruning_steps(model, criterion, imgsz)) as rounds:  # the same rounds again, on the model itself
        for k, _ in enumerate(rounds, 1):
            if k == steps:
                break
    return get_flops(model, imgsz)


def _pruning_steps(model: DetSegModel, criterion: str, imgsz: int, steps: int = 50) -> Iterator[None]:
    """torch-pruning's MetaPruner over `steps` rounds, each removing a further share of every prunable group's
    channels (rounded to ROUND_TO); yields after each round. BatchNorm statistics are left as they were."""
    import torch_pruning as tp

    importance = {
        "l1": tp.importance.GroupMagnitudeImportance(p=1),
        "l2": tp.importance.GroupMagnitudeImportance(p=2),
        "bn": tp.importance.BNScaleImportance(),
    }[criterion]
    example = torch.zeros(2, 3, imgsz, imgsz)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0  # the tracing forward leaves the running statistics as they are
    try:
        pruner = tp.pruner.MetaPruner(
            model,
            example,
            importance=importance,
            pruning_ratio=MAX_CHANNEL_SHARE,
            round_to=ROUND_TO,
            iterative_steps=steps,
            ignored_layers=output_layers(model),
            output_transform=lambda out: list(_tensors(out)),
            forward_fn=_trace_forward,
        )
        for _ in range(steps):
            pruner.step()
            yield
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
