"""DDP training on the CPU: 2 gloo processes, through torchrun and through Ultralytics' launcher (`pytest -k ddp`).

Each run trains tests/ddp_script.py's recording trainer on the tiny pair and reads back, per rank, the task and the
images of every step.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ultralytics.utils.dist import find_free_network_port

from yoloseghw.engine.checkpoint import load_model

SCRIPT = Path(__file__).with_name("ddp_script.py")
LR_KEYS = ("lr/pg0", "lr/pg1", "lr/pg2")


def run_script(tiny_pair, tmp_path: Path, nproc: int | None = None, *flags: str) -> subprocess.CompletedProcess:
    """Run ddp_script.py: under torchrun with `nproc` processes, or as one process (which may launch workers)."""
    torchrun = ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={find_free_network_port()}"]
    out = tmp_path / "out"
    out.mkdir()
    args = [*map(str, tiny_pair), str(tmp_path / "runs"), str(out), *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, *(torchrun if nproc else []), str(SCRIPT), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=420, env=env)


def ranks(tmp_path: Path) -> dict[int, dict]:
    return {int(p.stem[4:]): json.loads(p.read_text()) for p in (tmp_path / "out").glob("rank*.json")}


def files_of(record: dict, epoch: int, task: str) -> list[str]:
    """The images of `task` in the steps of `epoch` (a joint step holds both tasks' images, det first)."""
    out = []
    for step in record["steps"]:
        if step["epoch"] == epoch and step["task"] in (task, "joint"):
            files, n = step["files"], step["n_det"]
            out += files if step["task"] == task else files[:n] if task == "det" else files[n:]
    return out


def results_rows(tmp_path: Path) -> list[dict[str, float]]:
    with open(tmp_path / "runs" / "ddp" / "results.csv") as f:
        return [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.parametrize(
    "flags, tasks",
    [
        ([], {"det", "seg"}),
        (["schedule=joint"], {"joint"}),
        # phase two under DDP, distilling and anchoring (EWC) on both ranks, the classes linked (--link)
        (["schedule=phased", "freeze=10", "distill=True", "ewc=100", "link=auto"], {"det", "seg"}),
        (["launch"], {"det", "seg"}),
        # --ratio gain: rank 0's metrics set epoch 2's shares on both ranks (rank 1's would favour the other task)
        (["ratio=gain", "warmup_epochs=0", "fake-gain"], {"det", "seg"}),
    ],
    ids=["torchrun", "torchrun-joint", "torchrun-phased", "ultralytics-launcher", "torchrun-gain"],
)
def test_ddp_two_gloo_ranks_shard_both_datasets_and_run_the_same_steps(tiny_pair, tmp_path, flags, tasks):
    proc = run_script(tiny_pair, tmp_path, None if "launch" in flags else 2, *flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_rank = ranks(tmp_path)
    assert sorted(by_rank) == [0, 1]
    assert {r["wrapper"] for r in by_rank.values()} == {"HostDDP"}
    assert {r["world_size"] for r in by_rank.values()} == {2}
    steps = [[step["task"] for step in by_rank[r]["steps"]] for r in (0, 1)]
    assert steps[0] == steps[1] and set(steps[0]) == tasks  # the same task at every step on both ranks
    gain = "ratio=gain" in flags
    if gain:  # epoch 2 gives segmentation, the task rank 0 saw gain, three quarters of its 4 steps
        second = [step["task"] for step in by_rank[0]["steps"] if step["epoch"] == 1]
        assert second.count("seg") == 3 and second.count("det") == 1
    for task, yaml in zip(("det", "seg"), tiny_pair):
        everything = sorted(p.name for p in (yaml.parent / "images" / "train").iterdir())
        for epoch in (0,) if gain else (0, 1):  # gain's second epoch draws no whole passes
            shards = [files_of(by_rank[r], epoch, task) for r in (0, 1)]
            if not shards[0] + shards[1]:  # phased: the task this epoch did not train
                continue
            assert not set(shards[0]) & set(shards[1])  # disjoint
            passes = len(shards[0] + shards[1]) // len(everything)  # phased: det + seg batches of one task, 2 passes
            assert sorted(shards[0] + shards[1]) == sorted(everything * passes)  # the whole dataset, whole passes
    run = tmp_path / "runs" / "ddp"
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["ddp"]  # no second run folder from rank 1
    assert (run / "weights" / "best.pt").is_file() and (run / "weights" / "last.pt").is_file()
    rows = results_rows(tmp_path)
    assert len(rows) == 2
    if "distill=True" in flags:  # no teacher in phase one; in phase two it ran, on the anchors it singled out
        assert rows[0]["train/distill_anchors"] == 0 and rows[1]["train/distill_anchors"] > 0
        assert rows[0]["train/distill_loss"] == 0 and rows[1]["train/distill_loss"] >= 0
    if "link=auto" in flags:  # boxes taught masks in phase one (det), masks taught boxes in phase two (seg)
        assert rows[0]["train/b2m_loss"] > 0 and rows[1]["train/m2b_loss"] > 0
        assert load_model(run / "weights" / "last.pt")[0].link == {0: 3, 1: 4}  # car=car, person=person


@pytest.mark.parametrize("launch", [False, True], ids=["torchrun", "ultralytics-launcher"])
def test_ddp_bad_input_on_one_rank_ends_both_with_one_line(tiny_pair, tmp_path, launch):
    flags = ["fail-on-rank-1", *(["launch"] if launch else [])]
    proc = run_script(tiny_pair, tmp_path, None if launch else 2, *flags)  # no hang: the timeout would raise
    message = "Error: --det: images/train/0003.jpg: image file is truncated (rank 1)"
    assert proc.returncode != 0
    assert proc.stderr.count(message) == 1, proc.stderr[-3000:]
    assert not ranks(tmp_path)  # neither rank finished training
    if launch:  # the command's own output: that line only, exit code 2, and no run folder left behind
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
        assert not (tmp_path / "runs" / "ddp").exists()


def test_ddp_world_size_1_matches_the_plain_path(tiny_pair, tmp_path):
    """One torchrun process (process group, DistributedSampler, DDP wrapper) against no DDP at all, without
    augmentation and each dataset in one batch: the same steps, LR schedule, losses and metrics."""
    plain_dir, ddp_dir = tmp_path / "plain", tmp_path / "ddp"
    plain_dir.mkdir(), ddp_dir.mkdir()
    plain = run_script(tiny_pair, plain_dir, None, "exact")
    ddp = run_script(tiny_pair, ddp_dir, 1, "exact")
    assert plain.returncode == 0 and ddp.returncode == 0, (plain.stderr + ddp.stderr)[-3000:]
    (plain_record,), (ddp_record,) = ranks(plain_dir).values(), ranks(ddp_dir).values()
    assert (plain_record["wrapper"], plain_record["world_size"]) == ("DetSegModel", 0)
    assert (ddp_record["wrapper"], ddp_record["world_size"]) == ("HostDDP", 1)
    assert [s["task"] for s in plain_record["steps"]] == [s["task"] for s in ddp_record["steps"]]
    for task in ("det", "seg"):  # one process sees the whole of each dataset every epoch, as without DDP
        for epoch in (0, 1):
            assert sorted(files_of(ddp_record, epoch, task)) == sorted(files_of(plain_record, epoch, task))
    plain_rows, ddp_rows = results_rows(plain_dir), results_rows(ddp_dir)
    assert [r["epoch"] for r in plain_rows] == [r["epoch"] for r in ddp_rows] == [1, 2]
    assert plain_rows[1]["train/box_loss"] != plain_rows[0]["train/box_loss"]  # the optimizer stepped
    for a, b in zip(plain_rows, ddp_rows):
        assert [a[k] for k in LR_KEYS] == pytest.approx([b[k] for k in LR_KEYS], rel=1e-9)  # the same LR schedule
        for key in [k for k in a if k.startswith(("train/", "metrics/"))]:  # within float summation noise
            assert a[key] == pytest.approx(b[key], rel=1e-2, abs=1e-4), key
