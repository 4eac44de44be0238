"""Task plans and the multi-task loader."""

import math

import pytest

from yoloseghw.data.gain_mix import GAIN_FLOOR, gain_per_step, gain_shares
from yoloseghw.data.multitask import MultiTaskLoader, TaskPlan, merge_joint, split_steps
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.options import check_options


def test_auto_ratio_draws_each_set_once_interleaved():
    batches = {"det": 63, "seg": 23}
    steps = TaskPlan("alternate", ratio="auto").steps(0, 10, batches)
    assert len(steps) == 86 and steps.count(("det",)) == 63 and steps.count(("seg",)) == 23
    seg_at = [i for i, s in enumerate(steps) if s == ("seg",)]
    assert max(b - a for a, b in zip(seg_at, seg_at[1:])) <= 4  # spread out, not bunched at one end


@pytest.mark.parametrize(
    ("mix", "det_steps"),
    [
        ("auto", 63),  # each dataset's share of the batches: each set drawn once
        ("1:1", 43),
        ("2:1", 57),
        ("temp:0.5", 54),  # 63**0.5 / (63**0.5 + 23**0.5) of 86 = 53.6
        ("temp:0", 43),  # uniform, as 1:1
        ("temp:1", 63),  # proportional, as auto
    ],
)
def test_each_mix_draws_its_promised_shares_in_an_epoch_of_the_promised_length(mix, det_steps):
    """One knob is the epoch's length (det + seg batches, what the two single-task models draw), the other the mix;
    the steps of each task are counted over an epoch, and spread out, not bunched at one end."""
    batches = {"det": 63, "seg": 23}
    steps = TaskPlan("alternate", ratio=mix).steps(0, 10, batches)
    assert len(steps) == 86 and steps.count(("det",)) == det_steps and steps.count(("seg",)) == 86 - det_steps
    for task in ("det", "seg"):
        at = [i for i, s in enumerate(steps) if s == (task,)]
        gap = 86 / len(at)
        assert max(b - a for a, b in zip(at, at[1:])) <= gap + 2, (task, at)


def test_gain_mix_draws_one_to_one_in_the_warm_up_then_shares_by_each_tasks_gain_per_step():
    """--ratio gain: the warm-up epochs draw 1:1; after them each task's share is its relative validation gain per
    step (averaged over the last two epochs) over both tasks', kept between 1:3 and 3:1; no gain keeps the shares."""
    metrics = [{"det": 0.01, "seg": 0.1}, {"det": 0.02, "seg": 0.11}, {"det": 0.04, "seg": 0.111}]
    shares = gain_shares(metrics, 86, warmup=1)
    assert len(shares) == 4 and all(math.isclose(s["det"] + s["seg"], 1) for s in shares)
    assert shares[0] == shares[1] == {"det": 0.5, "seg": 0.5}  # warm-up, then equal gains from 0 to epoch 0's metric
    det = (1 / 43 + 0.5 / 43) / 2  # epochs 0 and 1: from nothing to 0.01 (all of it), then 0.01 -> 0.02 (half of it)
    seg = (1 / 43 + (0.01 / 0.11) / 43) / 2
    assert math.isclose(shares[2]["det"], det / (det + seg))  # 0.58: detection gained more of its metric per step
    assert split_steps(86, shares[2]) == {"det": 50, "seg": 36}
    assert shares[3]["det"] == 1 - GAIN_FLOOR  # segmentation stopped rising: detection takes the most it may
    assert gain_shares(metrics, 86, warmup=3)[:3] == [{"det": 0.5, "seg": 0.5}] * 3
    falling = [*metrics, {"det": 0.03, "seg": 0.1}, {"det": 0.02, "seg": 0.09}]
    assert gain_shares(falling, 86, warmup=1)[-1] == gain_shares(falling, 86, warmup=1)[-2]  # no gain: as it was
    unvalidated = [{"det": math.nan, "seg": math.nan}] * 3  # val=False: no metrics, 1:1 throughout
    assert gain_shares(unvalidated, 86, warmup=1) == [{"det": 0.5, "seg": 0.5}] * 4


