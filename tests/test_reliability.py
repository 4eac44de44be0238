"""Reliability: no run is overwritten by a resume, no output replaces another in silence, a failed write is an error
(on a small tmpfs where the machine lets the tests mount one), Ctrl-C always stops, nothing is left half-written."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run

from .conftest import TINY
from .test_train import train


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def interrupted_run(tiny_pair, project: Path, name: str = "cut") -> Path:
    """A 3-epoch run stopped after its first epoch (a resumable last.pt)."""

    def stop_after_first(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny_pair, project, name=name, callbacks={"on_fit_epoch_end": stop_after_first}, **{**TINY, "epochs": 3})
    return project / name


def test_a_resume_writes_only_into_the_folder_it_was_given(tiny_pair, tmp_path):
    """An interrupted run moved elsewhere, and a new run that took its name: resuming the moved run trains in the
    moved folder (with its own pair yaml) and leaves the new run byte for byte as it was."""
    cut = interrupted_run(tiny_pair, tmp_path)
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(cut, moved / "cut")
    train(tiny_pair, tmp_path, name="cut")  # the new run that takes the name
    before = digest(tmp_path / "cut")
    result = run("train", "--resume", moved / "cut", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert digest(tmp_path / "cut") == before
    rows = (moved / "cut" / "results.csv").read_text().splitlines()
    assert len(rows) == 4 and (moved / "cut/weights/best.pt").is_file()


def test_a_refused_resume_writes_nothing(tiny_pair, tmp_path):
    """A resume refused for a missing dataset or an option it cannot change leaves every file as it was, and the
    run still resumes afterwards."""
    cut = interrupted_run(tiny_pair, tmp_path)
    before = digest(cut)
    assert_one_line_error(run("train", "--resume", cut, "--det", tmp_path / "missing.yaml"), "missing.yaml")
    assert_one_line_error(run("train", "--resume", cut, "lr0=0.5"), "--resume keeps the run's own", "lr0")
    assert digest(cut) == before
    assert run("train", "--resume", cut, "--workers", "0").exit_code == 0


def test_two_resumes_of_one_run_cannot_train_at_once(tiny_pair, tmp_path):
    from yoloseghw.engine.runs import RunLock

    cut = interrupted_run(tiny_pair, tmp_path)
    before = digest(cut)
    with RunLock(cut):  # another yoloseg training into the run
        assert_one_line_error(run("train", "--resume", cut), "is in use", str(cut))
    assert {k: v for k, v in digest(cut).items() if k != RunLock.NAME} == {
        k: v for k, v in before.items() if k != RunLock.NAME
    }


@pytest.mark.parametrize("name", ["../../x", "/abs/run", "", "ok/weights", ".."])
def test_a_run_name_stays_inside_its_project(name, tiny_pair, tmp_path):
    det, seg = tiny_pair
    result = run("train", "--det", det, "--seg", seg, "--project", tmp_path / "p", "--name", name)
    assert_one_line_error(result, "--name", "inside --project")
    assert not (tmp_path / "p").exists() and not (tmp_path.parent / "x").exists()


def test_predict_keeps_every_output(trained, tiny_pair, tmp_path):
    """Two images named x.jpg in different folders and one named like a video frame file: every one keeps its own
    annotated image and mask, named after where it came from."""
    val = sorted((tiny_pair[1].parent / "images" / "val").glob("*.jpg"))
    src = tmp_path / "src"
    for folder, image in (("a", val[0]), ("b", val[1])):
        (src / folder).mkdir(parents=True)
        shutil.copy(image, src / folder / "x.jpg")
    result = run(
        "predict", str(src / "*" / "x.jpg"), "--weights", trained, "--save-mask", "--project", tmp_path / "out"
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "out" / "predict"
    assert sorted(p.name for p in out.glob("*.jpg")) == ["b_x.jpg", "x.jpg"]
    assert sorted(p.name for p in (out / "masks").glob("*.png")) == ["b_x.png", "x.png"]
    assert "2 image(s)" in result.output


def test_export_refuses_to_replace_an_export_without_force(trained, tmp_path):
    pt = Path(shutil.copy(trained, tmp_path / "w.pt"))
    (tmp_path / "w.onnx").write_bytes(b"an earlier export")
    assert_one_line_error(run("export", "--weights", pt), "w.onnx exists; give --force")
    assert (tmp_path / "w.onnx").read_bytes() == b"an earlier export"
    assert run("export", "--weights", pt, "--force").exit_code == 0
    assert (tmp_path / "w.onnx").read_bytes() != b"an earlier export"


def test_prune_whose_fine_tuning_fails_writes_no_output(trained, pair_copy, tmp_path):
    """Bad fine-tuning data found only by the training (a class id out of range in a train label): exit 2, and the
    earlier best-prune30.pt, replaced only with --force, stays as it was."""
    det, seg = pair_copy
    label = next((det.parent / "labels" / "train").glob("*.txt"))
    label.write_text("7 0.5 0.5 0.2 0.2\n")
    pt = Path(shutil.copy(trained, tmp_path / "w.pt"))
    earlier = tmp_path / "w-prune30.pt"
    earlier.write_bytes(b"an earlier pruned model")
    args = ["--method", "prune", "--ratio", "0.3", "--det", det, "--seg", seg, "--finetune-epochs", "1", "--force"]
    assert_one_line_error(run("compress", "--weights", pt, *args, "--batch", "4"), "exceeds dataset class count")
    assert earlier.read_bytes() == b"an earlier pruned model"
    assert not list(tmp_path.glob(".yoloseg-*")) and not list(tmp_path.glob("*finetune*"))


def test_compress_removes_what_a_killed_run_left(trained, tmp_path):
    pt = Path(shutil.copy(trained, tmp_path / "w.pt"))
    stale = tmp_path / ".yoloseg-export-abc123"
    stale.mkdir()
    (stale / "w.onnx").write_bytes(b"x" * 1000)
    assert run("compress", "--weights", pt, "--method", "fp16").exit_code == 0
    assert not stale.exists() and (tmp_path / "w-fp16.onnx").is_file()


def test_convert_force_onto_a_dataset_of_the_other_kind_clears_it(tiny_pair, tmp_path):
    """A box dataset converted with --force onto a mask dataset: no stale masks/ or mask yaml stays."""
    out = tmp_path / "out"
    seg_src = tiny_pair[1].parent
    assert run("data", "convert", seg_src, "--from", "masks", "--to", out, "--name", "old").exit_code == 0
    assert (out / "masks").is_dir() and (out / "old.yaml").is_file()
    (out / "notes.txt").write_text("mine")
    result = run("data", "convert", tiny_pair[0].with_suffix(".yaml"), "--from", "yolo", "--to", out, "--force")
    assert result.exit_code == 0, result.output
    assert not (out / "masks").exists() and not (out / "old.yaml").exists()
    assert (out / "labels").is_dir() and (out / "notes.txt").read_text() == "mine"


def test_a_mask_that_is_not_an_image_is_one_line(pair_copy, trained, tmp_path):
    det, seg = pair_copy
    project = tmp_path / "runs"
    for split in ("train", "val"):
        mask = next((seg.parent / "masks" / split).glob("*.png"))
        mask.write_bytes(b"" if split == "train" else b"not a png")
        name = mask.name
        if split == "train":
            result = run("train", "--det", det, "--seg", seg, "--epochs", "1", "--imgsz", "64", "--project", project)
        else:
            result = run("val", "--weights", trained, "--seg", seg)
        assert_one_line_error(result, name, "not an image")
        mask.write_bytes(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    assert not project.exists()


@pytest.mark.parametrize(
    ("line", "needle"), [("channels: 1", "channels: 1"), ("label_mapping: [1, 2]", "label_mapping must map")]
)
def test_dataset_yaml_values_of_the_wrong_kind(line, needle, pair_copy, tmp_path):
    det, seg = pair_copy
    seg.write_text(seg.read_text() + line + "\n")
    result = run("train", "--det", det, "--seg", seg, "--project", tmp_path / "p")
    assert_one_line_error(result, needle)
    assert not (tmp_path / "p").exists()


def test_onnx_metadata_that_does_not_match_its_graph(trained, tiny_pair, tmp_path):
    import onnx

    from yoloseghw.engine.model import YOLOSeg

    path = YOLOSeg(shutil.copy(trained, tmp_path / "w.pt")).export()
    model = onnx.load(path)
    for prop in model.metadata_props:
        if prop.key == "dynamic":
            prop.value = "True"
    lying = tmp_path / "lying.onnx"
    onnx.save(model, lying)
    assert_one_line_error(run("predict", "--weights", lying, "--project", tmp_path / "out"), "dynamic", "lying.onnx")
    assert_one_line_error(run("val", "--weights", lying, "--seg", tiny_pair[1]), "dynamic")
    data = ["--det", tiny_pair[0], "--seg", tiny_pair[1]]
    bench = run("bench", "--weights", tmp_path / "w.pt", *data, "--variant", lying, "--project", tmp_path / "b")
    assert_one_line_error(bench, "--variant:", "dynamic")
    assert not (tmp_path / "out").exists()


def test_data_check_flags_non_finite_boxes_and_warns_on_repeated_names(pair_copy):
    det, _ = pair_copy
    label = next((det.parent / "labels" / "train").glob("*.txt"))
    label.write_text("0 nan 0.5 0.2 0.2\n")
    det.write_text(det.read_text().replace("2: sign", "2: car"))
    result = run("data", "check", det)
    assert result.exit_code == 1 and "NaN or infinite" in result.output, result.output
    assert "names car more than once" in result.output


def test_the_first_ctrl_c_stops_even_inside_ultralytics_plots(tiny_pair, tmp_path, monkeypatch):
    """Ultralytics wraps its label plot in TryExcept, which swallows a KeyboardInterrupt; the run still stops, exit
    code 130, and leaves no run folder (no checkpoint yet)."""
    from ultralytics.utils import TryExcept

    from yoloseghw.engine.trainer import DetSegTrainer

    @TryExcept()
    def plot_with_ctrl_c(self):
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(DetSegTrainer, "plot_training_labels", plot_with_ctrl_c)
    det, seg = tiny_pair
    result = run("train", "--det", det, "--seg", seg, "--epochs", "1", "--imgsz", "64", "--project", tmp_path)
    assert result.exit_code == 130, result.output
    assert not list(tmp_path.glob("train*/weights/last.pt"))


@contextmanager
def small_disk(path: Path, size: str = "16m"):
    """A small tmpfs at `path`; the test is skipped where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    ).returncode:
        pytest.skip("this machine does not let the tests mount a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path) -> None:
    """Fill the tmpfs at `folder` to the last byte."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass


def test_every_write_on_a_full_disk_is_one_line_and_leaves_nothing_half_written(trained, tiny_pair, tmp_path):
    det, seg = tiny_pair
    images = det.parent / "images" / "val"
    with small_disk(tmp_path / "disk") as disk:
        pt = Path(shutil.copy(trained, disk / "w.pt"))
        fill(disk)
        cases = {
            "predict": ["predict", images, "--weights", trained, "--project", disk / "p"],
            "export": ["export", "--weights", pt],
            "compress fp16": ["compress", "--weights", pt, "--method", "fp16"],
            "val --json": ["val", "--weights", trained, "--seg", seg, "--json", disk / "v.json"],
            "data demo": ["data", "demo", disk / "demo", "--train-images", "4", "--val-images", "2"],
            "train": ["train", "--det", det, "--seg", seg, "--epochs", "1", "--imgsz", "64", "--project", disk / "r"],
        }
        for name, args in cases.items():
            result = run(*args)
            assert result.exit_code == 2 and "Traceback" not in result.output, f"{name}: {result.output}"
            lines = result.output.strip().splitlines()
            assert lines[-1].startswith("Error: could not write") and str(disk) in lines[-1], f"{name}: {lines[-1]}"
            if name not in ("val --json", "train"):  # those print their work (tables, epochs) before the write
                assert len(lines) == 1, f"{name}: {result.output}"
        left = sorted(str(p.relative_to(disk)) for p in disk.rglob("*") if p.name not in {"filler", "w.pt"})
        assert left == [], left  # no output, no folder: nothing half-written


def test_compress_beside_weights_in_a_read_only_folder_is_one_line(trained, tmp_path):
    with small_disk(tmp_path / "ro") as ro:
        pt = Path(shutil.copy(trained, ro / "w.pt"))
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        for method in ("prune", "quantize", "fp16"):
            assert_one_line_error(run("compress", "--weights", pt, "--method", method), "not writable")
