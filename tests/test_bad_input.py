"""Bad options through the CLI: one line, exit code 2, no traceback, no new folder, existing runs untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, run


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


TRAIN_CASES = [
    (["--batch", "0"], "--batch must be at least 1"),
    (["--workers", "-1"], "--workers must be 0 or more"),
    (["--optimizer", "bogus"], "Optimizer 'bogus' not found"),
    (["--freeze", "999"], "freeze at most 23"),
    (["--imgsz", "0"], "--imgsz must be at least 32"),
    (["--device", "mps"], "no Apple MPS device"),
    (["--cache", "bogus"], "--cache: expected ram or disk"),
    (["--seg-weight", "-5"], "--seg-weight must be >= 0"),
    (["--schedule", "phased", "--epochs", "1"], "at least 2 epochs"),
    (["bogus_key=1"], "'bogus_key' is not a valid YOLO argument"),
]


@pytest.mark.parametrize(("args", "needle"), TRAIN_CASES, ids=[" ".join(a) for a, _ in TRAIN_CASES])
def test_bad_train_option(args, needle, tiny_pair, trained, tmp_path):
    run_dir = trained.parent.parent
    before = _digest(run_dir)
    det, seg = tiny_pair
    result = run("train", "--det", det, "--seg", seg, "--epochs", "1", "--imgsz", "64", "--project", tmp_path, *args)
    assert_one_line_error(result, needle)
    assert not list(tmp_path.iterdir()), "a failing command left a folder behind"
    assert _digest(run_dir) == before


def test_imgsz_not_a_multiple_of_the_stride_is_rounded_up():
    from types import SimpleNamespace

    from yoloseghw.utils.options import check_training_args

    args = SimpleNamespace(batch=4, workers=0, cache=False, freeze=None, imgsz=33)
    assert check_training_args(args, layers=24) == 64


def test_bad_predict_max_det(trained, tiny_pair, tmp_path):
    source = tiny_pair[0].parent / "images" / "val"
    result = run("predict", source, "--weights", trained, "--max-det", "-1", "--project", tmp_path)
    assert_one_line_error(result, "--max-det must be at least 1")
    assert not list(tmp_path.iterdir())
