"""Training on Ultralytics' trainer: schedules, outputs, callbacks, options, phases, resume, fine-tuning."""

from __future__ import annotations

import copy
import csv
import json
import math
import re
from collections.abc import Callable

import pytest
import torch

from tests.helpers import assert_one_line_error, run
from yoloseghw import YOLOSeg
from yoloseghw.continual.forgetting import TASK_METRIC
from yoloseghw.data.demo import DET_NAMES, SEG_NAMES
from yoloseghw.data.gain_mix import gain_shares
from yoloseghw.data.multitask import split_steps
from yoloseghw.engine.checkpoint import load_model, read_checkpoint
from yoloseghw.engine.trainer import DetSegTrainer
from yoloseghw.utils.plots import read_rows

from .conftest import TINY

NORMAL = {**TINY, "epochs": 3, "warmup_epochs": 0, "close_mosaic": 1, "nbs": 2 * TINY["batch"]}  # the normal regime
SGD = {"optimizer": "SGD", "lr0": 0.01, "lrf": 0.01}
GAIN = {"epochs": 3, "warmup_epochs": 0, "seed": 0}  # --ratio gain tests: shares from epoch 2 on


def record_into(tasks: list) -> Callable:
    """An on_train_batch_end callback appending (epoch, step tasks) to `tasks`."""
    return lambda trainer: tasks.append((trainer.epoch, trainer.step_tasks))


def rows_of(run) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run / "results.csv")))


def train(pair, project, *, callbacks=None, model="yolo26n", **kwargs) -> YOLOSeg:
    """Train a YOLOSeg on the pair with the given callbacks {event: fn}; returns it."""
    m = YOLOSeg(model)
    for event, fn in (callbacks or {}).items():
        m.add_callback(event, fn)
    m.train(det=pair[0], seg=pair[1], project=project, **{**TINY, **kwargs})
    return m


@pytest.mark.parametrize(
    ("schedule", "extra"),
    [("alternate", {"ratio": "2:1"}), ("phased", {"epochs": 2, "det_epochs": 1, "freeze": 5}), ("joint", {})],
)
def test_schedule_run(schedule, extra, tiny_pair, tmp_path):
    tasks = []
    m = train(
        tiny_pair,
        tmp_path,
        schedule=schedule,
        callbacks={"on_train_batch_end": lambda t: tasks.append(t.step_tasks)},
        **extra,
    )
    run = tmp_path / "train"
    for f in ("weights/best.pt", "weights/last.pt", "results.csv", "pair.yaml", "args.yaml"):
        assert (run / f).is_file(), f
    rows = rows_of(run)
    assert len(rows) == extra.get("epochs", 1)
    for key in ("train/box_loss", "train/ce_loss", "metrics/mAP50-95(B)", "metrics/mIoU", "lr/pg0"):
        assert key in rows[0]
    # an epoch is det + seg batches (2 + 2 here): what the two single-task models draw in an epoch
    if schedule == "phased":  # each phase trains its own task only; the idle task's losses are NaN
        assert tasks == [("det",)] * 4 + [("seg",)] * 4
        assert math.isnan(float(rows[0]["train/ce_loss"])) and math.isnan(float(rows[1]["train/box_loss"]))
    elif schedule == "joint":  # two batches a step
        assert tasks == [("det", "seg")] * 2
    else:  # 2:1 of 4 steps, spread out
        assert tasks == [("det",), ("det",), ("seg",), ("det",)]
    saved = read_checkpoint(run / "weights/best.pt")["train_metrics"]  # the epoch best.pt was saved at
    for key in ("metrics/mIoU", "metrics/mAP50(B)"):  # the final validation of best.pt (FP16) gives its numbers
        assert m.trainer.validator.results[key] == pytest.approx(saved[key], abs=2e-3), key
    check_forgetting_report(run, rows, schedule)


def keep_phase_one(store: dict):
    """An on_model_save callback that keeps, in `store`, the EMA state saved at the end of epoch 1 (phase one)."""

    def keep(trainer) -> None:
        if trainer.epoch == 0:
            store.update(read_checkpoint(trainer.last)["ema"].state_dict())

    return keep


