"""The multi-task training loader: one loader per dataset, drawn in the order a task schedule plans, as one loader.

Two knobs decide an epoch (`TaskPlan`):
- its length, in batches: by default the batches the two single-task models take in their epochs together (det
  batches + seg batches), so that N epochs cost what two stock models cost, whatever the mix (`epoch_steps`);
- which task each step draws: the mix (`ratio`): `auto` (proportional to each dataset's batches: each dataset once
  an epoch), `a:b` (a det steps to b seg steps), `temp:A` (task i drawn in proportion to batches_i ** A: A = 1 is
  `auto`, A = 0 is `1:1`), or `gain` (1:1 for the warm-up epochs, then each epoch's shares follow each task's
  validation gain per step: data/gain_mix.py; the trainer sets them in `gain_shares` before each epoch). The steps of
  each task are spread evenly over the epoch, and a dataset drawn more often than once an epoch starts a new pass
  where the last one ended.
Ultralytics' trainer counts the steps of an epoch once (`len(train_loader)`), so every epoch has the same number of
steps; what changes from epoch to epoch (the phase of `phased`) is which dataset each step draws. Every DDP rank
computes the same plan, so all ranks run the same task at every step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from copy import copy
from dataclasses import dataclass
from typing import Any

import torch

from yoloseghw.utils.options import TASKS, Mix

ULTRALYTICS_TASKS = {"det": "detect", "seg": "semantic"}  # our task key -> Ultralytics task name


def split_steps(total: int, shares: dict[str, float]) -> dict[str, int]:
    """`total` steps split by `shares`, rounded so that they add up and every task with a share gets a step."""
    counts = {t: round(total * share) for t, share in shares.items()}
    for t, share in shares.items():
        if share > 0 and counts[t] == 0 and total >= len(shares):
            counts[t] = 1
    largest = max(counts, key=counts.get)
    counts[largest] += total - sum(counts.values())
    return counts


def spread(counts: dict[str, int]) -> list[str]:
    """One task per step, each task's steps spread evenly: the task furthest behind its share goes next."""
    done, order = dict.fromkeys(counts, 0), []
    live = [t for t in TASKS if counts.get(t)]
    for _ in range(sum(counts.values())):
        task = min(live, key=lambda t: ((done[t] + 0.5) / counts[t], t))
        done[task] += 1
        order.append(task)
    return order