def test_gain_mix_replays_the_same_shares_from_any_prefix_of_its_history():
    """A resumed run recomputes its shares from results.csv: every prefix of the history gives the shares the whole
    run drew, so nothing else needs saving."""
    metrics = [{"det": 0.001 * (e + 1) ** 2, "seg": 0.3 - 0.2 / (e + 1)} for e in range(8)]
    whole = gain_shares(metrics, 86, warmup=2)
    assert len({round(s["det"], 6) for s in whole}) > 2  # the shares move
    for k in range(len(metrics) + 1):
        assert gain_shares(metrics[:k], 86, warmup=2) == whole[: k + 1]


def test_gain_per_step_is_the_share_of_the_metric_an_epoch_added_per_step():
    assert math.isclose(gain_per_step(0.2, 0.4, 10), 0.05)
    assert gain_per_step(0.4, 0.2, 10) < 0
    assert gain_per_step(0.0, 0.3, 0) == 0 and gain_per_step(0.1, 0.0, 5) == 0 and gain_per_step(0.1, math.nan, 5) == 0


def test_a_gain_plan_draws_the_shares_the_trainer_sets():
    batches = {"det": 63, "seg": 23}
    plan = TaskPlan("alternate", ratio="gain")
    assert str(plan.ratio) == "gain"
    assert plan.steps(0, 10, batches).count(("det",)) == 43  # warm-up: 1:1
    plan.gain_shares = {"det": 0.75, "seg": 0.25}
    steps = plan.steps(3, 10, batches)
    assert len(steps) == 86 and steps.count(("det",)) == 64 and steps.count(("seg",)) == 22
    assert "mix gain" in plan.describe(batches)


@pytest.mark.parametrize(
    ("plan", "length"),
    [
        (TaskPlan("alternate", ratio="1:1", epoch_steps=40), 40),
        (TaskPlan("joint"), 43),  # 86 batches, two a step
        (TaskPlan("phased", det_epochs=5), 86),
        (TaskPlan("single", order=("det", "seg")), 23),  # one pass over the new task's set
        (TaskPlan("single", order=("det", "seg"), replay=0.25), 23),
    ],
)
def test_every_schedule_has_its_promised_epoch_length(plan, length):
    batches = {"det": 63, "seg": 23}
    assert plan.steps_per_epoch(batches) == length
    assert all(len(plan.steps(e, 10, batches)) == length for e in range(10))


def test_replay_draws_the_first_task_as_asked():
    """--replay F: F first-task batches per second-task batch in phase two (and in single), none in phase one."""
    batches = {"det": 63, "seg": 23}
    plan = TaskPlan("phased", det_epochs=5, replay=0.25)
    one, two = plan.steps(0, 10, batches), plan.steps(5, 10, batches)
    assert one == [("det",)] * 86
    assert two.count(("det",)) == round(86 * 0.25 / 1.25) and two.count(("seg",)) == 86 - round(86 * 0.25 / 1.25)
    single = TaskPlan("single", order=("det", "seg"), replay=1.0).steps(0, 1, batches)
    assert len(single) == 23 and abs(single.count(("det",)) - single.count(("seg",))) <= 1
    assert TaskPlan("single", order=("det", "seg"), replay=0.25).train_tasks() == ("det", "seg")
    assert TaskPlan("single", order=("det", "seg")).train_tasks() == ("seg",)


def test_joint_draws_both_each_step():
    assert TaskPlan("joint").steps(0, 5, {"det": 3, "seg": 7}) == [("det", "seg")] * 5