def check_forgetting_report(run, rows, schedule) -> None:
    """forgetting.json holds each task's peak and final val metric from results.csv (phased: the first task's peak
    within phase one and its value when phase one ended), and the share of the peak kept."""
    report = json.loads((run / "forgetting.json").read_text())
    assert report["schedule"] == schedule and report["epochs"] == len(rows)
    for task, key in (("det", "metrics/mAP50-95(B)"), ("seg", "metrics/mIoU")):
        values, row = [float(r[key]) for r in rows], report["tasks"][task]
        span = values[:1] if schedule == "phased" and task == "det" else values  # phase one: epoch 1
        assert row["peak"] == pytest.approx(max(span), abs=1e-6) and row["end_of_run"] == pytest.approx(values[-1])
        assert row["retention"] == (pytest.approx(values[-1] / max(span)) if max(span) > 0 else None)
        if schedule == "phased" and task == "det":
            assert row["end_of_phase"] == pytest.approx(values[0])


def test_checkpoint_round_trip(trained):
    model, ckpt = load_model(trained)
    assert model.det_names == dict(enumerate(DET_NAMES))
    assert model.seg_names == dict(enumerate(SEG_NAMES))
    assert ckpt["train_args"]["imgsz"] == 64 and "optimizer" in ckpt and ckpt["optimizer"] is None
    info = YOLOSeg(trained).info()
    assert info["det_names"] == dict(enumerate(DET_NAMES)) and info["parameters"] > 0 and info["epochs trained"] == 1
    model.eval()
    with torch.no_grad():
        det, logits = model(torch.rand(1, 3, 64, 64))
    assert logits.shape[1] == len(SEG_NAMES)


def test_new_run_never_overwrites(tiny_pair, tmp_path):
    for _ in range(2):
        train(tiny_pair, tmp_path, name="exp")
    assert (tmp_path / "exp/weights/best.pt").is_file() and (tmp_path / "exp-2/weights/best.pt").is_file()


def test_callbacks_fire_in_ultralytics_order(tiny_pair, tmp_path):
    events = []
    names = ("on_pretrain_routine_start", "on_pretrain_routine_end", "on_train_start", "on_train_epoch_start")
    names += ("on_train_epoch_end", "on_val_start", "on_val_end", "on_model_save", "on_fit_epoch_end", "on_train_end")
    callbacks = {name: (lambda event: lambda _: events.append(event))(name) for name in names}
    m = YOLOSeg("yolo26n")
    for event, fn in callbacks.items():
        m.add_callback(event, fn)
    m.add_callback("on_train_batch_end", lambda _: events.append("cleared callback ran"))
    m.clear_callback("on_train_batch_end")
    m.train(det=tiny_pair[0], seg=tiny_pair[1], project=tmp_path, **TINY)
    first = [e for i, e in enumerate(events) if e not in events[:i]]
    assert first == list(names)


def test_normal_regime_steps_lr_and_ema(tiny_pair, tmp_path):
    """3 epochs, no warmup, close_mosaic=1, nbs = 2 x batch: optimizer steps, LR per epoch, EMA validated and saved."""
    seen = []

    def record(trainer):
        from yoloseghw.nn.backends import TorchBackend

        ema_metrics = trainer.validator.run(TorchBackend(trainer.ema.ema, trainer.device))
        seen.append(
            {
                "updates": trainer.ema.updates,
                "lr": trainer.optimizer.param_groups[0]["lr"],
                "mosaic": getattr(trainer.train_loader.dataset.by_task["det"], "mosaic", True),
                "validated_ema": all(abs(ema_metrics[k] - v) < 1e-4 for k, v in trainer.metrics.items()),
            }
        )

    def saved_is_ema(trainer):
        saved = read_checkpoint(trainer.last)["ema"].float().state_dict()
        ema = trainer.ema.ema.state_dict()
        assert all(torch.allclose(saved[k], ema[k].half().float()) for k in saved if saved[k].is_floating_point())

    train(tiny_pair, tmp_path, callbacks={"on_fit_epoch_end": record, "on_model_save": saved_is_ema}, **NORMAL, **SGD)
    seen = seen[:3]  # the 4th is Ultralytics' final validation of best.pt
    # 4 steps an epoch (2 det + 2 seg batches), an optimizer step every nbs/batch = 2 steps
    assert [s["updates"] for s in seen] == [2, 4, 6]
    lf = [(1 - e / 3) * (1 - 0.01) + 0.01 for e in range(3)]
    assert [s["lr"] for s in seen] == pytest.approx([0.01 * f for f in lf])
    assert [s["mosaic"] for s in seen] == [True, True, False]  # close_mosaic=1: the last epoch
    assert all(s["validated_ema"] for s in seen)


