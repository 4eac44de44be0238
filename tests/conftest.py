"""Shared fixtures: tiny synthetic box-only and mask-only datasets, offline Ultralytics settings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(__file__).resolve().parents[1] / ".yolo-config"))
WORKER, WORKERS = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKER:  # pytest-xdist: each worker its own settings folder (no two writing one settings file) and share of cores
    os.environ["YOLO_CONFIG_DIR"] = str(Path(os.environ["YOLO_CONFIG_DIR"]) / WORKER)
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // WORKERS))

from yoloseghw.data.demo import make_demo  # noqa: E402  (after YOLO_CONFIG_DIR is set)

TINY = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "seed": 0, "plots": False}


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny generated pair: (det yaml, seg yaml), 8 train and 4 val images each."""
    return make_demo(tmp_path_factory.mktemp("tiny"), n_train=8, n_val=4, seed=1)


@pytest.fixture()
def pair_copy(tiny_pair, tmp_path) -> tuple[Path, Path]:
    """A private, editable copy of the tiny pair (for breaking it)."""
    root = tiny_pair[0].parent.parent
    shutil.copytree(root, tmp_path / "data")
    return tmp_path / "data/demo-det/demo-det.yaml", tmp_path / "data/demo-seg/demo-seg.yaml"


@pytest.fixture(scope="session")
def trained(tiny_pair, tmp_path_factory) -> Path:
    """best.pt of one tiny training run (shared by checkpoint/val/CLI tests)."""
    from yoloseghw import YOLOSeg

    project = tmp_path_factory.mktemp("runs")
    YOLOSeg("yolo26n").train(det=tiny_pair[0], seg=tiny_pair[1], project=project, name="base", **TINY)
    return project / "base" / "weights" / "best.pt"
