"""Task schedules: which dataset(s) each training step draws from (alternate, phased, joint)."""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("alternate", "phased", "joint")


@dataclass
class Schedule:
    """Plans the steps of an epoch. A step is a tuple of tasks: ('det',), ('seg',) or ('det', 'seg') for joint.

    An epoch is one pass over the larger dataset (in batches): for `alternate` with ratio a:b, enough a:b cycles that
    each dataset's batches are all drawn at least once; for `joint`, max(det batches, seg batches) steps;
    for `phased`, one pass over the dataset of the current phase.
    """

    kind: str = "alternate"
    ratio: tuple[int, int] = (1, 1)
    det_epochs: int = 0
    order: tuple[str, str] = ("det", "seg")

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule '{self.kind}', choose from {', '.join(SCHEDULES)}")
        if len(self.ratio) != 2 or min(self.ratio) < 1:
            raise ValueError(f"ratio must be two positive integers like 2:1, got {self.ratio}")
        if sorted(self.order) != ["det", "seg"]:
            raise ValueError(f"order must be det,seg or seg,det, got {','.join(self.order)}")

    def phase(self, epoch: int, epochs: int) -> tuple[str, ...]:
        """Tasks trained in this epoch (0-based): both, or the single task of the current phase."""
        if self.kind != "phased":
            return ("det", "seg")
        first_epochs = self.det_epochs if self.order[0] == "det" else epochs - self.det_epochs
        return (self.order[0],) if epoch < first_epochs else (self.order[1],)

    def boundary(self, epochs: int) -> int | None:
        """Epoch index where the second phase starts (phased only)."""
        if self.kind != "phased":
            return None
        return self.det_epochs if self.order[0] == "det" else epochs - self.det_epochs

    def steps(self, epoch: int, epochs: int, batches: dict[str, int]) -> list[tuple[str, ...]]:
        """The ordered steps of one epoch, given the number of batches per epoch of each loader."""
        tasks = self.phase(epoch, epochs)
        if len(tasks) == 1:
            return [tasks] * batches[tasks[0]]
        if self.kind == "joint":
            return [("det", "seg")] * max(batches["det"], batches["seg"])
        a, b = self.ratio
        cycles = max(math.ceil(batches["det"] / a), math.ceil(batches["seg"] / b))
        return [t for _ in range(cycles) for t in [("det",)] * a + [("seg",)] * b]
