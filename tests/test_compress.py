"""`yoloseg compress --method quantize|fp16`: INT8 and FP16 ONNX variants that run, agree with FP32, and say what
they are; bad input is one line with exit code 2 and overwrites nothing."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.helpers import assert_one_line_error, run
from yoloseghw import YOLOSeg
from yoloseghw.compress.quantize import LetterboxedImages, float_tail


@pytest.fixture(scope="module")
def weights(trained, tmp_path_factory) -> Path:
    """A private copy of the tiny best.pt (64 px), with its FP32 export beside it."""
    pt = Path(shutil.copy(trained, tmp_path_factory.mktemp("compress") / "best.pt"))
    assert run("export", "--weights", pt).exit_code == 0
    return pt


def outputs(path: Path, images: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(detections, class maps) of an ONNX file on letterboxed images, as at calibration."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reader, dets, maps = LetterboxedImages(images, (64, 64)), [], []
    while (x := reader.get_next()) is not None:
        det, seg = session.run(["detections", "semantic"], x)
        dets.append(det), maps.append(seg)
    return np.concatenate(dets), np.concatenate(maps)


def meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def train_images(tiny_pair) -> list[Path]:
    return [p for yaml in tiny_pair for p in sorted((yaml.parent / "images" / "train").iterdir())]


def test_quantize_writes_an_int8_model_that_runs_and_agrees_with_fp32(weights, tiny_pair):
    result = run("compress", "--weights", weights, "--method", "quantize", "--det", tiny_pair[0], "--seg", tiny_pair[1])
    assert result.exit_code == 0, result.output
    int8 = weights.with_name("best-int8.onnx")
    info = meta(int8)
    assert info["precision"] == "int8" and info["calibration"] == "16 images of both datasets, minmax"
    graph = onnx.load(str(int8)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ
    tail = set(float_tail(onnx.load(str(weights.with_suffix(".onnx")))))
    assert {"ArgMax", "Resize"} & {n.op_type for n in graph.node if n.name in tail}  # the semantic tail stays float
    det32, map32 = outputs(weights.with_suffix(".onnx"), train_images(tiny_pair))
    det8, map8 = outputs(int8, train_images(tiny_pair))
    # stated tolerance on calibration-like input: 95% of class-map pixels identical; box and score outputs within
    # 1% of their range on average
    assert (map8 == map32).mean() >= 0.95
    assert np.abs(det8 - det32).mean() <= 0.01 * (det32.max() - det32.min())
    assert "int8" in run("info", int8).output
    (r,) = YOLOSeg(int8).predict(np.zeros((70, 90, 3), np.uint8))
    assert r.semantic_mask.shape == (70, 90)


def test_fp16_halves_the_file_and_agrees_with_fp32(weights, tiny_pair):
    result = run("compress", "--weights", weights, "--method", "fp16")
    assert result.exit_code == 0, result.output
    fp16, fp32 = weights.with_name("best-fp16.onnx"), weights.with_suffix(".onnx")
    assert meta(fp16)["precision"] == "fp16" and "precision" not in meta(fp32)
    assert fp16.stat().st_size < 0.6 * fp32.stat().st_size
    det32, map32 = outputs(fp32, train_images(tiny_pair))
    det16, map16 = outputs(fp16, train_images(tiny_pair))
    assert (map16 == map32).mean() >= 0.99
    assert np.abs(det16 - det32).mean() <= 0.001 * (det32.max() - det32.min())


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--method", "quantize"], ["give --det and --seg"]),
        (["--method", "zip"], ["unknown method 'zip'", "quantize, fp16"]),
        (["--method", "quantize", "--calib", "0", "DATA"], ["--calib must be at least 1"]),
        (["--method", "quantize", "--calib-method", "mean", "DATA"], ["--calib-method"]),
        (["--method", "quantize", "--keep-float", "/no/such/node", "DATA"], ["no node named /no/such/node"]),
        (["--method", "fp16", "EXISTS"], ["exists; give --force"]),
    ],
)
def test_compress_bad_input_is_one_line_and_overwrites_nothing(weights, tiny_pair, tmp_path, args, needles):
    pt = Path(shutil.copy(weights, tmp_path / "w.pt"))
    earlier = tmp_path / "w-fp16.onnx"
    expected = ["w.pt"]
    if "EXISTS" in args:
        earlier.write_bytes(b"an earlier file")
        expected.append(earlier.name)
    data = ["--det", str(tiny_pair[0]), "--seg", str(tiny_pair[1])]
    args = [a for arg in args if arg != "EXISTS" for a in (data if arg == "DATA" else [arg])]
    assert_one_line_error(run("compress", "--weights", pt, *args), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    if earlier.name in expected:
        assert earlier.read_bytes() == b"an earlier file"


def test_compress_refuses_an_onnx_file_and_a_checkpoint_that_is_not_yoloseg(weights, tmp_path):
    assert_one_line_error(run("compress", "--weights", weights.with_suffix(".onnx"), "--method", "fp16"), "not a")
    bogus = tmp_path / "notes.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert_one_line_error(run("compress", "--weights", bogus, "--method", "fp16"), str(bogus))


def test_bench_writes_json_csv_and_png_with_every_column_filled(weights, tiny_pair, tmp_path):
    pt = Path(shutil.copy(weights, tmp_path / "m.pt"))
    assert run("export", "--weights", pt).exit_code == 0
    assert run("compress", "--weights", pt, "--method", "fp16").exit_code == 0
    assert run("compress", "--weights", pt, "--method", "prune", "--ratio", "0.3").exit_code == 0
    args = ["--det", tiny_pair[0], "--seg", tiny_pair[1], "--runs", "4", "--rounds", "2", "--batch", "2"]
    result = run("bench", "--weights", pt, *args, "--baseline", "--project", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    out = tmp_path / "runs" / "bench"
    data = json.loads((out / "bench.json").read_text())
    assert [v["variant"] for v in data["variants"]] == ["PyTorch FP32", "ONNX FP32", "ONNX FP16", "PyTorch m-prune30"]
    assert data["variants"][3]["params"] < data["variants"][0]["params"]  # the pruned model's own size
    keys = {"size_mb", "params", "GFLOPs", "p50_ms", "p90_ms", "preprocess_ms", "inference_ms", "postprocess_ms"}
    keys |= {"images_per_s", "metrics/mAP50-95(B)", "metrics/mAP50(B)", "metrics/mIoU", "metrics/pixel_acc"}
    for row in data["variants"]:
        assert keys <= set(row) and all(row[k] is not None for k in keys), row
    assert set(data["variants"][1]["change"]) >= {"p50_ms", "metrics/mIoU"}
    stock = ["stock detector", "stock detector (OpenVINO)", "stock semantic", "stock semantic (OpenVINO)"]
    assert [b["variant"] for b in data["baseline"]] == stock  # both runtimes (OpenVINO: the test extra has it)
    with open(out / "bench.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and all(all(v != "" for k, v in r.items() if k in keys) for r in rows[:4])
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "yoloseg bench" in result.output and "bench.json" in result.output


def test_bench_bad_input_is_one_line_and_writes_nothing(weights, tiny_pair, tmp_path):
    args = ["--det", tiny_pair[0], "--seg", tiny_pair[1], "--project", tmp_path / "runs"]
    missing = tmp_path / "nowhere-int8.onnx"
    assert_one_line_error(run("bench", "--weights", weights, *args, "--variant", missing), "not found", missing.name)
    assert_one_line_error(run("bench", "--weights", weights.with_suffix(".onnx"), *args), "not a checkpoint (.pt)")
    assert_one_line_error(run("bench", "--weights", weights, *args, "--runs", "0"), "at least 1")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "family, criterion, seg_head",
    [("yolov8n", "l1", "conv"), ("yolo11n", "bn", "separable"), ("yolo26n", "l2", "conv")],
)
def test_prune_makes_a_smaller_dense_model_that_trains_validates_and_exports(
    family, criterion, seg_head, tiny_pair, tmp_path
):
    """C2f (v8), C3k2 + C2PSA attention (11, 26), YOLO26's end-to-end head and both semantic heads: fewer params and
    GFLOPs, both heads keep their class counts, and the pruned module itself (not a yaml rebuild) trains, predicts
    and exports."""
    import torch
    from ultralytics.utils.torch_utils import get_flops

    from yoloseghw.engine.checkpoint import load_model, write_checkpoint
    from yoloseghw.nn.tasks import DetSegModel, load_model_cfg

    model = DetSegModel({**load_model_cfg(family), "seg_head": seg_head}, nc=3, seg_nc=5, verbose=False)
    model.names, model.seg_names = {0: "car", 1: "person", 2: "sign"}, dict(enumerate("abcde"))
    pt = tmp_path / "base.pt"
    write_checkpoint(pt, {"model": model, "train_args": {"imgsz": 64}})
    params, gflops = sum(p.numel() for p in model.parameters()), get_flops(model, 64)
    widths = {name: m.out_channels for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    result = run("compress", "--weights", pt, "--method", "prune", "--ratio", "0.3", "--criterion", criterion)
    assert result.exit_code == 0, result.output
    assert "not fine-tuned" in result.output
    pruned, _ = load_model(tmp_path / "base-prune30.pt")
    assert sum(p.numel() for p in pruned.parameters()) < 0.85 * params
    removed = 1 - get_flops(pruned, 64) / gflops  # the achievable share nearest to 30% (channels move in 16s)
    assert 0.2 < removed < 0.45 and f"({removed:.1%} removed, asked 30%)" in result.output
    pruned_widths = [(n, m.out_channels) for n, m in pruned.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c % 16 == 0 or c == widths.get(n) for n, c in pruned_widths), "a pruned width not in 16s"
    assert pruned.model[-1].nc == 3 and pruned.semantic.classifier[-1].out_channels == 5
    tuned = YOLOSeg(tmp_path / "base-prune30.pt")
    tuned.train(
        det=tiny_pair[0], seg=tiny_pair[1], project=tmp_path, name="tune", epochs=1, imgsz=64, batch=4, plots=False
    )
    best, _ = load_model(tmp_path / "tune" / "weights" / "best.pt")
    assert sum(p.numel() for p in best.parameters()) == sum(p.numel() for p in pruned.parameters())
    onnx_path = YOLOSeg(tmp_path / "tune" / "weights" / "best.pt").export()
    (r,) = YOLOSeg(onnx_path).predict(np.zeros((70, 90, 3), np.uint8))
    assert r.semantic_mask.shape == (70, 90)


def test_prune_in_steps_fine_tunes_after_each_round(weights, tiny_pair, tmp_path):
    pt = Path(shutil.copy(weights, tmp_path / "m.pt"))
    data = ["--det", tiny_pair[0], "--seg", tiny_pair[1], "--steps", "2", "--finetune-epochs", "2", "--batch", "4"]
    result = run("compress", "--weights", pt, "--method", "prune", "--ratio", "0.2", *data)
    assert result.exit_code == 0, result.output
    assert "not fine-tuned" not in result.output
    for run_dir in ("m-prune20-finetune", "m-prune20-finetune-2"):  # one fine-tuning run per round
        assert (tmp_path / run_dir / "weights" / "best.pt").is_file()
    assert YOLOSeg(tmp_path / "m-prune20.pt").ckpt["train_metrics"]  # the fine-tuned checkpoint, with its metrics


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--ratio", "1.5"], ["--ratio", "between 0 and 1"]),
        (["--ratio", "0"], ["--ratio"]),
        (["--criterion", "random"], ["--criterion", "l1, l2, bn"]),
        (["--steps", "0"], ["--steps must be at least 1"]),
    ],
)
def test_prune_bad_input_is_one_line(weights, tmp_path, args, needles):
    pt = Path(shutil.copy(weights, tmp_path / "w.pt"))
    assert_one_line_error(run("compress", "--weights", pt, "--method", "prune", *args), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]


def test_prune_refuses_an_onnx_file(weights):
    assert_one_line_error(run("compress", "--weights", weights.with_suffix(".onnx"), "--method", "prune"), "not a")