@dataclass
class TaskPlan:
    """Plans the steps of an epoch. A step is ('det',), ('seg',) or ('det', 'seg') (one joint batch).

    Steps per epoch (the same in every epoch), with `epoch_steps` batches (default: det + seg batches):
    - `alternate`: `epoch_steps` steps, split between the tasks by the mix (`ratio`);
    - `joint`: ceil(`epoch_steps` / 2) joint steps (each one det and one seg batch);
    - `phased`: `epoch_steps` steps of the current phase's task; in phase two, `replay` first-task batches per
      second-task batch among them;
    - `single`: the batches of `order[1]`'s dataset (default; one pass), with `replay` first-task batches per
      second-task batch among them when the first task's dataset is there.
    """

    kind: str = "alternate"
    ratio: Mix | str | tuple[int, int] = "auto"
    det_epochs: int | None = None
    order: tuple[str, str] = TASKS
    replay: float = 0.0
    epoch_steps: int | None = None
    gain_shares: dict[str, float] | None = None  # `gain`: this epoch's shares (None: its warm-up shares, 1:1)

    def __post_init__(self) -> None:
        self.ratio = Mix.parse(self.ratio)

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

    def train_tasks(self) -> tuple[str, ...]:
        """The tasks whose train datasets the run draws from (`single` without replay: the new task's only)."""
        if self.kind == "single" and not self.replay:
            return (self.order[1],)
        return TASKS

    def batches_per_epoch(self, batches: dict[str, int]) -> int:
        """The batches an epoch draws (joint steps draw two)."""
        if self.epoch_steps:
            return self.epoch_steps
        if self.kind == "single":
            return batches[self.order[1]]
        return sum(batches[t] for t in TASKS)

    def steps_per_epoch(self, batches: dict[str, int]) -> int:
        """Steps in every epoch, given the batches per pass of each dataset."""
        n = self.batches_per_epoch(batches)
        return math.ceil(n / 2) if self.kind == "joint" else n

    def counts(self, epoch: int, epochs: int, batches: dict[str, int]) -> dict[str, int]:
        """The steps of each task in this epoch (a joint step counts for both)."""
        n = self.steps_per_epoch(batches)
        if self.kind == "joint":
            return dict.fromkeys(TASKS, n)
        if self.kind == "alternate":
            shares = self.gain_shares if self.ratio.kind == "gain" and self.gain_shares else self.ratio.shares(batches)
            return split_steps(n, shares)
        tasks = self.phase(epoch, epochs)
        replaying = self.replay and tasks == (self.order[1],) and self.order[0] in batches
        if not replaying:
            return {tasks[0]: n}
        return split_steps(n, {self.order[1]: 1 / (1 + self.replay), self.order[0]: self.replay / (1 + self.replay)})

    def steps(self, epoch: int, epochs: int, batches: dict[str, int]) -> list[tuple[str, ...]]:
        """The ordered steps of one epoch."""
        if self.kind == "joint":
            return [TASKS] * self.steps_per_epoch(batches)
        return [(task,) for task in spread(self.counts(epoch, epochs, batches))]

    def optimizer_cadence(self, accumulate: int) -> str:
        """How often the optimizer steps, in words: Ultralytics steps it every `accumulate` iterations, and a joint
        step is one iteration that draws two batches."""
        if self.kind != "joint":
            return f"an optimizer step every {accumulate} batches"
        return f"an optimizer step every {accumulate} joint steps ({2 * accumulate} batches)"

    def describe(self, batches: dict[str, int], epoch: int = 0, epochs: int = 1) -> str:
        """What an epoch is, in words (printed when training starts): its length and what its steps draw."""
        n = self.steps_per_epoch(batches)
        length = (
            f"{self.epoch_steps} batches (--epoch-steps)"
            if self.epoch_steps
            else f"{batches[self.order[1]]} batches (one pass over the {self.order[1]} set)"
            if self.kind == "single"
            else f"{sum(batches[t] for t in TASKS)} batches (det {batches['det']} + seg {batches['seg']}: what the two "
            "single-task models draw in an epoch)"
        )
        counts = self.counts(epoch, epochs, batches)
        if self.kind == "joint":
            return f"{n} steps, each one det batch + one seg batch in one forward; length {length}"
        drawn = " + ".join(f"{counts[t]} {t}" for t in TASKS if counts.get(t))
        if self.kind == "alternate" and self.ratio.kind == "gain":
            return (
                f"{n} steps, length {length}; mix gain: {drawn} steps in the warm-up epochs, then each task's share "
                "follows its validation gain per step"
            )
        if self.kind == "alternate":
            return f"{n} steps, length {length}; mix {self.ratio}: {drawn} steps"
        replay = f", replaying {self.replay:g} {self.order[0]} batches per {self.order[1]} batch" if self.replay else ""
        if self.kind == "single":
            return f"{n} steps, length {length}: {drawn} (the {self.order[0]} val set measures what is kept){replay}"
        return f"{n} steps of the current phase's task, length {length}{replay}"


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

    def __init__(self, loaders: dict[str, Any], plan: TaskPlan, epochs: int, batches: dict[str, int] | None = None):
        """`loaders`: one Ultralytics loader per task drawn from; `batches`: each dataset's batches per pass (default:
        the loaders'; a task validated only, without a train loader, counts as 0)."""
        self.loaders, self.plan, self.epochs = loaders, plan, epochs
        self.epoch = 0
        self.batches = batches or {task: len(loader) for task, loader in loaders.items()}
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
