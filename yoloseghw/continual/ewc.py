"""Elastic Weight Consolidation (EWC): a quadratic pull of every parameter towards its value after the first task,
weighted by how much the first task's loss depends on it (the diagonal of the empirical Fisher information)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from yoloseghw.nn.tasks import DetSegModel

EWC_LOSS = "ewc_loss"  # the loss item yoloseg logs for it (train/ewc_loss in results.csv)


class ElasticWeights:
    """`strength`/2 * sum_i F_i (theta_i - theta*_i)^2 per image, over the parameters the first task's loss reached;
    theta* are the model's values when this object is made. A loss term of nn/loss.py (`LossTerm`)."""

    name = EWC_LOSS

    def __init__(self, model: DetSegModel, fisher: dict[str, torch.Tensor], strength: float):
        self.anchors = {n: p.detach().clone() for n, p in model.named_parameters() if n in fisher}
        self.fisher, self.strength = fisher, strength

    def heads(self, task: str) -> tuple[str, ...]:
        """No head of its own: the penalty reads the weights only."""
        return ()

    def __call__(self, model: DetSegModel, preds: Any, batch: dict) -> torch.Tensor:
        """The penalty scaled by the batch size, as Ultralytics scales its losses."""
        return self.penalty(model, len(batch["img"]))

    def penalty(self, model: DetSegModel, batch_size: int) -> torch.Tensor:
        """The penalty of `model`'s current weights, times `batch_size`."""
        terms = [
            (self.fisher[n] * (p - self.anchors[n]) ** 2).sum()
            for n, p in model.named_parameters()
            if n in self.fisher and p.requires_grad
        ]
        return 0.5 * self.strength * torch.stack(terms).sum() * batch_size


def diagonal_fisher(
    model: DetSegModel, batches: Iterable[dict], preprocess: Callable[[dict], dict]
) -> dict[str, torch.Tensor]:
    """Mean over `batches` of the squared gradient of the per-image loss, for every parameter it reaches (averaged
    over DDP ranks). The model's weights, BatchNorm statistics and gradients are left as they were."""
    saved = {k: v.clone() for k, v in model.named_buffers()}
    squares: dict[str, torch.Tensor] = {}
    count = 0
    for batch in batches:
        batch = preprocess(batch)
        model.zero_grad(set_to_none=True)
        loss, _ = model.loss(batch)
        (loss / len(batch["img"])).backward()
        for name, p in model.named_parameters():
            if p.grad is not None:
                squares[name] = squares.get(name, 0) + p.grad.detach() ** 2
        count += 1
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        for k, v in model.named_buffers():
            v.copy_(saved[k])
    fisher = {k: v / max(count, 1) for k, v in squares.items()}
    if dist.is_available() and dist.is_initialized():
        for v in fisher.values():
            dist.all_reduce(v)
            v /= dist.get_world_size()
    return fisher
