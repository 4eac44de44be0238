"""Training: one short run per schedule, outputs, checkpoint round trip, resume, weight transfer."""

from __future__ import annotations

import csv

import pytest
import torch

from yoloseghw import YOLOSeg
from yoloseghw.checkpoint import load_model
from yoloseghw.demo import DET_NAMES, SEG_NAMES
from yoloseghw.train import DetSegTrainer

from .conftest import TINY


@pytest.mark.parametrize(
    ("schedule", "extra"),
    [("alternate", {"ratio": "2:1"}), ("phased", {"epochs": 2, "det_epochs": 1, "freeze": 5}), ("joint", {})],
)
def test_schedule_run(schedule, extra, tiny_pair, tmp_path):
    args = {**TINY, **extra}
    result = YOLOSeg("yolo26n").train(det=tiny_pair[0], seg=tiny_pair[1], schedule=schedule, project=tmp_path, **args)
    run = tmp_path / "train"
    for f in ("weights/best.pt", "weights/last.pt", "results.csv", "results.png"):
        assert (run / f).is_file(), f
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert len(rows) == args["epochs"]
    for key in ("train/det/box_loss", "train/seg/ce_loss", "metrics/mAP50-95(B)", "metrics/mIoU", "fitness"):
        assert key in rows[0]
    if schedule == "phased":
        assert [r["phase"] for r in rows] == ["det", "seg"]
        assert rows[0]["train/seg/ce_loss"] == "" and rows[1]["train/det/box_loss"] == ""
    assert 0.0 <= result["metrics"]["metrics/mIoU"] <= 1.0


def test_checkpoint_round_trip(trained):
    model, ckpt = load_model(trained)
    assert model.det_names == dict(enumerate(DET_NAMES))
    assert model.seg_names == dict(enumerate(SEG_NAMES))
    assert ckpt["det_names"] == model.det_names and ckpt["seg_names"] == model.seg_names
    info = YOLOSeg(trained).info()
    assert info["det_names"] == dict(enumerate(DET_NAMES)) and info["parameters"] > 0
    model.eval()
    with torch.no_grad():
        det, logits = model(torch.rand(1, 3, 64, 64))
    assert logits.shape[1] == len(SEG_NAMES)


def test_new_run_never_overwrites(tiny_pair, tmp_path):
    for _ in range(2):
        YOLOSeg("yolo26n").train(det=tiny_pair[0], seg=tiny_pair[1], project=tmp_path, name="exp", **TINY)
    assert (tmp_path / "exp/weights/best.pt").is_file() and (tmp_path / "exp-2/weights/best.pt").is_file()


def test_resume_continues_where_it_stopped(tiny_pair, tmp_path, monkeypatch):
    original = DetSegTrainer._print_epoch

    def interrupt_after_first(self, row, improved):
        original(self, row, improved)
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(DetSegTrainer, "_print_epoch", interrupt_after_first)
    with pytest.raises(KeyboardInterrupt):
        YOLOSeg("yolo26n").train(det=tiny_pair[0], seg=tiny_pair[1], project=tmp_path, **{**TINY, "epochs": 3})
    monkeypatch.setattr(DetSegTrainer, "_print_epoch", original)
    run = tmp_path / "train"
    assert len(list(csv.DictReader(open(run / "results.csv")))) == 1
    YOLOSeg().train(resume=run)
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert "train_state" not in torch.load(run / "weights/last.pt", weights_only=False)
    assert not (tmp_path / "train-2").exists()


def test_transfer_from_detection_checkpoint(trained, tiny_pair, tmp_path):
    """--weights loads every matching tensor of a detection checkpoint (here: a yoloseg one's detector part)."""
    from ultralytics.nn.tasks import DetectionModel

    det_model = DetectionModel("yolo26n.yaml", nc=len(DET_NAMES), verbose=False)
    torch.save({"model": det_model.half()}, tmp_path / "det.pt")
    from yoloseghw.checkpoint import transfer_detection_weights
    from yoloseghw.nn import build_model

    model = build_model("yolo26n", len(DET_NAMES), len(SEG_NAMES))
    n, total = transfer_detection_weights(model, tmp_path / "det.pt")
    assert n == len(det_model.state_dict()) and n < total
    torch.testing.assert_close(model.model[0].conv.weight, det_model.model[0].conv.weight.float())


def test_training_is_offline(tiny_pair, tmp_path, monkeypatch):
    """Nothing reaches for the network during a training run (weights, fonts, datasets)."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    YOLOSeg("yolov8n").train(det=tiny_pair[0], seg=tiny_pair[1], project=tmp_path, **TINY)
    assert (tmp_path / "train/weights/best.pt").is_file()


def test_phased_full_freeze_keeps_detector(tiny_pair, tmp_path, monkeypatch):
    """phased det->seg with every layer before the heads frozen: phase two changes only the semantic head."""
    states = []
    original = DetSegTrainer._save

    def spy(self, epoch, improved, final):
        states.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        original(self, epoch, improved, final)

    monkeypatch.setattr(DetSegTrainer, "_save", spy)
    YOLOSeg("yolo26n").train(
        det=tiny_pair[0],
        seg=tiny_pair[1],
        project=tmp_path,
        schedule="phased",
        det_epochs=1,
        freeze=23,
        **{**TINY, "epochs": 2},
    )
    after_det, after_seg = states
    changed = {k for k in after_det if not torch.equal(after_det[k], after_seg[k])}
    assert changed and all(k.startswith("semantic.") for k in changed), sorted(changed)[:5]
