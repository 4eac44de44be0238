"""Forgetting: distillation (LwF), per-group learning rates, single-task fine-tuning and its report."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.utils.torch_utils import unwrap_model

from tests.helpers import run
from yoloseghw.continual.distill import DISTILL_LOSS, Distillation, frozen_copy
from yoloseghw.continual.ewc import ElasticWeights, diagonal_fisher
from yoloseghw.engine.checkpoint import load_model
from yoloseghw.nn.tasks import DetSegModel

from .test_train import NORMAL, SGD, keep_phase_one, rows_of, train


def tiny_model() -> DetSegModel:
    torch.manual_seed(0)
    model = DetSegModel("yolo26n.yaml", nc=3, seg_nc=5, verbose=False)
    model.args = get_cfg()
    return model.train()


def batches() -> dict[str, dict]:
    """A detection batch (boxes only) and a segmentation batch (masks only) of two 64 x 64 images."""
    g = torch.Generator().manual_seed(0)
    det = {
        "task": "det",
        "img": torch.rand(2, 3, 64, 64, generator=g),
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.4, 0.4, 0.2, 0.2]]),
    }
    seg = {
        "task": "seg",
        "img": torch.rand(2, 3, 64, 64, generator=g),
        "semantic_mask": torch.randint(0, 5, (2, 64, 64)),
    }
    return {"det": det, "seg": seg}


def buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


@pytest.mark.parametrize("task", ["det", "seg"])
def test_distill_adds_a_term_and_gradients_reach_only_the_student(task):
    """On a det batch the term trains the semantic head, on a seg batch Detect; the teacher gets no gradient and its
    pass changes no BatchNorm statistics, neither its own nor the student's."""
    student = tiny_model()
    student.loss_term_names = (DISTILL_LOSS,)  # the loss items carry distill_loss
    teacher = frozen_copy(student)
    with torch.no_grad():  # a teacher that disagrees with the student
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = batches()[task]
    plain = copy.deepcopy(student)
    plain_loss, _ = plain.loss(batch)
    plain_loss.backward()

    own_forward = copy.deepcopy(student)
    own_forward.forward_heads(batch["img"], ("det", "seg"))  # what the student's own pass does to its statistics
    teacher_buffers = buffers(teacher)
    student.loss_terms = {DISTILL_LOSS: Distillation(lambda: teacher, temperature=2.0, weight=1.0, pseudo_conf=0.01)}
    loss, items = student.loss(batch)
    loss.backward()

    assert items[DISTILL_LOSS] > 0
    term = float(items[DISTILL_LOSS]) * len(batch["img"])  # logged per image; Ultralytics' losses are x batch size
    assert float(loss.detach()) == pytest.approx(float(plain_loss.detach()) + term, rel=1e-4)
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(v, teacher_buffers[k]) for k, v in teacher.named_buffers())
    assert all(torch.equal(v, b) for (_, v), (_, b) in zip(student.named_buffers(), own_forward.named_buffers()))
    idle = student.semantic if task == "det" else student.model[-1]
    plain_idle = plain.semantic if task == "det" else plain.model[-1]
    assert all(p.grad is None or not p.grad.any() for p in plain_idle.parameters())  # no labels: no gradient
    assert any(p.grad is not None and p.grad.any() for p in idle.parameters())  # the teacher's targets: a gradient


def test_ewc_penalty_and_fisher():
    """The penalty is zero at the anchor and pulls back towards it; the Fisher information of the detection loss
    covers the shared layers and Detect but not the semantic head, and computing it changes no BN statistic."""
    model = tiny_model()
    before = buffers(model)
    fisher = diagonal_fisher(model, [batches()["det"]], preprocess=lambda b: b)
    assert all(torch.equal(v, before[k]) for k, v in model.named_buffers())
    assert all(p.grad is None for p in model.parameters())
    assert not any(k.startswith("semantic.") for k in fisher) and any(v.any() for v in fisher.values())
    ewc = ElasticWeights(model, fisher, strength=10.0)
    assert float(ewc.penalty(model, 2).detach()) == 0
    name = max(fisher, key=lambda k: float(fisher[k].max()))
    param = dict(model.named_parameters())[name]
    with torch.no_grad():
        param.add_(0.1)
    penalty = ewc.penalty(model, 2)
    penalty.backward()
    assert float(penalty.detach()) > 0 and (param.grad[fisher[name] > 0] > 0).all()  # a step against the gradient: back


