"""`yoloseg predict` and the YOLOSeg.predict API: results, saved outputs, sources and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from ultralytics.engine.results import Boxes

from tests.helpers import assert_one_line_error, run
from yoloseghw import YOLOSeg


@pytest.fixture(scope="module")
def val_images(tiny_pair) -> Path:
    """Folder of the tiny detection set's 4 val images (128x128 synthetic road scenes)."""
    return tiny_pair[0].parent / "images" / "val"


def test_api_returns_boxes_and_full_size_class_maps(trained, val_images):
    results = YOLOSeg(trained).predict(val_images, conf=0.001)
    assert len(results) == 4
    seg_nc = len(results[0].seg_names)
    for r in results:
        assert isinstance(r.boxes, Boxes) and len(r.boxes) > 0  # conf 0.001: a 1-epoch model still fires
        assert r.boxes.cls.max() < len(r.det_names)
        image = cv2.imread(r.path)
        assert r.semantic_mask.shape == image.shape[:2] and r.semantic_mask.dtype == np.uint8
        assert r.semantic_mask.max() < seg_nc
        assert abs(sum(r.class_fractions().values()) - 1.0) < 1e-3
        plotted = r.plot()
        assert plotted.shape == image.shape and not np.array_equal(plotted, image)
        assert set(r.speed) == {"preprocess", "inference", "postprocess"}


def test_class_maps_follow_original_resolution(trained, tmp_path):
    """A non-square image of another size comes back with a class map of its own size."""
    image = np.random.default_rng(0).integers(0, 255, (90, 170, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "wide.png"), image)
    (r,) = YOLOSeg(trained).predict(tmp_path / "wide.png")
    assert r.semantic_mask.shape == (90, 170)
    (r,) = YOLOSeg(trained).predict(image)  # in-memory array
    assert r.semantic_mask.shape == (90, 170)


def test_plot_puts_a_legend_panel_on_large_images_only(trained):
    model = YOLOSeg(trained)
    (large,) = model.predict(np.zeros((240, 320, 3), np.uint8))
    corner = np.s_[-20:, 4:40]
    assert large.plot()[corner].mean() > large.plot(legend=False)[corner].mean() + 50  # translucent white panel
    (small,) = model.predict(np.zeros((120, 160, 3), np.uint8))
    assert np.array_equal(small.plot(), small.plot(legend=False))


def test_glob_source_and_repeated_calls_reuse_one_fused_model(trained, val_images):
    model = YOLOSeg(trained)
    assert len(model.predict(str(val_images / "*.jpg"))) == 4
    first = model.backend()
    model.predict(str(val_images / "0000.jpg"))
    assert model.backend() is first


def test_class_filter_by_name_and_id(trained, val_images):
    model = YOLOSeg(trained)
    everything = model.predict(val_images, conf=0.001)
    only_car = model.predict(val_images, conf=0.001, classes="car")
    assert all(set(r.boxes.cls.tolist()) <= {0.0} for r in only_car)
    assert sum(len(r) for r in only_car) == sum(int((r.boxes.cls == 0).sum()) for r in everything)
    assert [len(r) for r in model.predict(val_images, conf=0.001, classes=[0])] == [len(r) for r in only_car]