def test_phased_lr_scale_and_frozen_layers_untouched(tiny_pair, tmp_path):
    """Phase two: LR x lr_scale; the frozen layers (weights and BatchNorm statistics) of the raw model and of the
    saved EMA, and the saved idle detection head (with --no-distill), equal phase one's."""
    lrs, phase_one, raw = [], {}, {}

    train(
        tiny_pair,
        tmp_path,
        schedule="phased",
        det_epochs=1,
        freeze=10,
        lr_scale=0.1,
        distill=False,  # the idle head stays as phase one left it only without a teacher
        callbacks={
            "on_model_save": keep_phase_one(phase_one),
            "on_train_epoch_end": lambda t: lrs.append(t.optimizer.param_groups[0]["lr"]),
            "on_train_end": lambda t: raw.update(t.model.state_dict()),
        },
        **NORMAL,
        **SGD,
    )
    lf = [(1 - e / 3) * (1 - 0.01) + 0.01 for e in range(3)]
    assert lrs == pytest.approx([0.01 * lf[0], 0.001 * lf[1], 0.001 * lf[2]])
    model = load_model(tmp_path / "train/weights/last.pt")[0]
    final, detect = model.half().state_dict(), f"model.{model.model[-1].i}."
    for k, v in final.items():
        fixed = k.startswith(tuple(f"model.{i}." for i in range(10))) or k.startswith(detect)
        if fixed:
            assert torch.equal(v, phase_one[k]), k
        if k.startswith(tuple(f"model.{i}." for i in range(10))):  # the training model, BN statistics included
            assert torch.equal(raw[k].half() if raw[k].is_floating_point() else raw[k], phase_one[k]), k
    changed = [k for k in final if not torch.equal(final[k], phase_one[k])]
    assert changed and all(k.startswith(("semantic.", *(f"model.{i}." for i in range(10, 23)))) for k in changed)


def test_phased_replay_trains_and_averages_the_first_head(tiny_pair, tmp_path):
    """With --replay (distillation off by default then), phase two's replayed detection batches train the detection
    head, and the saved EMA follows it: its detection head is not phase one's."""
    phase_one, options = {}, {}
    train(
        tiny_pair,
        tmp_path,
        schedule="phased",
        det_epochs=1,
        replay=1.0,
        callbacks={"on_model_save": keep_phase_one(phase_one), "on_train_end": lambda t: options.update(t.options)},
        **NORMAL,
        **SGD,
    )
    model = load_model(tmp_path / "train/weights/last.pt")[0]
    assert options["distill"] is False
    final, detect = model.half().state_dict(), f"model.{model.model[-1].i}."
    changed = [k for k in final if k.startswith(detect) and not torch.equal(final[k], phase_one[k])]
    assert changed


def test_patience_never_stops_phase_one(tiny_pair, tmp_path):
    """Early stopping counts from phase two on, so the second task always trains."""

    def never_improve(trainer):  # once a stopper has a best epoch, nothing beats it: it stops after `patience`
        if trainer.stopper.best_fitness:
            trainer.stopper.best_fitness = 1e9

    train(
        tiny_pair,
        tmp_path,
        schedule="phased",
        det_epochs=2,
        patience=1,
        callbacks={"on_train_epoch_end": never_improve},
        **{**NORMAL, "epochs": 5},
    )
    rows = rows_of(tmp_path / "train")
    assert len(rows) == 4  # phase one (2 epochs) ran in full; phase two stopped after 1 epoch without improvement
    assert not math.isnan(float(rows[2]["train/ce_loss"]))


@pytest.mark.parametrize("amp", ["fp32", False])
def test_amp_off_values_train_in_float32(amp, tiny_pair, tmp_path):
    seen = {}

    def record(module, inputs, output):
        seen["dtype"] = output.dtype

    def hook(trainer):
        seen["amp"] = trainer.amp
        trainer.model.model[0].register_forward_hook(record)

    train(tiny_pair, tmp_path, amp=amp, device="cpu", callbacks={"on_train_start": hook})
    assert seen == {"amp": False, "dtype": torch.float32}


