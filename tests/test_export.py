"""`yoloseg export` to ONNX, parity with PyTorch, and the ONNX Runtime backend for predict and val."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tests.helpers import assert_one_line_error, run
from yoloseghw import YOLOSeg
from yoloseghw.engine.checkpoint import load_model, write_checkpoint
from yoloseghw.engine.parity import agrees, compare_predictions
from yoloseghw.nn.backends import OnnxBackend, TorchBackend
from yoloseghw.nn.semantic_output import DEFAULT_SEMANTIC_OUTPUT, SemanticOutput
from yoloseghw.nn.tasks import build_model


@pytest.fixture(scope="module")
def weights(trained, tmp_path_factory) -> Path:
    """A private copy of the tiny best.pt, so exports land in their own folder."""
    folder = tmp_path_factory.mktemp("export")
    return Path(shutil.copy(trained, folder / "best.pt"))


@pytest.fixture(scope="module")
def onnx_file(weights) -> Path:
    result = run("export", "--weights", weights)
    assert result.exit_code == 0, result.output
    return weights.with_suffix(".onnx")


@pytest.fixture(scope="module")
def val_images(tiny_pair) -> Path:
    return tiny_pair[0].parent / "images" / "val"


def _meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_export_has_named_outputs_and_self_describing_metadata(onnx_file, weights):
    model, _ = load_model(weights)
    graph = onnx.load(str(onnx_file)).graph
    assert [o.name for o in graph.output] == ["detections", "semantic"]
    semantic = graph.output[1].type.tensor_type
    default = SemanticOutput.parse(DEFAULT_SEMANTIC_OUTPUT)
    assert semantic.elem_type == onnx.TensorProto.UINT8 and default.classmap
    assert [d.dim_value for d in semantic.shape.dim] == [1, 64 // default.stride, 64 // default.stride]
    meta = _meta(onnx_file)
    assert eval(meta["det_names"]) == model.det_names and eval(meta["seg_names"]) == model.seg_names
    assert meta["imgsz"] == "[64, 64]" and meta["stride"] == "32" and meta["family"] == "yolo26n"
    assert meta["yoloseg"] and meta["semantic_output"] == DEFAULT_SEMANTIC_OUTPUT


def test_onnx_matches_pytorch_on_raw_outputs(onnx_file, weights):
    """Same letterboxed input: detection tensors agree to float precision, class maps pixel for pixel (>= 99.5%)."""
    model, _ = load_model(weights)
    torch_backend, onnx_backend = TorchBackend(model, "cpu", fuse=True), OnnxBackend(onnx_file, "cpu", threads=1)
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    (det_pt, _), logits = torch_backend(img)
    det_ort, classmap = onnx_backend(img)
    assert torch.allclose(det_pt, det_ort, atol=1e-3, rtol=1e-3)
    expected = SemanticOutput.parse(DEFAULT_SEMANTIC_OUTPUT)(logits)
    assert expected.shape == classmap.shape and (expected == classmap).float().mean() >= 0.995


def test_onnx_predictions_agree_with_pytorch(onnx_file, weights, val_images):
    pt = YOLOSeg(weights).predict(val_images, conf=0.001)  # a 1-epoch model scores below 0.01
    ox = YOLOSeg(onnx_file).predict(val_images, conf=0.001, threads=1)
    report = compare_predictions(pt, ox, min_conf=0.001)
    assert report["boxes"] > 0, report  # the comparison must have boxes to compare
    assert agrees(report), report
    assert report["lowest_matched_iou"] > 0.99


@pytest.mark.parametrize("family", ["yolov8n", "yolo11n"])
def test_other_families_export_and_agree(family, tmp_path, val_images):
    """Untrained YOLOv8 / YOLO11 joint models: the export agrees with PyTorch box for box and pixel for pixel."""
    model = build_model(family, det_nc=3, seg_nc=5)
    weights = tmp_path / f"{family}.pt"
    write_checkpoint(weights, {"model": model.half(), "train_args": {"imgsz": 64}})
    pt = YOLOSeg(weights)
    report = pt.compare_with(pt.export(), val_images, conf=0.001)
    assert report["boxes"] > 0 and agrees(report), report


def test_export_verify_flag_reports_agreement(weights, val_images):
    result = run("export", "--weights", weights, "--verify", val_images, "--force")  # the module exported it before
    assert result.exit_code == 0, result.output
    assert "Verified on 4 images" in result.output and "of mask pixels identical" in result.output


def test_dynamic_logits_export_runs_other_sizes(weights, tmp_path):
    dynamic = Path(shutil.copy(weights, tmp_path / "dyn.pt"))
    result = run("export", "--weights", dynamic, "--dynamic", "--semantic", "logits", "--simplify")
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(tmp_path / "dyn.onnx"), providers=["CPUExecutionProvider"])
    det, seg = session.run(None, {"images": np.random.rand(2, 3, 96, 128).astype(np.float32)})
    assert det.shape[0] == 2 and seg.shape == (2, 5, 96, 128) and seg.dtype == np.float32
    (r,) = YOLOSeg(tmp_path / "dyn.onnx").predict(np.zeros((70, 90, 3), np.uint8), imgsz=96)
    assert r.semantic_mask.shape == (70, 90)


def test_dynamic_export_reproduces_pytorch_val(weights, tiny_pair, tmp_path):
    """Rectangular batches of 4 through a dynamic ONNX file give PyTorch's metrics."""
    dynamic = Path(shutil.copy(weights, tmp_path / "dyn.pt"))
    YOLOSeg(dynamic).export(dynamic=True, semantic="logits8")  # the head's own output, as PyTorch val reads it
    det, seg = tiny_pair
    pt = YOLOSeg(dynamic).val(det=det, seg=seg, batch=4, verbose=False)["metrics"]
    ox = YOLOSeg(tmp_path / "dyn.onnx").val(det=det, seg=seg, batch=4, threads=1, verbose=False)["metrics"]
    for key, value in pt.items():
        assert ox[key] == pytest.approx(value, abs=2e-3), key


