"""Forgetting: distillation (LwF), per-group learning rates, single-task fine-tuning and its report."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.utils.torch_utils import unwrap_model

from tests.helpers import assert_one_line_error, run
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
    pass changes no BatchNorm statistics, neither its own nor the student's; the student's idle head runs on images
    not labelled for it without moving its statistics either (the batch moves only what a plain step moves)."""
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
    own_forward.forward_heads(batch["img"], (task,))  # what a plain step does to the statistics
    teacher_buffers = buffers(teacher)
    student.loss_terms = {DISTILL_LOSS: Distillation(lambda: teacher, temperature=2.0, weight=1.0)}
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


@pytest.mark.parametrize("task", ["det", "seg"])
def test_a_student_equal_to_its_teacher_has_a_zero_term_and_a_zero_gradient(task):
    """Equal outputs (the student run as the teacher runs, BatchNorm on its running statistics): a zero term and a
    zero gradient for every parameter."""
    student = tiny_model()
    teacher = frozen_copy(student)
    term = Distillation(lambda: teacher, temperature=2.0, weight=1.0)
    batch = batches()[task]
    (_, raw), logits = student.eval().forward_heads(batch["img"], ("det", "seg"))
    value = term(student, (raw, logits), batch)
    value.backward()
    assert float(value) == pytest.approx(0.0, abs=1e-5)
    grads = [p.grad.abs().max() for p in student.parameters() if p.grad is not None]
    assert grads and float(max(grads)) < 1e-5


def test_where_the_teacher_sees_nothing_no_score_is_pushed_below_the_teachers():
    """The score term's gradient is sigmoid(student) - sigmoid(teacher): a score below the teacher's is only pulled
    up, one above it down to it; nothing is taught 'less than the teacher believes'."""
    from yoloseghw.continual.distill import score_kl

    torch.manual_seed(0)
    teacher = torch.full((2, 3, 50), -9.0)  # the teacher sees nothing: every score near 0
    student = (teacher + torch.randn(2, 3, 50) * 2).requires_grad_()
    score_kl(student, teacher).sum().backward()
    below = student.detach() < teacher
    assert below.any() and (~below).any()
    assert (student.grad[below] <= 0).all()  # descent raises them toward the teacher
    assert (student.grad[~below] >= 0).all()  # and lowers the others toward it, no further
    assert float(score_kl(teacher.clone(), teacher).abs().max()) < 1e-6


def test_box_term_uses_the_anchors_the_teacher_singles_out():
    """ERD's statistic: anchors whose top teacher score is above mean + 2 std of the image's; always at least one."""
    from yoloseghw.continual.distill import selected_anchors

    scores = torch.full((2, 1, 100), -6.0)
    scores[0, 0, [3, 40]] = 4.0  # two confident anchors on image 0, none on image 1
    mask = selected_anchors(scores)
    assert mask[0].nonzero().flatten().tolist() == [3, 40] and mask[1].sum() >= 1


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
        ewc=1e6,  # tiny moves of a tiny model: a strength that shows them at results.csv's 5 decimals
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
    """benchmarks/forgetting.py's summary: end-of-run metrics, retention against the peak (phased: within phase one),
    the second task against the stock semantic model of the same budget (the users' case: half of it), and the
    distillation's anchors per image, from the runs' reports."""
    from yoloseghw.continual.forgetting import forgetting_report
    from yoloseghw.experiments.forgetting import SINGLE, SINGLE_HALF, markdown_table, plot_curves, summary_rows

    columns = {"epoch": [1, 2, 3, 4], "metrics/mAP50-95(B)": [0.1, 0.2, 0.05, 0.04], "metrics/mIoU": [0, 0, 0.3, 0.4]}
    report = forgetting_report(columns, "phased", 2, ("det", "seg"))
    curves = {"det": columns["metrics/mAP50-95(B)"], "seg": columns["metrics/mIoU"]}
    second_half = {"epoch": [1, 2], **{k: v[2:] for k, v in columns.items() if k != "epoch"}}
    start = {"metrics/mAP50-95(B)": 0.08, "metrics/mIoU": 0.0}
    users = forgetting_report(second_half, "single", None, ("det", "seg"), start=start)
    results = {
        "strategies": {
            "naive": {"report": report, "curves": curves, "train_s": 60, "distill_anchors": []},
            "users-bn-distill": {"report": users, "curves": curves, "train_s": 20, "distill_anchors": [0, 4.0, 6.0]},
        },
        SINGLE: {"final": 0.5, "peak": 0.5, "curves": {"seg": [0.2, 0.3, 0.4, 0.5]}, "train_s": 30},
        SINGLE_HALF: {"final": 0.2, "peak": 0.2, "curves": {"seg": [0.1, 0.2]}, "train_s": 15},
    }
    naive, users_row = summary_rows(results)
    assert naive["det_peak"] == 0.2 and naive["det_peak_epoch"] == 2 and naive["det_retention"] == pytest.approx(0.2)
    assert naive["mIoU"] == 0.4 and naive["seg_vs_single"] == pytest.approx(0.8)
    assert users_row["det_retention"] == pytest.approx(0.5) and users_row["seg_vs_single"] == pytest.approx(2.0)
    assert users_row["distill_anchors"] == pytest.approx(5.0)
    table = markdown_table(results)
    assert "| naive | 0.0400 | 0.4000 | 0.2000 (2) | 20.0% | 80.0% | 60 | - |" in table
    assert "| users-bn-distill | 0.0400 | 0.4000 | 0.0800 (0) | 50.0% | 200.0% | 20 | 5.0 |" in table
    plot_curves(results, tmp_path / "forgetting.png")
    assert (tmp_path / "forgetting.png").stat().st_size > 0