def test_bf16_without_cuda_is_one_line(tiny_pair, tmp_path):
    from yoloseghw.utils.errors import UserInputError

    with pytest.raises(UserInputError, match="amp=bf16 needs a CUDA device"):
        train(tiny_pair, tmp_path, amp="bf16", device="cpu")
    assert not (tmp_path / "train").exists()


def test_semantic_class_weights_from_cls_pw(tiny_pair, tmp_path):
    weights = {}

    def grab(trainer):
        criterion = trainer.model.criterion
        weights.update(seg=criterion.seg.ce.weight, det=criterion.det.one2one.class_weights)

    train(tiny_pair, tmp_path, cls_pw=0.5, callbacks={"on_train_epoch_end": grab})
    assert weights["seg"] is not None and weights["seg"].shape == (len(SEG_NAMES),)
    assert weights["det"] is not None and weights["det"].numel() == len(DET_NAMES)


def test_resume_matches_an_uninterrupted_run(tiny_pair, tmp_path):
    """Interrupted after epoch 1 and resumed (with another batch size and workers, which Ultralytics allows): the
    same epochs, LR and EMA update count as a run that was never interrupted, and the task sampler goes on where it
    was, with the run's own mix: the same task at every step of the resumed epochs."""
    ends, tasks = {}, {"whole": [], "cut": []}

    def stop_after_first(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt

    def last_state(key):
        return lambda t: ends.__setitem__(key, (t.epoch, t.optimizer.param_groups[0]["lr"], t.ema.updates, t.args))

    common = {**NORMAL, **SGD, "ratio": "1:3"}
    whole = {"on_train_epoch_end": last_state("whole"), "on_train_batch_end": record_into(tasks["whole"])}
    train(tiny_pair, tmp_path, name="whole", callbacks=whole, **common)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_pair, tmp_path, name="cut", callbacks={"on_fit_epoch_end": stop_after_first}, **common)
    run = tmp_path / "cut"
    assert len(rows_of(run)) == 1 and read_checkpoint(run / "weights/last.pt")["scaler"] is not None
    resumed = YOLOSeg()
    resumed.add_callback("on_train_epoch_end", last_state("cut"))
    resumed.add_callback("on_train_batch_end", record_into(tasks["cut"]))
    resumed.train(resume=run, batch=TINY["batch"], workers=0)
    assert [int(r["epoch"]) for r in rows_of(run)] == [1, 2, 3]
    assert ends["cut"][:3] == ends["whole"][:3]
    assert tasks["cut"] == [(e, t) for e, t in tasks["whole"] if e >= 1]
    assert [t for _, t in tasks["cut"]].count(("seg",)) == 3 * [t for _, t in tasks["cut"]].count(("det",))
    assert not (tmp_path / "cut-2").exists() and read_checkpoint(run / "weights/last.pt")["optimizer"] is None


def steps_per_epoch(tasks: list[tuple[int, tuple[str, ...]]]) -> dict[int, dict[str, int]]:
    """{epoch: {task: steps}} from recorded (epoch, step tasks) pairs."""
    out: dict[int, dict[str, int]] = {}
    for epoch, step in tasks:
        out.setdefault(epoch, {"det": 0, "seg": 0})[step[0]] += 1
    return out


def test_gain_mix_draws_what_its_rule_gives_for_the_runs_own_validation_metrics(tiny_pair, tmp_path):
    """--ratio gain, end to end: each epoch draws the split of the shares that the rule replays from the metrics the
    run wrote to results.csv (here 8 steps an epoch, no warm-up)."""
    tasks = []
    train(tiny_pair, tmp_path, ratio="gain", batch=2, callbacks={"on_train_batch_end": record_into(tasks)}, **GAIN)
    rows = read_rows(tmp_path / "train" / "results.csv")
    metrics = [{task: row[key] for task, key in TASK_METRIC.items()} for row in rows]
    shares = gain_shares(metrics, 8, warmup=0)
    assert steps_per_epoch(tasks) == {e: split_steps(8, shares[e]) for e in range(3)}


