"""The multi-task training loader: one loader per dataset, drawn in the order a task schedule plans, as one loader.

Ultralytics' trainer counts the steps of an epoch once (`len(train_loader)`), so every epoch here has the same number
of steps; what changes from epoch to epoch (the phase of `phased`) is which dataset each step draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from copy import copy
from dataclasses import dataclass
from typing import Any

import torch

from yoloseghw.utils.options import TASKS

ULTRALYTICS_TASKS = {"det": "detect", "seg": "semantic"}  # our task key -> Ultralytics task name


@dataclass
class TaskPlan:
    """Plans the steps of an epoch. A step is ('det',), ('seg',) or ('det', 'seg') (one joint batch).

    Steps per epoch (the same in every epoch):
    - `alternate`, ratio 'auto': det batches + seg batches; each dataset is drawn once per epoch, interleaved evenly;
    - `alternate`, ratio a:b: enough a:b cycles that each dataset is drawn at least once (the smaller one repeats);
    - `joint`: max(det batches, seg batches) joint steps (the smaller dataset repeats);
    - `phased`: max(det batches, seg batches) steps of the current phase's task;
    - `single`: the batches of `order[1]`'s dataset, the only task trained (fine-tuning a model that knows both).
    """

    kind: str = "alternate"
    ratio: str | tuple[int, int] = "auto"
    det_epochs: int | None = None
    order: tuple[str, str] = TASKS

    def phase(self, epoch: int, epochs: int) -> tuple[str, ...]:
        """Tasks trained in this (0-based) epoch: both, or the single task of the current phase."""
        if self.kind == "single":
            return (self.order[1],)
        if self.kind != "phased":
            return TASKS
        return (self.order[0],) if epoch < self.boundary(epochs) else (self.order[1],)

    def boundary(self, epochs: int) -> int | None:
        """Epoch index where the second phase starts (phased only)."""
        if self.kind != "phased":
            return None
        return self.det_epochs if self.order[0] == "det" else epochs - self.det_epochs

    def steps_per_epoch(self, batches: dict[str, int]) -> int:
        """Steps in every epoch, given the batches per pass of each dataset."""
        if self.kind == "single":
            return batches[self.order[1]]
        if self.kind in ("joint", "phased"):
            return max(batches.values())
        if self.ratio == "auto":
            return batches["det"] + batches["seg"]
        a, b = self.ratio
        return max(math.ceil(batches["det"] / a), math.ceil(batches["seg"] / b)) * (a + b)

    def steps(self, epoch: int, epochs: int, batches: dict[str, int]) -> list[tuple[str, ...]]:
        """The ordered steps of one epoch."""
        n = self.steps_per_epoch(batches)
        tasks = self.phase(epoch, epochs)
        if len(tasks) == 1:
            return [tasks] * n
        if self.kind == "joint":
            return [TASKS] * n
        if self.ratio == "auto":  # spread the smaller set evenly: draw the task that is furthest behind its share
            done, out = {"det": 0, "seg": 0}, []
            for _ in range(n):
                task = min(TASKS, key=lambda t: ((done[t] + 0.5) / batches[t], t))
                done[task] += 1
                out.append((task,))
            return out
        a, b = self.ratio
        return [t for _ in range(n // (a + b)) for t in [("det",)] * a + [("seg",)] * b]

    def describe(self, batches: dict[str, int]) -> str:
        """What an epoch is, in words (printed when training starts)."""
        n = self.steps_per_epoch(batches)
        if self.kind == "single":
            return f"{n} {self.order[1]} steps (one pass; the {self.order[0]} val set measures what is kept)"
        if self.kind == "phased":
            return f"{n} steps of the current phase's task (one pass over the larger dataset)"
        if self.kind == "joint":
            return f"{n} steps, each one det batch + one seg batch in one forward (one pass over the larger set)"
        if self.ratio == "auto":
            return f"{n} steps: each dataset drawn once ({batches['det']} det + {batches['seg']} seg batches)"
        return f"{n} steps alternating det:seg = {self.ratio[0]}:{self.ratio[1]} (each dataset drawn at least once)"


def task_args(args: Any, task: str) -> Any:
    """Copy of an Ultralytics args namespace with `task` set for one of the two datasets."""
    sub = copy(args)
    sub.task = ULTRALYTICS_TASKS[task]
    return sub


def merge_joint(det: dict, seg: dict) -> dict:
    """One batch from a det batch and a seg batch of the same image size: det images first, `n_det` of them."""
    batch = {"task": "joint", "n_det": len(det["img"])}
    for key in set(det) | set(seg):
        a, b = det.get(key), seg.get(key)
        if key == "img":
            batch[key] = torch.cat([a, b])
        elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):  # per-image lists: im_file, shapes, ...
            batch[key] = [*a, *b]
        else:
            batch[key] = a if a is not None else b  # labels of one task: boxes (det) or semantic_mask (seg)
    return batch


class _Datasets:
    """The train datasets of both tasks seen as one (length, mosaic closing, labels of each)."""

    def __init__(self, datasets: dict[str, Any]):
        self.by_task = datasets
        self.datasets = list(datasets.values())  # as torch's ConcatDataset names them (read by Ultralytics)

    def __len__(self) -> int:
        return sum(len(d) for d in self.by_task.values())

    def close_mosaic(self, hyp: Any) -> None:
        """Ultralytics' close_mosaic on both datasets, each with its own task's transforms."""
        for task, dataset in self.by_task.items():
            dataset.mosaic = False
            dataset.close_mosaic(hyp=task_args(hyp, task))


class _Samplers:
    """Both loaders' samplers as one: `set_epoch` reaches each (DistributedSampler shuffles per epoch)."""

    def __init__(self, loader: MultiTaskLoader):
        self.loader = loader

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return sum(len(loader.sampler) for loader in self.loader.loaders.values())


