"""CLI: the main commands, and every bad-input case -> one line, exit code 2, no traceback, nothing overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from .helpers import assert_one_line_error, run

TINY_ARGS = ["--epochs", "1", "--imgsz", "64", "--batch", "4", "--workers", "0"]


def train_args(det: Path, seg: Path, project: Path, *extra: str) -> list[str]:
    return ["train", "--det", det, "--seg", seg, "--project", project, *TINY_ARGS, *extra]


def test_val_json_and_info(trained, tiny_pair, tmp_path):
    out = tmp_path / "val.json"
    result = run("val", "--weights", trained, "--det", tiny_pair[0], "--seg", tiny_pair[1], "--json", out)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert {"metrics/mAP50-95(B)", "metrics/mIoU", "fitness"} <= set(data["metrics"])
    assert [r["class"] for r in data["classes"]["seg"]] == ["sky", "road", "vegetation", "car", "person"]
    assert "car" in result.output and "mIoU" in result.output
    result = run("val", "--weights", trained, "--seg", tiny_pair[1])
    assert result.exit_code == 0 and "Detection" not in result.output
    result = run("info", trained)
    assert result.exit_code == 0 and "sign" in result.output and "vegetation" in result.output


def test_data_demo(tmp_path):
    result = run("data", "demo", tmp_path / "d", "--train-images", "3", "--val-images", "2")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "d/demo-seg/masks/train").glob("*.png"))) == 3
    assert_one_line_error(run("data", "demo", tmp_path / "d"), "already holds demo data")


def test_missing_yaml(tiny_pair, tmp_path):
    assert_one_line_error(run(*train_args(tmp_path / "nope.yaml", tiny_pair[1], tmp_path)), "--det", "not found")


def test_invalid_yaml(tiny_pair, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n  names: : :\n")
    assert_one_line_error(run(*train_args(tiny_pair[0], bad, tmp_path)), "--seg", "bad.yaml")


def test_swapped_yamls(tiny_pair, tmp_path):
    assert_one_line_error(run(*train_args(tiny_pair[1], tiny_pair[0], tmp_path)), "--det", "pass it as --seg")
    assert_one_line_error(run(*train_args(tiny_pair[0], tiny_pair[0], tmp_path)), "--seg", "pass it as --det")


def test_label_class_out_of_range(pair_copy, tmp_path):
    det, seg = pair_copy
    label = next((det.parent / "labels/train").glob("*.txt"))
    label.write_text("7 0.5 0.5 0.2 0.2\n")
    result = run(*train_args(det, seg, tmp_path / "runs"))
    assert_one_line_error(result, "--det", label.stem, "Label class 7")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_mask_value_out_of_range(pair_copy, tmp_path):
    det, seg = pair_copy
    mask_file = next((seg.parent / "masks/val").glob("*.png"))
    mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
    mask[:4, :4] = 9
    cv2.imwrite(str(mask_file), mask)
    assert_one_line_error(run(*train_args(det, seg, tmp_path)), "--seg", mask_file.stem, "[9]")


def test_some_corrupt_images_are_skipped(pair_copy, tmp_path):
    det, seg = pair_copy
    next((det.parent / "images/train").glob("*.jpg")).write_bytes(b"not an image")
    result = run(*train_args(det, seg, tmp_path))
    assert result.exit_code == 0, result.output
    assert "skipped 1" in result.output


def test_all_images_corrupt_or_empty_split(pair_copy, tmp_path):
    det, seg = pair_copy
    for f in (seg.parent / "images/val").glob("*.jpg"):
        f.write_bytes(b"junk")
    assert_one_line_error(run(*train_args(det, seg, tmp_path)), "--seg", "val")
    for f in (det.parent / "images/train").glob("*.jpg"):
        f.unlink()
    assert_one_line_error(run(*train_args(det, seg, tmp_path)), "--det", "train")


def test_unknown_model(tiny_pair, tmp_path):
    assert_one_line_error(run(*train_args(*tiny_pair, tmp_path, "--model", "yolo99z")), "--model", "yolo99z")


def test_unavailable_device_is_one_line_and_leaves_no_run(tiny_pair, tmp_path):
    result = run(*train_args(*tiny_pair, tmp_path, "--device", "99"))
    assert_one_line_error(result, "--device 99")
    assert not any(tmp_path.glob("**/weights"))


@pytest.mark.parametrize("content", [b"definitely not a checkpoint", None])
def test_bad_weights(tiny_pair, tmp_path, content):
    weights = tmp_path / "w.pt"
    if content is not None:
        weights.write_bytes(content)
    for args in (
        train_args(*tiny_pair, tmp_path, "--weights", weights),
        ["val", "--weights", weights, "--det", tiny_pair[0]],
    ):
        assert_one_line_error(run(*args), "--weights", "w.pt")


def test_detection_checkpoint_is_not_a_yoloseg_model(tiny_pair, tmp_path):
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.save({"model": DetectionModel("yolo26n.yaml", nc=3, verbose=False)}, tmp_path / "det.pt")
    assert_one_line_error(
        run("val", "--weights", tmp_path / "det.pt", "--det", tiny_pair[0]), "not a yoloseg checkpoint"
    )


def test_failed_run_keeps_earlier_runs(trained, pair_copy, tmp_path):
    det, seg = pair_copy
    before = trained.read_bytes()
    label = next((det.parent / "labels/train").glob("*.txt"))
    label.write_text("9 0.5 0.5 0.2 0.2\n")
    project = trained.parent.parent.parent
    assert_one_line_error(run(*train_args(det, seg, project, "--name", "base")), "Label class 9")
    assert trained.read_bytes() == before
    assert not (project / "base-2").exists()


def test_val_class_count_mismatch(trained, tmp_path):
    from yoloseghw.data.demo import make_demo

    det, _ = make_demo(tmp_path, n_train=1, n_val=2)
    text = det.read_text().replace("  2: sign\n", "")
    det.write_text(text)
    labels = det.parent / "labels/val"
    for f in labels.glob("*.txt"):
        f.write_text("".join(line for line in f.read_text().splitlines(True) if not line.startswith("2 ")))
    assert_one_line_error(run("val", "--weights", trained, "--det", det), "2 classes", "3")


def test_weights_transfer_is_reported(tiny_pair, tmp_path):
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.save({"model": DetectionModel("yolo26n.yaml", nc=3, verbose=False).half()}, tmp_path / "det.pt")
    result = run(*train_args(*tiny_pair, tmp_path, "--weights", tmp_path / "det.pt"))
    assert result.exit_code == 0, result.output
    assert "Transferred" in result.output and "det.pt" in result.output


def test_download_key_is_never_executed(tiny_pair, tmp_path):
    marker = tmp_path / "downloaded"
    bad = tmp_path / "remote.yaml"
    bad.write_text(f"train: images/train\nval: images/val\nnames: {{0: car}}\ndownload: |\n  open('{marker}', 'w')\n")
    assert_one_line_error(run(*train_args(bad, tiny_pair[1], tmp_path)), "--det", "images not found")
    assert not marker.exists()


def test_label_mapping_makes_raw_mask_values_valid(pair_copy, tmp_path):
    det, seg = pair_copy
    for mask_file in (seg.parent / "masks").rglob("*.png"):
        mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
        mask[mask == 4] = 40  # raw id 40 = person
        mask[:2, :2] = 7  # raw id 7 = void
        cv2.imwrite(str(mask_file), mask)
    seg.write_text(seg.read_text() + "label_mapping: {0: 0, 1: 1, 2: 2, 3: 3, 40: 4, 7: 255}\n")
    result = run(*train_args(det, seg, tmp_path))
    assert result.exit_code == 0, result.output