def test_cli_saves_images_masks_txt_and_json(trained, val_images, tmp_path):
    result = run(
        "predict", val_images, "--weights", trained, "--conf", "0.001", "--save-mask", "--save-txt", "--save-conf",
        "--json", "--project", tmp_path, "--name", "p",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Speed:" in result.output and "ms inference" in result.output
    out = tmp_path / "p"
    names = sorted(p.name for p in val_images.iterdir())
    assert sorted(p.name for p in out.glob("*.jpg")) == names
    for name in names:
        mask = cv2.imread(str(out / "masks" / Path(name).with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        assert mask.shape == cv2.imread(str(val_images / name)).shape[:2]
        rows = np.loadtxt(out / "labels" / Path(name).with_suffix(".txt"), ndmin=2)
        assert rows.shape[1] == 6 and (rows[:, 1:5] >= 0).all() and (rows[:, 1:5] <= 1).all()
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    assert {"source", "width", "height", "detections", "semantic", "speed_ms"} <= set(lines[0])
    assert {"class", "name", "confidence", "box"} <= set(lines[0]["detections"][0])


def test_cli_video_gives_annotated_video(trained, tmp_path):
    video = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (128, 96))
    for i in range(5):
        writer.write(np.full((96, 128, 3), 40 * i, np.uint8))
    writer.release()
    result = run("predict", video, "--weights", trained, "--save-mask", "--project", tmp_path, "--name", "v")
    assert result.exit_code == 0, result.output
    cap = cv2.VideoCapture(str(tmp_path / "v" / "drive.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (128, 96)
    cap.release()
    assert sorted(p.name for p in (tmp_path / "v" / "masks").iterdir()) == [f"drive_{i}.png" for i in range(1, 6)]


def test_cli_defaults_to_newest_run_and_example_image(trained, tmp_path):
    weights = tmp_path / "runs" / "train" / "weights"
    weights.mkdir(parents=True)
    shutil.copy(trained, weights / "best.pt")
    result = run("predict", "--project", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert "bus.jpg" in result.output
    assert (tmp_path / "runs" / "predict" / "bus.jpg").is_file()


def test_unreadable_images_are_skipped_and_counted(trained, val_images, tmp_path):
    folder = tmp_path / "mixed"
    shutil.copytree(val_images, folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    result = run("predict", folder, "--weights", trained, "--project", tmp_path, "--name", "m")
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image(s): broken.jpg" in result.output
    assert len(list((tmp_path / "m").glob("*.jpg"))) == 4


def test_imgsz_is_rounded_up_to_the_stride(trained, val_images):
    result = run("predict", val_images, "--weights", trained, "--imgsz", "70", "--no-save")
    assert result.exit_code == 0, result.output
    assert "using 96" in result.output and "(1, 3, 96, 96)" in result.output


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["missing.jpg"], ["does not exist"]),
        (["https://example.com/a.jpg"], ["URL", "offline"]),
        (["screen"], ["screen capture is not supported"]),
        (["7"], ["cannot open camera or stream 7"]),
        (["{notes}"], ["not a supported image or video", ".pdf"]),
        (["{images}", "--classes", "bicycle"], ["--classes", "bicycle", "car"]),
        (["{images}", "--classes", "7"], ["--classes", "no detection class 7"]),
        (["{images}", "--conf", "1.5"], ["--conf"]),
        (["{images}", "--device", "99"], ["--device 99", "Invalid CUDA"]),
        (["{images}", "--weights", "{notes}"], ["--weights", "not a PyTorch checkpoint"]),
    ],
)
def test_bad_input_is_one_line(trained, val_images, tmp_path, args, needles):
    notes = tmp_path / "notes.pdf"
    notes.write_bytes(b"%PDF")
    args = [str(a).format(images=val_images, notes=notes) for a in args]
    if "--weights" not in args:
        args += ["--weights", str(trained)]
    assert_one_line_error(run("predict", *args, "--project", tmp_path), *needles)


def test_no_weights_and_no_runs_is_one_line(tmp_path):
    assert_one_line_error(run("predict", "--project", tmp_path / "empty"), "--weights", "no trained run")


def test_network_input_is_the_letterboxed_rgb_image_over_255():
    """The shared pre-processing: RGB, channels first, float32 in 0-1, padded with Ultralytics' grey, exactly the
    bytes over 255 (what every backend was given before it flipped and transposed the bytes first)."""
    from ultralytics.data.augment import LetterBox

    from yoloseghw.data.inputs import network_input

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (90, 160, 3), dtype=np.uint8) for _ in range(2)]
    box = LetterBox((128, 128), auto=False)
    x = network_input(images, box)
    assert x.shape == (2, 3, 128, 128) and x.dtype == np.float32 and x.flags.c_contiguous
    padded = np.stack([box(image=im) for im in images])
    expected = np.ascontiguousarray(padded[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255
    assert np.array_equal(x, expected)
    assert (x[0, :, 0, 0] == np.float32(114) / 255).all()  # the letterbox's grey padding, in the top row