@pytest.mark.parametrize(
    ("options", "distill"),
    [
        ({}, False),
        ({"schedule": "joint"}, False),
        ({"schedule": "phased"}, True),
        ({"schedule": "single"}, True),
        ({"schedule": "phased", "distill": False}, False),
        ({"schedule": "phased", "replay": 0.25}, False),
        ({"schedule": "single", "replay": 0.25}, False),
        ({"schedule": "phased", "replay": 0.25, "distill": True}, True),
        ({"distill": True}, True),
    ],
)
def test_distillation_is_on_where_one_task_follows_another(options, distill):
    """The measured defaults: --distill on in phased and single unless --no-distill or --replay (replayed labels
    keep the first task better than a teacher); the mix 1:1; nothing frozen."""
    opts = check_options(options, epochs=4)
    assert opts["distill"] is distill
    assert str(opts["ratio"]) == "1:1" and opts["lr_scale"] == 1.0 and opts["freeze_bn"] is True


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schedule": "sometimes"}, "unknown schedule"),
        ({"ratio": "2-1"}, "--ratio"),
        ({"ratio": "0:1"}, "--ratio"),
        ({"ratio": "temp:-1"}, "--ratio temp:A"),
        ({"ratio": "temp:x"}, "--ratio"),
        ({"ratio": 121}, "quoted in a yaml file"),
        ({"replay": 0.5}, "--replay"),
        ({"schedule": "phased", "replay": -1}, "--replay"),
        ({"epoch_steps": 0}, "--epoch-steps"),
        ({"freeze_bn": "yes"}, "--freeze-bn"),
        ({"order": "det,det"}, "--order"),
        ({"schedule": "phased", "det_epochs": 5}, "--det-epochs"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(UserInputError, match=message):
        check_options(options, epochs=5)


class _Loader(list):
    """A stand-in for one task's loader: a list of batches."""

    def __init__(self, task, n):
        super().__init__({"img": [f"{task}{i}"], "id": f"{task}{i}"} for i in range(n))
        self.dataset, self.sampler, self.batch_size, self.num_workers = [0] * n, [], 1, 0


def test_loader_repeats_the_smaller_set_only_where_planned():
    plan = TaskPlan("alternate", (1, 2), epoch_steps=6)
    loader = MultiTaskLoader({"det": _Loader("det", 3), "seg": _Loader("seg", 2)}, plan, 2)
    ids = [(b["task"], b["id"]) for b in loader]
    assert len(loader) == len(ids) == 6
    assert ids == [("seg", "seg0"), ("det", "det0"), ("seg", "seg1"), ("seg", "seg0"), ("det", "det1"), ("seg", "seg1")]


def test_merge_joint_puts_det_images_first():
    import torch

    # per-image lists come out of Ultralytics' collate_fn as tuples
    det = {"img": torch.zeros(2, 3, 8, 8), "cls": torch.zeros(3, 1), "im_file": ("a", "b")}
    seg = {"img": torch.ones(1, 3, 8, 8), "semantic_mask": torch.zeros(1, 8, 8), "im_file": ("c",)}
    batch = merge_joint(det, seg)
    assert batch["n_det"] == 2 and batch["img"].shape[0] == 3 and batch["img"][2].min() == 1
    assert batch["im_file"] == ["a", "b", "c"] and batch["cls"].shape == (3, 1) and "semantic_mask" in batch


def test_task_mix_benchmark_names_its_runs_by_mix_and_seed():
    """benchmarks/task_mix.py: seed-0 runs keep their plain names (so earlier runs are reused), others carry the
    seed; the report file names both seeds."""
    from yoloseghw.experiments.task_mix import run_name, seeded

    assert [run_name("1:1", 0), run_name("temp:0.5", 1), run_name("auto", 2)] == [
        "mix-1to1",
        "mix-temp0.5-seed1",
        "mix-auto-seed2",
    ]
    assert seeded("", 1) + seeded("", 3, "stock") == "-seed1-stock3" and seeded("stock-det", 0) == "stock-det"


def test_the_optimizer_cadence_counts_the_two_batches_of_a_joint_step():
    assert TaskPlan("alternate").optimizer_cadence(4) == "an optimizer step every 4 batches"
    assert TaskPlan("joint").optimizer_cadence(4) == "an optimizer step every 4 joint steps (8 batches)"
