"""Task plans and the multi-task loader."""

import pytest

from yoloseghw.data.multitask import MultiTaskLoader, TaskPlan, merge_joint
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.options import check_options


def test_auto_ratio_draws_each_set_once_interleaved():
    batches = {"det": 63, "seg": 23}
    steps = TaskPlan("alternate", ratio="auto").steps(0, 10, batches)
    assert len(steps) == 86 and steps.count(("det",)) == 63 and steps.count(("seg",)) == 23
    seg_at = [i for i, s in enumerate(steps) if s == ("seg",)]
    assert max(b - a for a, b in zip(seg_at, seg_at[1:])) <= 4  # spread out, not bunched at one end


def test_fixed_ratio_covers_both_sets():
    steps = TaskPlan("alternate", ratio=(2, 1)).steps(0, 10, {"det": 6, "seg": 5})
    assert steps[:3] == [("det",), ("det",), ("seg",)]
    assert steps.count(("det",)) >= 6 and steps.count(("seg",)) >= 5


def test_phased_epochs_have_equal_length():
    """Ultralytics counts an epoch's steps once, so both phases have the same number of steps."""
    plan = TaskPlan("phased", det_epochs=3, order=("seg", "det"))
    assert plan.phase(0, 10) == ("seg",) and plan.phase(6, 10) == ("seg",) and plan.phase(7, 10) == ("det",)
    assert plan.boundary(10) == 7
    batches = {"det": 4, "seg": 2}
    assert plan.steps(0, 10, batches) == [("seg",)] * 4 and plan.steps(9, 10, batches) == [("det",)] * 4


def test_joint_draws_both_each_step():
    assert TaskPlan("joint").steps(0, 5, {"det": 3, "seg": 7}) == [("det", "seg")] * 7


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schedule": "sometimes"}, "unknown schedule"),
        ({"ratio": "2-1"}, "--ratio"),
        ({"ratio": "0:1"}, "--ratio"),
        ({"ratio": 121}, "quoted in a yaml file"),
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
    loader = MultiTaskLoader({"det": _Loader("det", 3), "seg": _Loader("seg", 2)}, TaskPlan("alternate", (1, 1)), 2)
    ids = [(b["task"], b["id"]) for b in loader]
    assert len(loader) == len(ids) == 6
    assert ids == [("det", "det0"), ("seg", "seg0"), ("det", "det1"), ("seg", "seg1"), ("det", "det2"), ("seg", "seg0")]


def test_merge_joint_puts_det_images_first():
    import torch

    # per-image lists come out of Ultralytics' collate_fn as tuples
    det = {"img": torch.zeros(2, 3, 8, 8), "cls": torch.zeros(3, 1), "im_file": ("a", "b")}
    seg = {"img": torch.ones(1, 3, 8, 8), "semantic_mask": torch.zeros(1, 8, 8), "im_file": ("c",)}
    batch = merge_joint(det, seg)
    assert batch["n_det"] == 2 and batch["img"].shape[0] == 3 and batch["img"][2].min() == 1
    assert batch["im_file"] == ["a", "b", "c"] and batch["cls"].shape == (3, 1) and "semantic_mask" in batch