def stock_detector(path, names) -> None:
    """A stock Ultralytics detection checkpoint built from yaml (what `yolo train` saves: the model, its names)."""
    from ultralytics.nn.tasks import DetectionModel

    from yoloseghw.engine.checkpoint import write_checkpoint

    torch.manual_seed(0)
    model = DetectionModel("yolo26n.yaml", nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    write_checkpoint(path, {"model": model.half(), "ema": None, "train_args": {"imgsz": 64}, "epoch": -1})


def test_a_stock_detector_learns_segmentation_and_reports_what_detection_kept(tiny_pair, tmp_path):
    """`train --weights det.pt --seg masks.yaml --val-det boxes.yaml`: no pair.yaml, no box training data used;
    every detector tensor is transferred, the semantic head is new, only segmentation trains (`single`), the
    backbone stays frozen and the shared BatchNorm statistics fixed, and the report measures detection against the
    detector's own start."""
    from ultralytics.nn.tasks import DetectionModel

    from yoloseghw.data.demo import DET_NAMES

    det_pt = tmp_path / "det.pt"
    stock_detector(det_pt, DET_NAMES)
    result = run(
        "train", "--weights", det_pt, "--seg", tiny_pair[1], "--val-det", tiny_pair[0], "--epochs", "2",
        "--imgsz", "64", "--batch", "4", "--workers", "0", "--project", tmp_path, "plots=False", "nbs=4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "single: layers 0-10 frozen" in result.output
    run_dir = tmp_path / "train"
    report = json.loads((run_dir / "forgetting.json").read_text())
    assert report["schedule"] == "single" and report["order"] == ["det", "seg"]
    start = json.loads((run_dir / "start_metrics.json").read_text())
    assert report["tasks"]["det"]["peak"] == pytest.approx(start["metrics/mAP50-95(B)"])
    rows = rows_of(run_dir)
    assert all(math.isnan(float(r["train/box_loss"])) for r in rows)  # detection never trained
    stock = read_stock(det_pt)
    final = load_model(run_dir / "weights/last.pt")[0].half().state_dict()
    norms = [k for k in stock if "running_" in k]  # BatchNorm statistics of the whole detector: fixed
    assert norms and all(torch.equal(final[k], stock[k]) for k in norms)
    backbone = [k for k in stock if int(k.split(".")[1]) <= 10 and "num_batches" not in k]  # yolo26n: 11 layers
    assert backbone and all(torch.equal(final[k], stock[k]) for k in backbone)
    assert not all(torch.equal(final[k], stock[k]) for k in stock if k.startswith("model.16."))  # the neck trains
    assert isinstance(torch.load(det_pt, weights_only=False)["model"], DetectionModel)


def test_freeze_0_trains_every_layer_in_single(tiny_pair, tmp_path):
    from yoloseghw.data.demo import DET_NAMES

    det_pt = tmp_path / "det.pt"
    stock_detector(det_pt, DET_NAMES)
    result = run(
        "train", "--weights", det_pt, "--seg", tiny_pair[1], "--val-det", tiny_pair[0], "--epochs", "1",
        "--imgsz", "64", "--batch", "4", "--workers", "0", "--project", tmp_path, "--freeze", "0", "plots=False",
        "nbs=4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "single: no layer frozen" in result.output
    final = load_model(tmp_path / "train/weights/last.pt")[0].half().state_dict()
    stock = read_stock(det_pt)
    assert not all(torch.equal(final[k], stock[k]) for k in stock if k.startswith("model.0."))


def read_stock(path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["model"].half().state_dict()


def test_the_other_tasks_val_set_is_required_and_checked(tiny_pair, tmp_path):
    from yoloseghw.data.demo import DET_NAMES

    det_pt = tmp_path / "det.pt"
    stock_detector(det_pt, DET_NAMES)
    base = ["train", "--weights", det_pt, "--seg", tiny_pair[1], "--project", tmp_path]
    assert_one_line_error(run(*base), "--val-det")
    stock_detector(det_pt, ["a", "b", "c"])
    assert_one_line_error(run(*base, "--val-det", tiny_pair[0]), "--val-det", "the detector has a, b, c")
    assert not any(tmp_path.glob("train*"))


def test_recalibration_re_estimates_only_the_shared_statistics():
    """--bn-recalibrate: the shared layers' BatchNorm statistics are estimated afresh on both sets' batches (their
    cumulative mean); no weight and no head statistic moves, and the model keeps its train/eval mode."""
    from yoloseghw.continual.phases import recalibrate

    model = tiny_model().eval()
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    before = buffers(model)
    loaders = {task: [batches()[task]] * 2 for task in ("det", "seg")}
    recalibrate(model, loaders, lambda b: b, n=2)
    after = buffers(model)
    shared = model.shared_prefixes()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert moved and all(k.startswith(shared) for k in moved)
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith(("semantic.", f"model.{len(shared)}.")))
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items() if k in weights)
    assert not model.training and all(
        m.momentum == 0.03 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )
