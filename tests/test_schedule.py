"""Task schedules."""

import pytest

from yoloseghw.schedule import Schedule


def test_alternate_ratio_covers_both_sets():
    steps = Schedule("alternate", ratio=(2, 1)).steps(0, 10, {"det": 6, "seg": 5})
    assert steps[:3] == [("det",), ("det",), ("seg",)]
    assert steps.count(("det",)) >= 6 and steps.count(("seg",)) >= 5


def test_phased_order_and_boundary():
    s = Schedule("phased", det_epochs=3, order=("seg", "det"))
    assert s.phase(0, 10) == ("seg",) and s.phase(6, 10) == ("seg",) and s.phase(7, 10) == ("det",)
    assert s.boundary(10) == 7
    assert Schedule("phased", det_epochs=3).steps(0, 10, {"det": 4, "seg": 2}) == [("det",)] * 4


def test_joint_draws_both_each_step():
    assert Schedule("joint").steps(0, 5, {"det": 3, "seg": 7}) == [("det", "seg")] * 7


def test_bad_schedule():
    with pytest.raises(ValueError):
        Schedule("sometimes")
