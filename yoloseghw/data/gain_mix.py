"""`--ratio gain`: each epoch's task shares follow what each task's steps added to its validation metric.

The shares are replayed from the validation metrics of the finished epochs (results.csv), so a resumed run draws
exactly what the uninterrupted run would have, and no state of its own needs saving:
- the warm-up epochs draw 1:1 (Ultralytics' warm-up ramps the LR there, so gains are not yet comparable);
- after them, a task's gain per step is the share of its metric that an epoch added, over the steps the task had in
  that epoch: (m_e - m_{e-1}) / m_e / steps_e (with m_{-1} = 0), averaged over the last `WINDOW` epochs. The next
  epoch gives each task a share in proportion to its gain, kept between `GAIN_FLOOR` and 1 - `GAIN_FLOOR`, so that
  neither task is starved; where neither task gained, the shares stay as they were.
Relative gains make the two metrics comparable (mAP50-95 is near 0.05 after a few epochs from scratch, mIoU near
0.3), and a task whose metric stopped rising gives its steps to the one still learning.
"""

from __future__ import annotations

from yoloseghw.data.multitask import split_steps
from yoloseghw.utils.options import TASKS

GAIN_FLOOR = 0.25  # each task gets at least a quarter of an epoch's steps (at most three quarters)
WINDOW = 2  # epochs whose gains are averaged: one epoch's validation is noisy


def gain_per_step(before: float, after: float, steps: int) -> float:
    """The share of the metric `after` that an epoch added over `before`, per step of its task (0 where the metric is
    not positive or not measured, or the task had no step)."""
    if steps <= 0 or not after > 0:  # also NaN: an epoch without validation
        return 0.0
    before = before if before > 0 else 0.0
    return (after - before) / after / steps


def epoch_gain(metrics: list[dict[str, float]], steps: list[dict[str, int]], epoch: int, task: str) -> float:
    """`task`'s gain per step in `epoch`, from its metric before (0 before the first epoch) and after it."""
    before = metrics[epoch - 1][task] if epoch else 0.0
    return gain_per_step(before, metrics[epoch][task], steps[epoch].get(task, 0))


def gain_shares(metrics: list[dict[str, float]], epoch_steps: int, warmup: int) -> list[dict[str, float]]:
    """The shares of epochs 0 .. len(metrics): one per finished epoch (as it was drawn), then the next epoch's.

    Args:
        metrics: each finished epoch's validation metric per task ({'det': mAP50-95, 'seg': mIoU}), oldest first.
        epoch_steps: the steps of an epoch (both tasks).
        warmup: the epochs drawn 1:1 first (at least one: a gain needs a validated epoch).

    Returns:
        One {'det': share, 'seg': share} per epoch, the shares adding up to 1.
    """
    equal = dict.fromkeys(TASKS, 1 / len(TASKS))
    shares: list[dict[str, float]] = []
    steps: list[dict[str, int]] = []
    for epoch in range(len(metrics) + 1):
        if epoch < max(warmup, 1):
            share = equal
        else:
            recent = range(max(epoch - WINDOW, 0), epoch)
            gains = {t: max(sum(epoch_gain(metrics, steps, e, t) for e in recent) / len(recent), 0.0) for t in TASKS}
            total = sum(gains.values())
            if not total > 0:
                share = shares[-1]
            else:
                det = min(max(gains["det"] / total, GAIN_FLOOR), 1 - GAIN_FLOOR)
                share = {"det": det, "seg": 1 - det}
        shares.append(share)
        steps.append(split_steps(epoch_steps, share))
    return shares
