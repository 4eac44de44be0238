"""Latency timing in turns (round robin): every runner on the same inputs, block by block, so that the noise of a
shared machine hits all of them alike. Serves `yoloseg bench` and the experiments behind benchmarks/*.py."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

Runner = Callable[[np.ndarray], Any]
WARMUP = 5  # untimed runs per runner before the first round


def timings(
    runners: dict[str, Runner], inputs: list[np.ndarray], runs: int, rounds: int
) -> dict[str, list[list[float]]]:
    """ms of each run, per runner and round: a warm-up, then `rounds` blocks in turn (each block the same inputs for
    every runner)."""
    times: dict[str, list[list[float]]] = {name: [] for name in runners}
    for run in runners.values():
        for x in inputs[:WARMUP]:
            run(x)
    per_round = max(runs // rounds, 1)
    for r in range(rounds):
        for name, run in runners.items():
            block = []
            for i in range(per_round):
                x = inputs[(r * per_round + i) % len(inputs)]
                t = time.perf_counter()
                run(x)
                block.append((time.perf_counter() - t) * 1e3)
            times[name].append(block)
    return times


def p50_p90(blocks: list[list[float]]) -> tuple[float, float]:
    """Median and 90th percentile of all the runs in `blocks`."""
    t = sorted(x for block in blocks for x in block)
    return statistics.median(t), t[int(0.9 * (len(t) - 1))]


def latency(runners: dict[str, Runner], inputs: list[np.ndarray], runs: int, rounds: int) -> dict[str, tuple]:
    """(p50, p90) ms per runner over `timings`."""
    return {name: p50_p90(blocks) for name, blocks in timings(runners, inputs, runs, rounds).items()}
