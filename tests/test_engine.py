"""Ultralytics' engine under yoloseg: TensorBoard through its integrations, key=value options, 0.1.0 checkpoints."""

from __future__ import annotations

import csv
import lzma
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, run
from yoloseghw import YOLOSeg
from yoloseghw.engine.checkpoint import load_model, read_checkpoint

from .conftest import TINY

FIXTURE = Path(__file__).parent / "fixtures" / "yoloseg-0.1.0-last.pt.xz"
TENSORBOARD_RUN = """
import sys
from ultralytics.utils import SETTINGS
SETTINGS.update(tensorboard=True)
from yoloseghw import YOLOSeg
YOLOSeg("yolo26n").train(det=sys.argv[1], seg=sys.argv[2], project=sys.argv[3], **eval(sys.argv[4]))
"""


def test_tensorboard_logs_both_tasks(tiny_pair, tmp_path):
    """With the tensorboard package and Ultralytics' setting on, the run writes both tasks' losses and metrics.

    Ultralytics turns its integrations off under pytest, so the run goes in a process of its own."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    env["YOLO_CONFIG_DIR"] = str(tmp_path / "config")
    args = [str(tiny_pair[0]), str(tiny_pair[1]), str(tmp_path / "runs"), repr({**TINY, "epochs": 2})]
    done = subprocess.run([sys.executable, "-c", TENSORBOARD_RUN, *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    events = list((tmp_path / "runs/train").glob("events.out.tfevents.*"))
    assert events, list((tmp_path / "runs/train").iterdir())
    tags = set(EventAccumulator(str(events[0])).Reload().Tags()["scalars"])
    expected = {"train/box_loss", "train/ce_loss", "train/dice_loss", "metrics/mAP50-95(B)", "metrics/mIoU", "lr/pg0"}
    assert expected <= tags, sorted(tags)


def test_key_value_options(tiny_pair, tmp_path):
    result = run(
        "train", "--det", tiny_pair[0], "--seg", tiny_pair[1], "--project", tmp_path, "--epochs", "3",
        "--imgsz", "64", "--batch", "4", "--workers", "0", "plots=False", "cos_lr=True", "warmup_epochs=0",
        "optimizer=SGD", "lr0=0.02",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    args = read_checkpoint(tmp_path / "train/weights/last.pt")["train_args"]
    assert args["cos_lr"] is True and args["warmup_epochs"] == 0 and args["lr0"] == 0.02
    rows = list(csv.DictReader(open(tmp_path / "train/results.csv")))
    cosine = (1 - math.cos(2 * math.pi / 3)) / 2 * (0.01 - 1) + 1  # Ultralytics' one_cycle at epoch index 2 of 3
    assert float(rows[2]["lr/pg0"]) == pytest.approx(0.02 * cosine)  # linear would give 0.02 * 0.34


def test_unknown_key_did_you_mean(tiny_pair, tmp_path):
    result = run("train", "--det", tiny_pair[0], "--seg", tiny_pair[1], "--project", tmp_path, "cos_lrr=True")
    assert_one_line_error(result, "'cos_lrr' is not a valid YOLO argument", "cos_lr")
    assert not (tmp_path / "train").exists()


@pytest.mark.parametrize(
    ("args", "needle"), [(["epochs=abc"], "epochs"), (["lr0=fast"], "lr0"), (["epochs"], "unexpected argument")]
)
def test_bad_key_values(args, needle, tiny_pair, tmp_path):
    result = run("train", "--det", tiny_pair[0], "--seg", tiny_pair[1], "--project", tmp_path, *args)
    assert_one_line_error(result, needle)


@pytest.fixture()
def legacy_run(tmp_path) -> Path:
    """An interrupted run written by yoloseg 0.1.0 (main 0d9bb1a): <run>/weights/last.pt, resumable at epoch 2/3."""
    path = tmp_path / "legacy" / "weights" / "last.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes(lzma.decompress(FIXTURE.read_bytes()))
    return path


def test_legacy_checkpoint_val_predict_export(legacy_run, tiny_pair, tmp_path):
    model, ckpt = load_model(legacy_run)
    assert ckpt["version"] == "0.1.0" and type(model).__module__ == "yoloseghw.nn.tasks"
    m = YOLOSeg(legacy_run)
    assert m.info()["epochs trained"] == 1
    metrics = m.val(det=tiny_pair[0], seg=tiny_pair[1], verbose=False)["metrics"]
    images = tiny_pair[1].parent / "images" / "val"
    assert len(m.predict(images)) == 4
    onnx = YOLOSeg(m.export(semantic="logits8", dynamic=True))  # the head's own output: the same val numbers
    exported = onnx.val(det=tiny_pair[0], seg=tiny_pair[1], threads=1, verbose=False)["metrics"]
    assert metrics["metrics/mIoU"] > 0 and exported["metrics/mIoU"] == pytest.approx(metrics["metrics/mIoU"], abs=1e-3)
    assert exported["metrics/mAP50(B)"] == pytest.approx(metrics["metrics/mAP50(B)"], abs=1e-3)


def test_legacy_checkpoint_as_weights(legacy_run, tiny_pair, tmp_path):
    legacy = load_model(legacy_run)[0]
    m = YOLOSeg(legacy.yaml)
    m.train(det=tiny_pair[0], seg=tiny_pair[1], weights=legacy_run, project=tmp_path, **TINY)
    assert (tmp_path / "train/weights/best.pt").is_file()


def test_legacy_checkpoint_resumes(legacy_run, tiny_pair):
    YOLOSeg().train(resume=legacy_run.parent.parent, det=tiny_pair[0], seg=tiny_pair[1])
    run_dir = legacy_run.parent.parent
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    assert [int(r["epoch"]) for r in rows] == [2, 3]  # epochs 2 and 3 of 3; epoch 1 was trained by 0.1.0
    assert (run_dir / "weights/last-0.1.0.pt").is_file() and (run_dir / "results-0.1.0.csv").exists() is False
    assert read_checkpoint(run_dir / "weights/last.pt")["train_args"]["epochs"] == 3


@pytest.mark.parametrize(
    ("options", "check"),
    [
        ({"multi_scale": 0.5, "epochs": 2}, lambda run, rows: len(rows) == 2),
        ({"rect": True, "epochs": 2}, lambda run, rows: len(rows) == 2),
        ({"save_period": 1, "epochs": 2}, lambda run, rows: (run / "weights/epoch1.pt").is_file()),
        ({"time": 0.0005, "epochs": 50}, lambda run, rows: len(rows) < 50),  # about 2 s: Ultralytics re-plans epochs
    ],
)
def test_ultralytics_options_take_effect(options, check, tiny_pair, tmp_path):
    YOLOSeg("yolo26n").train(det=tiny_pair[0], seg=tiny_pair[1], project=tmp_path, **{**TINY, **options})
    run_dir = tmp_path / "train"
    assert check(run_dir, list(csv.DictReader(open(run_dir / "results.csv"))))


def test_rect_with_joint_is_refused(tiny_pair, tmp_path):
    result = run(
        "train", "--det", tiny_pair[0], "--seg", tiny_pair[1], "--project", tmp_path, "--schedule", "joint", "rect=True"
    )
    assert_one_line_error(result, "rect=True", "joint")


def test_pair_yaml_with_relative_paths(tiny_pair, tmp_path):
    """--data: a hand-written pair yaml; dataset paths relative to it; a keyword option wins over the file."""
    root = tiny_pair[0].parent.parent
    (root / "pair.yaml").write_text("det: demo-det/demo-det.yaml\nseg: demo-seg/demo-seg.yaml\nschedule: joint\n")
    tasks = []
    m = YOLOSeg("yolo26n")
    m.add_callback("on_train_batch_end", lambda t: tasks.append(t.step_tasks))
    m.train(data=root / "pair.yaml", project=tmp_path, ratio="2:1", **TINY)
    written = (tmp_path / "train/pair.yaml").read_text()
    assert "schedule: joint" in written and "ratio: '2:1'" in written and str(tiny_pair[0]) in written
    assert set(tasks) == {("det", "seg")}