def test_onnx_predict_cli_and_static_size_warning(onnx_file, val_images, tmp_path):
    result = run(
        "predict", val_images, "--weights", onnx_file, "--threads", "1", "--imgsz", "128", "--save-mask",
        "--project", tmp_path, "--name", "o",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--imgsz 128 ignored" in result.output and "(ONNX Runtime)" in result.output
    assert len(list((tmp_path / "o" / "masks").glob("*.png"))) == 4


def test_onnx_val_matches_pytorch_val(onnx_file, weights, tiny_pair):
    det, seg = tiny_pair
    pt = YOLOSeg(weights).val(det=det, seg=seg, batch=1, verbose=False)["metrics"]
    ox = YOLOSeg(onnx_file).val(det=det, seg=seg, threads=1, verbose=False)["metrics"]
    assert abs(pt["metrics/mIoU"] - ox["metrics/mIoU"]) < 0.02
    assert abs(pt["metrics/pixel_acc"] - ox["metrics/pixel_acc"]) < 0.02
    assert abs(pt["metrics/mAP50(B)"] - ox["metrics/mAP50(B)"]) < 0.05
    result = run("val", "--weights", onnx_file, "--det", det, "--seg", seg, "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output


def test_onnx_session_is_reused_per_device_and_threads(onnx_file):
    model = YOLOSeg(onnx_file)
    one = model.backend("cpu", threads=1)
    assert model.backend("cpu", threads=1) is one
    assert model.backend("cpu", threads=2) is not one
    assert model.backend("", threads=2) is not model.backend("cpu", threads=2)


def test_onnx_info_and_no_training(onnx_file):
    result = run("info", onnx_file)
    assert result.exit_code == 0, result.output
    assert "detect" in result.output and "(1, 3, 64, 64)" in result.output
    with pytest.raises(Exception, match="cannot be trained"):
        YOLOSeg(onnx_file).train()


def test_plain_onnx_without_metadata_is_one_line(tmp_path, val_images):
    node = onnx.helper.make_node("Identity", ["images"], ["output0"])
    graph = onnx.helper.make_graph(
        [node],
        "plain",
        [onnx.helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [1, 3, 64, 64])],
        [onnx.helper.make_tensor_value_info("output0", onnx.TensorProto.FLOAT, [1, 3, 64, 64])],
    )
    plain = tmp_path / "plain.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(plain))
    assert_one_line_error(run("predict", val_images, "--weights", plain), "no yoloseg metadata")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not onnx at all")
    assert_one_line_error(run("predict", val_images, "--weights", garbage), "not a loadable ONNX model")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--semantic", "probs"], ["--semantic", "classmap"]),
        (["--format", "engine"], ["--format: expected onnx or openvino", "engine"]),
        (["--opset", "9"], ["--opset", "11"]),
        (["--verify", "nowhere/"], ["--verify: nowhere/ does not exist"]),
    ],
)
def test_export_bad_input_is_one_line_and_keeps_an_earlier_export(weights, tmp_path, args, needles):
    pt = Path(shutil.copy(weights, tmp_path / "w.pt"))
    (tmp_path / "w.onnx").write_bytes(b"earlier export")
    result = run("export", "--weights", pt, *args)
    assert_one_line_error(result, *needles)
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".onnx"] == ["w.onnx"]
    assert (tmp_path / "w.onnx").read_bytes() == b"earlier export"


def test_export_needs_a_checkpoint(onnx_file):
    assert_one_line_error(run("export", "--weights", onnx_file), "--weights", "not a checkpoint (.pt)")
