"""Low-rank factorization: a k x k convolution becomes a k x k one with fewer output channels followed by a 1 x 1 one,
from the truncated SVD of its weight reshaped to [C_out, C_in * k * k].

Which layers are factorized is measured, not guessed: every plain convolution (Ultralytics' Conv, groups 1) is timed
as it is and factorized at the rank asked for, on the shape it sees at the model's input size, and it is replaced
only where the factorized pair runs faster by at least `min_gain` and keeps the weight within `max_error` (the
relative Frobenius error of the truncated SVD). A `min_gain` of 0 factorizes every layer within `max_error`, whatever
its speed (a smaller model, not a faster one). Each head's output convolutions (plain nn.Conv2d) keep their class
counts. The result is a checkpoint of the module itself, fine-tuned like a pruned one.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn
from ultralytics.nn.modules import Conv

from yoloseghw.nn.tasks import DetSegModel
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.ultralytics import place_like

ROUND_TO = 8  # ranks stay multiples of 8, as pruned channel counts do (ONNX Runtime's blocked convolutions)
TIMED_RUNS = 20  # runs per layer and form when measuring
RANK_SHARE, MAX_ERROR, MIN_GAIN = 0.5, 0.5, 1.1  # the defaults of --rank, --max-error and --min-gain


class FactorizedConv(Conv):
    """Ultralytics' Conv (conv, BatchNorm, activation) whose convolution is two: `pre`, a k x k convolution to `rank`
    channels, then `conv`, a 1 x 1 convolution to the output channels. `conv` + `bn` fuse as in any Conv."""

    def __init__(self, conv: Conv, rank: int):
        """The factorization of `conv` at `rank` (its BatchNorm and activation are kept)."""
        nn.Module.__init__(self)
        c = conv.conv
        self.pre = nn.Conv2d(c.in_channels, rank, c.kernel_size, c.stride, c.padding, c.dilation, bias=False)
        self.conv = nn.Conv2d(rank, c.out_channels, 1, bias=c.bias is not None)
        self.bn, self.act = conv.bn, conv.act
        u, s, vh = torch.linalg.svd(c.weight.detach().float().reshape(c.out_channels, -1), full_matrices=False)
        root = s[:rank].sqrt()
        self.pre.weight.data = (root[:, None] * vh[:rank]).reshape(rank, *c.weight.shape[1:]).to(c.weight.dtype)
        self.conv.weight.data = (u[:, :rank] * root).reshape(c.out_channels, rank, 1, 1).to(c.weight.dtype)
        if c.bias is not None:
            self.conv.bias.data = c.bias.detach().clone()
        self.train(conv.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(self.pre(x))))

    def forward_fuse(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.pre(x)))


@dataclass
class Choice:
    """One candidate layer and what was measured of it."""

    name: str
    shape: tuple[int, ...]  # its input [B, C, H, W]
    kernel: int
    out_channels: int
    rank: int
    error: float  # relative Frobenius error of the weight at `rank`
    ms_before: float
    ms_after: float
    chosen: bool = False

    @property
    def gain(self) -> float:
        return self.ms_before / self.ms_after if self.ms_after else 0.0


def check_options(rank: float, max_error: float, min_gain: float) -> None:
    """UserInputError for a rank share outside (0, 1), an error budget outside (0, 1], a gain that is neither 0 (any
    speed) nor at least 1."""
    if not (math.isfinite(rank) and 0 < rank < 1):
        raise UserInputError(f"--rank is the share of each layer's rank to keep: between 0 and 1, got {rank}")
    if not (math.isfinite(max_error) and 0 < max_error <= 1):
        raise UserInputError(f"--max-error is a relative weight error: between 0 and 1, got {max_error}")
    if not (math.isfinite(min_gain) and (min_gain == 0 or min_gain >= 1)):
        raise UserInputError(f"--min-gain is a speed-up: at least 1, or 0 for any speed, got {min_gain}")


def truncated_rank(conv: nn.Conv2d, share: float) -> int:
    """`share` of the layer's full rank, rounded to ROUND_TO (at least ROUND_TO)."""
    full = min(conv.out_channels, conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])
    return max(ROUND_TO, int(round(full * share / ROUND_TO)) * ROUND_TO)


def svd_error(conv: nn.Conv2d, rank: int) -> float:
    """The relative Frobenius error of the weight truncated to `rank`."""
    s = torch.linalg.svdvals(conv.weight.detach().float().reshape(conv.out_channels, -1))
    return float((s[rank:] ** 2).sum().sqrt() / (s**2).sum().sqrt())


def median_ms(module: nn.Module, x: torch.Tensor) -> float:
    """Median milliseconds of `module(x)` over TIMED_RUNS runs, after a warm-up."""
    with torch.inference_mode():
        for _ in range(3):
            module(x)
        times = []
        for _ in range(TIMED_RUNS):
            t = time.perf_counter()
            module(x)
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def input_shapes(model: DetSegModel, imgsz: int) -> dict[str, tuple[int, ...]]:
    """The input shape of every Conv of `model` on a batch-1 image of `imgsz`."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            shapes.setdefault(name, tuple(args[0].shape))

        return hook

    hooks = [m.register_forward_pre_hook(record(name)) for name, m in model.named_modules() if isinstance(m, Conv)]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, imgsz, imgsz))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def measure(model: DetSegModel, imgsz: int, rank: float, max_error: float, min_gain: float) -> list[Choice]:
    """Every candidate convolution, timed as it is and factorized (CPU, batch 1, the threads torch has), and whether
    it is chosen: faster by at least `min_gain`, weight error within `max_error`."""
    choices = []
    shapes = input_shapes(model, imgsz)
    for name, m in model.named_modules():
        if type(m) is not Conv or m.conv.groups != 1 or name not in shapes:
            continue
        r = truncated_rank(m.conv, rank)
        if r >= min(m.conv.out_channels, m.conv.in_channels * m.conv.kernel_size[0] ** 2):
            continue  # no smaller rank to keep
        x = torch.rand(shapes[name])
        before = nn.Sequential(m.conv, m.bn, m.act).eval()
        after = FactorizedConv(m, r).eval()
        choice = Choice(
            name, shapes[name], m.conv.kernel_size[0], m.conv.out_channels, r, svd_error(m.conv, r),
            median_ms(before, x), median_ms(after, x),
        )  # fmt: skip
        choice.chosen = choice.error <= max_error and choice.gain >= min_gain
        choices.append(choice)
    model.train()
    return choices


def factorize(model: DetSegModel, choices: list[Choice]) -> int:
    """Replace each chosen convolution of `model` by its factorization, in place; returns how many were."""
    modules = dict(model.named_modules())
    done = 0
    for c in choices:
        if not c.chosen:
            continue
        parent_name, _, child = c.name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        setattr(parent, child, place_like(FactorizedConv(modules[c.name], c.rank), modules[c.name]))
        done += 1
    return done