class MultiTaskLoader:
    """Yields task-tagged batches (`batch['task']` = 'det', 'seg' or 'joint') from one Ultralytics loader per task.

    Each task's loader keeps its own iterator across epochs and starts a new pass when it runs out, so a smaller
    dataset repeats only where the plan asks for more of its batches than one pass holds.
    """

    def __init__(self, loaders: dict[str, Any], plan: TaskPlan, epochs: int):
        self.loaders, self.plan, self.epochs = loaders, plan, epochs
        self.epoch = 0
        self.batches = {task: len(loader) for task, loader in loaders.items()}
        self.dataset = _Datasets({task: loader.dataset for task, loader in loaders.items()})
        self.sampler = _Samplers(self)
        self.batch_size = next(iter(loaders.values())).batch_size
        self.num_workers = next(iter(loaders.values())).num_workers
        self.drop_last = False
        self._iterators: dict[str, Iterator] = {}

    def __len__(self) -> int:
        return self.plan.steps_per_epoch(self.batches)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass plans for (its phase); DistributedSamplers reshuffle per epoch."""
        self.epoch = epoch
        for loader in self.loaders.values():
            if hasattr(loader.sampler, "set_epoch"):
                loader.sampler.set_epoch(epoch)

    def steps(self) -> list[tuple[str, ...]]:
        """The planned steps of the current epoch."""
        return self.plan.steps(self.epoch, self.epochs, self.batches)

    def __iter__(self) -> Iterator[dict]:
        for step in self.steps():
            if len(step) == 2:
                yield merge_joint(self._next("det"), self._next("seg"))
            else:
                yield {**self._next(step[0]), "task": step[0]}

    def _next(self, task: str) -> dict:
        try:
            return next(self._iterators[task])
        except (KeyError, StopIteration):
            self._iterators[task] = iter(self.loaders[task])
            return next(self._iterators[task])

    def reset(self) -> None:
        """Rebuild the workers' iterators (after closing mosaic), as Ultralytics' InfiniteDataLoader.reset."""
        for loader in self.loaders.values():
            loader.reset()
        self._iterators = {}

    def close(self) -> None:
        for loader in self.loaders.values():
            if hasattr(loader, "close"):
                loader.close()


class ValLoaders:
    """Both tasks' val loaders, as Ultralytics' trainer holds its test loader (the validator runs each)."""

    def __init__(self, loaders: dict[str, Any]):
        self.loaders = loaders
        self.dataset = _Datasets({task: loader.dataset for task, loader in loaders.items()})
        self.num_workers = 0

    def close(self) -> None:
        for loader in self.loaders.values():
            if hasattr(loader, "close"):
                loader.close()