def test_gain_mix_resumes_with_the_shares_of_the_uninterrupted_run(tiny_pair, tmp_path, monkeypatch):
    """Interrupted after epoch 1 and resumed: the shares are replayed from the finished epochs' metrics (fixed here,
    so that they move), and every resumed step draws what the uninterrupted run drew."""
    synthetic = [{"det": 0.001, "seg": 0.3}, {"det": 0.1, "seg": 0.31}]
    monkeypatch.setattr(DetSegTrainer, "_finished_metrics", lambda trainer: synthetic[: trainer.epoch])
    tasks = {"whole": [], "cut": []}

    def stop_after_first(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt

    options = {**GAIN, "ratio": "gain", "batch": 2}
    train(tiny_pair, tmp_path, name="whole", callbacks={"on_train_batch_end": record_into(tasks["whole"])}, **options)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_pair, tmp_path, name="cut", callbacks={"on_fit_epoch_end": stop_after_first}, **options)
    resumed = YOLOSeg()
    resumed.add_callback("on_train_batch_end", record_into(tasks["cut"]))
    resumed.train(resume=tmp_path / "cut", workers=0)
    assert tasks["cut"] == [(e, t) for e, t in tasks["whole"] if e >= 1]
    expected = split_steps(8, gain_shares(synthetic, 8, warmup=0)[2])
    assert steps_per_epoch(tasks["whole"])[2] == expected and expected["det"] > expected["seg"]


def test_resume_takes_the_options_ultralytics_allows(tiny_pair, tmp_path):
    """--batch and --workers given with --resume are used (Ultralytics' list of options a resume may change)."""

    def stop_after_first(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_pair, tmp_path, callbacks={"on_fit_epoch_end": stop_after_first}, **{**TINY, "epochs": 2})
    last = (tmp_path / "train" / "weights" / "last.pt").read_bytes()
    refused = run("train", "--resume", tmp_path / "train", "--epochs", "5", "lr0=0.5")  # options a resume cannot change
    assert_one_line_error(refused, "--resume keeps the run's own", "epochs", "lr0")
    assert (tmp_path / "train" / "weights" / "last.pt").read_bytes() == last
    seen = {}
    resumed = YOLOSeg()
    resumed.add_callback("on_train_start", lambda t: seen.update(batch=t.args.batch, steps=len(t.train_loader)))
    resumed.train(resume=tmp_path / "train", batch=2, workers=0)
    assert seen == {"batch": 2, "steps": 8}  # 4 det + 4 seg batches of 2


def test_export_after_train_writes_beside_best_and_leaves_model(tiny_pair, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m = train(tiny_pair, tmp_path / "runs")
    batchnorms = sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.model.modules())
    attributes = {k: getattr(m.model, k, None) for k in ("pt_path", "task")}
    path = m.export()
    assert path == tmp_path / "runs/train/weights/best.onnx" and path.is_file()
    assert not list(tmp_path.glob("*.onnx"))
    assert sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.model.modules()) == batchnorms  # not fused in place
    assert {k: getattr(m.model, k, None) for k in attributes} == attributes


def test_separable_seg_head_trains_exports_and_matches_pytorch(tiny_pair, tmp_path):
    """`--seg-head separable` builds that head; the checkpoint keeps it, and its ONNX export agrees with PyTorch."""
    from yoloseghw.nn.semantic_head import SeparableSemanticSegment

    det, seg = tiny_pair
    data = ["--det", det, "--seg", seg, "--epochs", "1", "--imgsz", "64", "--batch", "4", "--project", tmp_path]
    result = run("train", *data, "--seg-head", "separable", "workers=0", "plots=False")
    assert result.exit_code == 0, result.output
    best = tmp_path / "train" / "weights" / "best.pt"
    model, _ = load_model(best)
    assert type(model.semantic) is SeparableSemanticSegment and model.yaml["seg_head"] == "separable"
    result = run("export", "--weights", best, "--verify", seg.parent / "images" / "val")
    assert result.exit_code == 0, result.output
    identical = re.search(r"([\d.]+)% of mask pixels identical", result.output)
    assert identical and float(identical[1]) >= 99.9, result.output
    assert YOLOSeg(best).info()["semantic head"] == YOLOSeg(best.with_suffix(".onnx")).info()["semantic head"]
    assert YOLOSeg(best).info()["semantic head"] == "separable"