def test_phased_distill_and_ewc_train_the_first_head_from_the_phase_one_model(tiny_pair, tmp_path):
    """Combined flags: distill_loss and ewc_loss are zero in phase one (no teacher, no anchor yet) and positive in
    phase two (epochs 2-3), where the idle detection head, which plain phase two keeps bit for bit, now learns from
    the phase-one model (and is averaged into the EMA)."""
    phase_one = {}
    train(
        tiny_pair,
        tmp_path,
        schedule="phased",
        det_epochs=1,
        distill=True,
        ewc=1000.0,
        pseudo_conf=0.01,
        callbacks={"on_model_save": keep_phase_one(phase_one)},
        **NORMAL,
    )
    rows = rows_of(tmp_path / "train")
    for key in ("train/distill_loss", "train/ewc_loss"):  # EWC: zero until an optimizer step moved the weights
        assert float(rows[0][key]) == 0 and float(rows[-1][key]) > 0, key
    model = load_model(tmp_path / "train/weights/last.pt")[0]
    detect = f"model.{model.model[-1].i}."
    final = model.half().state_dict()
    assert any(not torch.equal(v, phase_one[k]) for k, v in final.items() if k.startswith(detect))


def test_lr_shared_and_lr_head_scale_their_parameter_groups(tiny_pair, tmp_path):
    """Each of Ultralytics' groups is split in two: shared layers at LR x lr_shared, the two heads at x lr_head."""
    m = train(tiny_pair, tmp_path, lr_shared=0.1, lr_head=2.0, **NORMAL, **SGD)
    model = unwrap_model(m.trainer.model)
    heads = {id(p) for module in (model.model[-1], model.semantic) for p in module.parameters()}
    groups = m.trainer.optimizer.param_groups
    assert len(groups) == 6 and sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    for group, in_head, scale in zip(groups, [False, True] * 3, [0.1, 2.0] * 3):
        assert all((id(p) in heads) == in_head for p in group["params"])
        assert group["initial_lr"] == pytest.approx(0.01 * scale)
    assert [g["param_group"] for g in groups] == ["weight", "weight", "bn", "bn", "bias", "bias"]


def test_finetuning_one_task_reports_what_the_other_kept(trained, tiny_pair, tmp_path):
    """`train --weights joint.pt --det D`: detection only; the checkpoint's own mask val set is validated before
    training and after every epoch, and the report measures the mask task against that start."""
    result = run(
        "train", "--weights", trained, "--det", tiny_pair[0], "--epochs", "2", "--imgsz", "64", "--batch", "4",
        "--workers", "0", "--project", tmp_path, "plots=False",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "train"
    rows = rows_of(run_dir)
    report = json.loads((run_dir / "forgetting.json").read_text())
    start = json.loads((run_dir / "start_metrics.json").read_text())
    assert report["schedule"] == "single" and report["order"] == ["seg", "det"]
    seg, end = report["tasks"]["seg"], float(rows[-1]["metrics/mIoU"])
    assert seg["peak"] == seg["end_of_phase"] == pytest.approx(start["metrics/mIoU"]) and seg["peak_epoch"] == 0
    assert seg["end_of_run"] == pytest.approx(end)
    assert seg["retention"] == (pytest.approx(end / seg["peak"]) if seg["peak"] > 0 else None)
    assert all(math.isnan(float(r["train/ce_loss"])) for r in rows)  # the semantic head never trained
    assert "Forgetting (single)" in result.output
    before = load_model(trained)[0].half().state_dict()
    after = load_model(run_dir / "weights/last.pt")[0].half().state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("semantic."))


def test_forgetting_benchmark_tables_and_plot(tmp_path):
    """benchmarks/forgetting.py's summary: end-of-run metrics, retention against the peak (phased: within phase one)
    and the second task against the single-task reference, from the runs' reports."""
    from yoloseghw.continual.forgetting import forgetting_report
    from yoloseghw.experiments.forgetting import SINGLE, markdown_table, plot_curves, summary_rows

    columns = {"epoch": [1, 2, 3, 4], "metrics/mAP50-95(B)": [0.1, 0.2, 0.05, 0.04], "metrics/mIoU": [0, 0, 0.3, 0.4]}
    report = forgetting_report(columns, "phased", 2, ("det", "seg"))
    curves = {"det": columns["metrics/mAP50-95(B)"], "seg": columns["metrics/mIoU"]}
    results = {
        "strategies": {"naive": {"report": report, "curves": curves, "train_s": 60}},
        SINGLE: {"final": 0.5, "peak": 0.5, "curves": {"seg": [0.2, 0.3, 0.4, 0.5]}, "train_s": 30},
    }
    (row,) = summary_rows(results)
    assert row["det_peak"] == 0.2 and row["det_peak_epoch"] == 2 and row["det_retention"] == pytest.approx(0.2)
    assert row["mIoU"] == 0.4 and row["seg_vs_single"] == pytest.approx(0.8)
    assert "| naive | 0.0400 | 0.4000 | 0.2000 (2) | 20.0% | 100.0% | 80.0% | 60 |" in markdown_table(results)
    plot_curves(results, tmp_path / "forgetting.png")
    assert (tmp_path / "forgetting.png").stat().st_size > 0
