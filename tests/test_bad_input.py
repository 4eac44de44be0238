"""Bad options through the CLI: one line, exit code 2, no traceback, no new folder, existing runs untouched."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import cv2
import numpy as np
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
    (["--freeze", "head"], "--freeze: expected a number of layers, backbone or neck"),
    (["--imgsz", "0"], "--imgsz must be at least 32"),
    (["--device", "mps"], "no Apple MPS device"),
    (["--cache", "bogus"], "--cache: expected ram or disk"),
    (["--seg-weight", "-5"], "--seg-weight must be a number >= 0"),
    (["--schedule", "phased", "--epochs", "1"], "at least 2 epochs"),
    (["bogus_key=1"], "'bogus_key' is not a valid YOLO argument"),
    (["--schedule", "joint", "--distill"], "every joint step has labels for both heads"),
    (["--teacher", "teacher.pt"], "is the teacher of --distill: add --distill"),
    (["--distill", "--teacher", "nowhere.pt"], "--teacher: nowhere.pt does not exist"),
    (["--lr-head", "0"], "--lr-head must be > 0"),
    (["--replay", "0.5"], "--replay draws first-task batches in a second phase"),
    (["--replay", "-1"], "--replay must be a number >= 0"),
    (["--epoch-steps", "0"], "--epoch-steps must be a whole number >= 1"),
    (["--ratio", "temp:-1"], "--ratio temp:A needs a finite A >= 0"),
    (["--schedule", "single"], "--schedule single fine-tunes a checkpoint"),
    (["--ewc", "100"], "--ewc anchors the weights a first task left: use --schedule phased"),
    (["--seg-head", "wide"], "--seg-head: expected one of conv, separable, got 'wide'"),
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


@pytest.fixture()
def files(tmp_path) -> dict[str, Path]:
    """Bad inputs on disk: a model yaml with a syntax error, one with an unknown module, a plain file, a JSON file that
    is not a val report."""
    bad = tmp_path / "inputs"
    bad.mkdir()
    (bad / "syntax.yaml").write_text("backbone: [[-1, 1, Conv, [16, 3, 2]]\nhead: [\n")
    (bad / "unknown.yaml").write_text(
        "nc: 3\nbackbone:\n  - [-1, 1, Bogus, [16, 3, 2]]\nhead:\n  - [-1, 1, Detect, [nc]]\n"
    )
    (bad / "plain").write_text("a file")
    (bad / "notes.json").write_text('{"my": "notes"}')
    (bad / "unreadable").mkdir()
    (bad / "unreadable" / "broken.jpg").write_bytes(b"not a jpeg")
    return {p.name: p for p in bad.iterdir()}


def _command(name: str, files: dict[str, Path], trained: Path, tiny_pair, out: Path) -> list:
    det, seg = tiny_pair
    data = ["--det", det, "--seg", seg, "--epochs", "1", "--imgsz", "64"]
    images = det.parent / "images" / "val"
    return {
        "train --model syntax": ["train", *data, "--model", files["syntax.yaml"], "--project", out],
        "train --model unknown module": ["train", *data, "--model", files["unknown.yaml"], "--project", out],
        "train --project file": ["train", *data, "--project", files["plain"]],
        "predict --project file": ["predict", images, "--weights", trained, "--project", files["plain"]],
        "predict missing source": ["predict", out / "nowhere.jpg", "--weights", trained, "--project", out],
        "export --opset 99": ["export", "--weights", trained, "--opset", "99"],
        "val --json folder": ["val", "--weights", trained, "--seg", seg, "--json", out.parent],
        "val --json checkpoint": ["val", "--weights", trained, "--seg", seg, "--json", trained],
        "val --json not a report": ["val", "--weights", trained, "--seg", seg, "--json", files["notes.json"]],
        "data show --out folder": ["data", "show", seg, "--out", out.parent],
        "data show --out txt": ["data", "show", seg, "--out", out / "grid.txt"],
        "data demo file": ["data", "demo", files["plain"]],
        "info missing": ["info", out / "missing.pt"],
    }[name]


PATH_CASES = {
    "train --model syntax": "is not a valid yaml file",
    "train --model unknown module": "unknown module 'Bogus'",
    "train --project file": "is a file, not a folder",
    "predict --project file": "is a file, not a folder",
    "predict missing source": "does not exist",
    "export --opset 99": "--opset 99",
    "val --json folder": "is a folder",
    "val --json checkpoint": "must end in .json",
    "val --json not a report": "is not a yoloseg val report",
    "data show --out folder": "is a folder",
    "data show --out txt": "must end in .png",
    "data demo file": "is a file, not a folder",
    "info missing": "WEIGHTS: file not found",
}


def _first_mask(seg_yaml: Path) -> Path:
    return sorted((seg_yaml.parent / "masks" / "train").glob("*.png"))[0]


def _colour(mask: np.ndarray, equal: bool) -> np.ndarray:
    out = np.stack([mask, mask, mask], axis=2)
    if not equal:
        out[..., 2] = (out[..., 2].astype(np.int32) + 1).clip(0, 254).astype(np.uint8)  # channels now differ
    return out


MASK_CASES = {
    "16-bit mask holding 300": (lambda m: m.astype(np.uint16) + 300, "mask value 300 is above 255"),
    "colour mask": (lambda m: _colour(m, equal=False), "a colour mask, not class ids"),
}


@pytest.mark.parametrize("name", MASK_CASES)
def test_masks_are_read_as_stored(name, pair_copy, tmp_path):
    """A mask value above 255 or a colour mask stops training in one line, and `data check` reports it."""
    det, seg = pair_copy
    change, needle = MASK_CASES[name]
    mask_file = _first_mask(seg)
    cv2.imwrite(str(mask_file), change(cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED)))
    out = tmp_path / "runs"
    result = run("train", "--det", det, "--seg", seg, "--epochs", "1", "--imgsz", "64", "--project", out)
    assert_one_line_error(result, needle, mask_file.stem)
    assert not out.exists() or not list(out.iterdir())
    if name == "colour mask":
        assert "data convert" in result.output
        check = run("data", "check", seg)
        assert check.exit_code == 1 and "colour masks, not class ids" in check.output, check.output


def test_a_grey_mask_stored_as_colour_is_fine(pair_copy):
    det, seg = pair_copy
    mask_file = _first_mask(seg)
    cv2.imwrite(str(mask_file), _colour(cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED), equal=True))
    check = run("data", "check", seg)
    assert check.exit_code == 0 and "No errors" in check.output, check.output


def test_train_split_without_labels(pair_copy, tmp_path):
    det, seg = pair_copy
    shutil.rmtree(det.parent / "labels" / "train")
    result = run("train", "--det", det, "--seg", seg, "--epochs", "1", "--imgsz", "64", "--project", tmp_path / "r")
    assert_one_line_error(result, "No labels found")
    assert "\x1b[" not in result.output  # no raw colour codes when the output is not a terminal
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").iterdir())


def test_onnx_metadata_with_an_impossible_size(trained, tmp_path, tiny_pair):
    import onnx

    from yoloseghw import YOLOSeg

    path = YOLOSeg(shutil.copy(trained, tmp_path / "m.pt")).export()
    model = onnx.load(str(path))
    next(p for p in model.metadata_props if p.key == "imgsz").value = "[0, 0]"
    onnx.save(model, str(path))
    images = tiny_pair[0].parent / "images" / "val"
    assert_one_line_error(run("predict", images, "--weights", path), "damaged yoloseg metadata", "imgsz [0, 0]")


def test_atomic_writes_clean_stale_temporaries_and_keep_the_usual_mode(tmp_path, trained):
    import os

    from yoloseghw.utils.files import atomic_path

    stale = tmp_path / ".report.json.x1y2.tmp"
    stale.write_text("left by a killed write")
    with atomic_path(tmp_path / "report.json") as tmp:
        tmp.write_text("{}")
    assert not stale.exists() and [p.name for p in tmp_path.iterdir()] == ["report.json"]
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o666 & ~mask
    run_dir = trained.parent.parent
    modes = {p.name: p.stat().st_mode & 0o777 for p in (trained, trained.with_name("last.pt"), run_dir / "args.yaml")}
    assert len(set(modes.values())) == 1, modes


def _more(name: str, files: dict[str, Path], trained: Path, tiny_pair, out: Path) -> list:
    det, seg = tiny_pair
    data = ["--det", det, "--seg", seg, "--epochs", "1", "--imgsz", "64", "--project", out]
    images = det.parent / "images" / "val"
    return {
        "train missing det yaml": ["train", "--det", out / "none.yaml", "--seg", seg, "--project", out],
        "train det yaml as seg": ["train", "--det", det, "--seg", det, "--project", out],
        "train det without seg": ["train", "--det", det, "--project", out],
        "train unknown schedule": ["train", *data, "--schedule", "bogus"],
        "train bad ratio": ["train", *data, "--ratio", "2-1"],
        "train unknown model": ["train", *data, "--model", "yolo99z"],
        "train seg head on resume": ["train", "--resume", trained.with_name("last.pt"), "--seg-head", "separable"],
        "train resume missing": ["train", "--resume", out / "nowhere" / "last.pt"],
        "train weights not a checkpoint": ["train", *data, "--weights", files["plain"]],
        "val nothing to validate": ["val", "--weights", trained],
        "val weights missing": ["val", "--weights", out / "missing.pt", "--seg", seg],
        "predict conf above 1": ["predict", images, "--weights", trained, "--conf", "2", "--project", out],
        "predict unknown class": ["predict", images, "--weights", trained, "--classes", "dragon", "--project", out],
        "export format engine": ["export", "--weights", trained, "--format", "engine"],
        "compress unknown method": ["compress", "--weights", trained, "--method", "zip"],
        "compress ratio 1.5": ["compress", "--weights", trained, "--method", "prune", "--ratio", "1.5"],
        "compress quantize without data": ["compress", "--weights", trained, "--method", "quantize"],
        "data check missing yaml": ["data", "check", out / "none.yaml"],
        "train imgsz of three sizes": ["train", "--det", det, "--seg", seg, "--project", out, "imgsz=[64,64,64]"],
        "predict imgsz 0": ["predict", images, "--weights", trained, "--imgsz", "0", "--project", out],
        "val batch 0": ["val", "--weights", trained, "--seg", seg, "--batch", "0"],
        "val batch -1": ["val", "--weights", trained, "--seg", seg, "--batch", "-1"],
        "demo no train images": ["data", "demo", out / "demo", "--train-images", "0"],
        "demo negative train images": ["data", "demo", out / "demo", "--train-images", "-1"],
        "demo negative val images": ["data", "demo", out / "demo", "--val-images", "-5"],
        "compress ratio nan": ["compress", "--weights", trained, "--method", "prune", "--ratio", "nan"],
        "compress ratio inf": ["compress", "--weights", trained, "--method", "prune", "--ratio", "inf"],
        "bench variant not a checkpoint": [
            "bench",
            "--weights",
            trained,
            "--det",
            det,
            "--seg",
            seg,
            "--variant",
            files["plain"],
            "--project",
            out,
        ],  # fmt: skip
        "predict folder of unreadable images": ["predict", files["unreadable"], "--weights", trained, "--project", out],
    }[name]


ALREADY_ONE_LINE = {
    "train missing det yaml": "none.yaml",
    "train det yaml as seg": "--seg",
    "train det without seg": "give both --det and --seg",
    "train unknown schedule": "--schedule",
    "train bad ratio": "--ratio",
    "train unknown model": "unknown model 'yolo99z'",
    "train seg head on resume": "--seg-head builds a new model's head",
    "train resume missing": "nowhere",
    "train weights not a checkpoint": "plain",
    "val nothing to validate": "give --det and/or --seg",
    "val weights missing": "file not found",
    "predict conf above 1": "between 0 and 1",
    "predict unknown class": "unknown detection class 'dragon'",
    "export format engine": "--format: expected onnx or openvino",
    "compress unknown method": "unknown method 'zip'",
    "compress ratio 1.5": "between 0 and 1",
    "compress quantize without data": "give --det and --seg",
    "data check missing yaml": "none.yaml",
    "train imgsz of three sizes": "imgsz: one size or [height, width]",
    "predict imgsz 0": "--imgsz must be at least 32",
    "val batch 0": "--batch must be at least 1",
    "val batch -1": "--batch must be at least 1",
    "demo no train images": "--train-images and --val-images must be at least 1",
    "demo negative train images": "--train-images and --val-images must be at least 1",
    "demo negative val images": "--train-images and --val-images must be at least 1",
    "compress ratio nan": "between 0 and 1",
    "compress ratio inf": "between 0 and 1",
    "bench variant not a checkpoint": "--variant:",
    "predict folder of unreadable images": "could be read",
}


def test_corrupt_video_is_one_line_without_ffmpeg_noise(trained, tmp_path, capfd):
    video = tmp_path / "broken.mp4"
    video.write_bytes(np.random.default_rng(0).integers(0, 255, 4000, dtype=np.uint8).tobytes())
    result = run("predict", video, "--weights", trained, "--project", tmp_path / "out")
    assert_one_line_error(result, "broken.mp4")
    assert "moov atom" not in capfd.readouterr().err  # what FFmpeg writes to the process's stderr
    assert not (tmp_path / "out").exists()


def test_a_val_split_without_labels_warns(pair_copy, trained):
    det, _ = pair_copy
    shutil.rmtree(det.parent / "labels" / "val")
    result = run("val", "--weights", trained, "--det", det)
    assert result.exit_code == 0, result.output
    assert "the val split of" in result.output and "has no labels" in result.output


def test_reasons_are_cut_at_a_word_boundary():
    from yoloseghw.utils.console import shorten

    text = "\x1b[34mreason\x1b[0m " + " ".join(f"word{i}" for i in range(100))
    short = shorten(text, 60)
    assert len(short) <= 60 and short.endswith(" …") and short.startswith("reason word0")
    assert all(w.startswith("word") or w in {"reason", "…"} for w in short.split())


CASES = {**PATH_CASES, **ALREADY_ONE_LINE}  # paths and options fixed by the reliability work, then those that held


@pytest.mark.parametrize("name", CASES)
def test_bad_input_case(name, files, trained, tiny_pair, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    watched = [trained.parent.parent, files["notes.json"].parent]
    before = [_digest(folder) for folder in watched]
    command = (_command if name in PATH_CASES else _more)(name, files, trained, tiny_pair, out)
    assert_one_line_error(run(*command), CASES[name])
    assert not list(out.iterdir()), "a failing command left something behind"
    assert [_digest(folder) for folder in watched] == before
    assert not list(trained.parent.glob(".*.tmp")), "a failed export left a temporary file beside the weights"