def test_finetune_keeps_the_checkpoints_own_modules(trained, tiny_pair, tmp_path):
    """A checkpoint whose modules differ from its yaml (as a pruned one does) is fine-tuned as it is."""
    from ultralytics.nn.modules import Conv

    from yoloseghw.engine.checkpoint import write_checkpoint

    model, ckpt = load_model(trained)
    head = model.semantic
    c = head.classifier[0].conv.in_channels
    head.classifier = torch.nn.Sequential(Conv(c, c // 2, 3), torch.nn.Conv2d(c // 2, head.nc, 1))
    write_checkpoint(tmp_path / "slim.pt", {**ckpt, "model": model.half(), "train_args": {"imgsz": 96}})
    options = {k: v for k, v in TINY.items() if k != "imgsz"}  # no imgsz: the checkpoint's own, as in Ultralytics
    YOLOSeg(tmp_path / "slim.pt").train(det=tiny_pair[0], seg=tiny_pair[1], project=tmp_path, **options)
    tuned, tuned_ckpt = load_model(tmp_path / "train/weights/best.pt")
    assert tuned.semantic.classifier[0].conv.out_channels == c // 2
    assert tuned_ckpt["train_args"]["imgsz"] == 96


def test_weights_transfer_maps_classes_by_name(tiny_pair, tmp_path):
    """--weights uses Ultralytics' BaseModel.load: with other class counts, class rows follow their names."""
    from ultralytics.nn.tasks import DetectionModel

    source = DetectionModel("yolo26n.yaml", nc=2, verbose=False)
    source.names = {0: "person", 1: "car"}  # the demo's detection classes are car, person, sign
    torch.save({"model": source.half()}, tmp_path / "det.pt")
    seen = {}
    m = YOLOSeg("yolo26n")
    m.add_callback("on_pretrain_routine_end", lambda t: seen.update(model=copy.deepcopy(t.model).float()))
    m.train(det=tiny_pair[0], seg=tiny_pair[1], weights=tmp_path / "det.pt", project=tmp_path, **TINY)
    target, src = seen["model"].model[-1].one2one_cv3[0][-1], source.float().model[-1].one2one_cv3[0][-1]
    torch.testing.assert_close(target.weight[0], src.weight[1])  # car
    torch.testing.assert_close(target.weight[1], src.weight[0])  # person
    torch.testing.assert_close(seen["model"].model[0].conv.weight, source.model[0].conv.weight)


def test_nan_loss_is_recovered_as_ultralytics_does(tiny_pair, tmp_path):
    """A NaN loss is no bad input: Ultralytics reloads last.pt and redoes the epoch."""
    state = {"poisoned": False}

    def poison(trainer):
        if trainer.epoch == 1 and not state["poisoned"]:
            state["poisoned"] = True
            with torch.no_grad():
                trainer.model.model[0].conv.weight.fill_(float("nan"))

    train(tiny_pair, tmp_path, callbacks={"on_train_batch_start": poison}, **{**NORMAL, "epochs": 3})
    rows = rows_of(tmp_path / "train")
    assert state["poisoned"] and [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert torch.isfinite(load_model(tmp_path / "train/weights/best.pt")[0].model[0].conv.weight).all()


def test_training_is_offline(tiny_pair, tmp_path, monkeypatch):
    """Nothing reaches for the network during a training run (weights, fonts, datasets)."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    train(tiny_pair, tmp_path, model="yolov8n", plots=True)
    assert (tmp_path / "train/weights/best.pt").is_file() and (tmp_path / "train/results.png").is_file()


@pytest.mark.parametrize(("family", "backbone", "neck"), [("yolo26n", 11, 23), ("yolov8n", 10, 22)])
def test_freeze_by_name(family, backbone, neck):
    """--freeze backbone / neck: the yaml's backbone layers, or every layer before Detect."""
    from yoloseghw.nn.tasks import load_model_cfg
    from yoloseghw.utils.options import freeze_layers

    cfg = load_model_cfg(family)
    assert (freeze_layers("backbone", cfg), freeze_layers("neck", cfg), freeze_layers("7", cfg)) == (backbone, neck, 7)
