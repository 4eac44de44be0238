"""OpenVINO: export of every semantic output kind, the third backend (predict, val, info, bench), parity with
PyTorch, NNCF INT8 against FP32, low-rank factorization, and bad input as one line."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import assert_one_line_error, run
from yoloseghw import YOLOSeg
from yoloseghw.compress.benchmark import find_variants, model_stem, variant_name
from yoloseghw.compress.openvino_int8 import fuse_silu, nncf_warnings_only
from yoloseghw.data.inputs import letterboxed

pytest.importorskip("openvino", reason="the OpenVINO extra is not installed")


@pytest.fixture(scope="module")
def weights(trained, tmp_path_factory) -> Path:
    """A private copy of the tiny best.pt (64 px)."""
    return Path(shutil.copy(trained, tmp_path_factory.mktemp("openvino") / "best.pt"))


def outputs(model: YOLOSeg, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(detections, semantic outputs) of an exported model's backend on letterboxed inputs."""
    backend = model.backend("cpu", 1)
    dets, maps = zip(*(backend(torch.from_numpy(x)) for x in images))
    return torch.cat(dets).numpy(), torch.cat(maps).numpy()


@pytest.mark.parametrize("kind", ["classmap4", "classmap", "logits8"])
def test_each_kind_exports_to_openvino_predicts_at_the_original_size_and_matches_pytorch(weights, tiny_pair, kind):
    pt = Path(shutil.copy(weights, weights.with_name(f"{kind}.pt")))
    xml = YOLOSeg(pt).export("openvino", semantic=kind)
    assert xml == pt.with_name(f"{kind}_openvino_model") / f"{kind}.xml" and xml.with_suffix(".bin").is_file()
    model = YOLOSeg(xml.parent)
    assert model.exported.kind == "OpenVINO" and model.exported.semantic_output.name == kind
    info = model.info()
    assert info["precision"] == "fp32" and info["semantic output"] == kind and "OpenVINO CPU" in info["providers"]
    (r,) = model.predict(np.zeros((70, 90, 3), np.uint8), threads=1)
    assert r.semantic_mask.shape == (70, 90)
    images = tiny_pair[1].parent / "images" / "val"
    report = YOLOSeg(pt).compare_with(xml, images, conf=0.001, threads=1)  # PyTorch computes the same kind
    assert report["mask_agreement"] >= 0.995 and report["box_match_rate"] == 1.0, report


def test_openvino_val_matches_onnx_runtime(weights, tiny_pair):
    onnx_file = YOLOSeg(weights).export(force=True)
    xml = YOLOSeg(weights).export("openvino", force=True)
    a = YOLOSeg(onnx_file).val(*tiny_pair, threads=1, verbose=False)["metrics"]
    b = YOLOSeg(xml).val(*tiny_pair, threads=1, verbose=False)["metrics"]
    assert b == pytest.approx(a, abs=1e-3)


def test_nncf_int8_runs_and_agrees_with_fp32(weights, tiny_pair):
    """Stated tolerance on calibration-like input: 90% of class-map pixels identical; box and score outputs within
    2% of their range on average."""
    args = ["--method", "quantize", "--runtime", "openvino", "--det", tiny_pair[0], "--seg", tiny_pair[1]]
    result = run("compress", "--weights", weights, *args)
    assert result.exit_code == 0, result.output
    int8 = weights.with_name("best-int8_openvino_model")
    fp32 = YOLOSeg(weights).export("openvino", force=True)
    model = YOLOSeg(int8)
    calibration = model.exported.metadata.get("calibration", "")
    assert model.exported.metadata["precision"] == "int8" and "NNCF mixed, min-max ranges" in calibration
    ops = {layer.get("type") for layer in ET.parse(next(int8.glob("*.xml"))).getroot().iter("layer")}
    assert "FakeQuantize" in ops or "FakeConvert" in ops  # quantized
    assert "Swish" in ops and silu_pairs(next(int8.glob("*.xml"))) == 0  # each SiLU one op, inside its INT8 conv
    images = letterboxed([p for y in tiny_pair for p in sorted((y.parent / "images/train").iterdir())], 64)
    det32, map32 = outputs(YOLOSeg(fp32), images)
    det8, map8 = outputs(model, images)
    assert (map8 == map32).mean() >= 0.90
    assert np.abs(det8 - det32).mean() <= 0.02 * (det32.max() - det32.min())


def test_bf16_float_parts_are_stored_run_where_the_cpu_has_bfloat16_and_agree_with_fp32(
    weights, tiny_pair, monkeypatch
):
    """`--float-precision bf16`: its own folder, the choice in the metadata, OpenVINO compiling the float parts in
    bf16 on a CPU with bfloat16 (f32 on others, said by `info`), the bench naming it, and outputs within the INT8
    test's tolerance of FP32."""
    import yoloseghw.nn.openvino as ov_backend

    args = ["--method", "quantize", "--runtime", "openvino", "--det", tiny_pair[0], "--seg", tiny_pair[1]]
    result = run("compress", "--weights", weights, *args, "--float-precision", "bf16", "--calib", "8")
    assert result.exit_code == 0, result.output
    folder = weights.with_name("best-int8-bf16_openvino_model")
    model = YOLOSeg(folder)
    backend = model.backend("cpu", 1)
    assert backend.metadata["float_precision"] == "bf16" and backend.metadata["precision"] == "int8"
    expected = "bf16" if ov_backend.cpu_has_bf16() else "f32"
    assert backend.float_precision == expected
    assert backend.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == expected
    assert model.info()["float parts"].startswith(expected)
    images = letterboxed([p for y in tiny_pair for p in sorted((y.parent / "images/train").iterdir())], 64)
    det32, map32 = outputs(YOLOSeg(YOLOSeg(weights).export("openvino", force=True)), images)
    det16, map16 = outputs(model, images)
    assert (map16 == map32).mean() >= 0.90
    assert np.abs(det16 - det32).mean() <= 0.02 * (det32.max() - det32.min())
    assert folder in find_variants(weights, []) and model_stem(folder.with_name("best-prune30" + folder.name[4:])) == (
        "best-prune30"
    )
    assert variant_name(model, folder, weights) == ("OpenVINO INT8+bf16" if expected == "bf16" else "OpenVINO INT8")

    monkeypatch.setattr(ov_backend, "cpu_has_bf16", lambda: False)  # a CPU without bfloat16
    elsewhere = YOLOSeg(folder)
    assert elsewhere.backend("cpu", 1).float_precision == "f32"
    assert elsewhere.info()["float parts"] == "f32 (bf16 asked; this CPU has no bfloat16)"


def test_float_precision_bad_input_is_one_line(weights, tiny_pair, tmp_path):
    data = ["--det", tiny_pair[0], "--seg", tiny_pair[1]]
    quantize = ["compress", "--weights", weights, "--method", "quantize", *data]
    assert_one_line_error(run(*quantize, "--runtime", "openvino", "--float-precision", "fp8"), "expected f32 or bf16")
    assert_one_line_error(run(*quantize, "--float-precision", "bf16"), "give --method quantize --runtime openvino")
    xml = YOLOSeg(weights).export("openvino", force=True)
    tampered = tmp_path / "t_openvino_model"
    shutil.copytree(xml.parent, tampered)
    text = (tampered / xml.name).read_text().replace("<precision ", '<float_precision value="fp8" /><precision ')
    (tampered / xml.name).write_text(text)
    assert_one_line_error(run("info", tampered), "damaged yoloseg metadata", "float_precision 'fp8'")


def silu_pairs(xml: Path) -> int:
    """How many `Multiply(x, Sigmoid(x))` SiLUs an OpenVINO IR still spells as two ops."""
    import openvino as ov

    pairs = 0
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_type_name() == "Multiply":
            sources = [port.get_source_output() for port in op.inputs()]
            gates = [s.get_node() for s in sources if s.get_node().get_type_name() == "Sigmoid"]
            pairs += any(gate.input(0).get_source_output() in sources for gate in gates)
    return pairs


def test_fuse_silu_makes_each_sigmoid_times_its_input_one_swish_with_the_same_output():
    import openvino as ov

    x = ov.opset13.parameter([1, 4, 3, 3], np.float32, name="x")
    silu = ov.opset13.multiply(ov.opset13.sigmoid(x), x)
    silu.set_friendly_name("act/Mul")
    other = ov.opset13.multiply(ov.opset13.sigmoid(x), ov.opset13.add(x, np.float32(1)))  # not a SiLU: kept
    model = ov.Model([silu, other], [x])
    data = np.random.default_rng(0).normal(size=(1, 4, 3, 3)).astype(np.float32)
    before = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(data)
    assert fuse_silu(model) == 1
    types = [op.get_type_name() for op in model.get_ordered_ops()]
    assert types.count("Swish") == 1 and types.count("Sigmoid") == 1
    assert any(op.get_type_name() == "Swish" and op.get_friendly_name() == "act/Mul" for op in model.get_ops())
    after = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(data)
    for a, b in zip(before.values(), after.values()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def feeding_layers(xml: Path, name: str) -> set[str]:
    """The types of the layers that feed the layer `name` of an OpenVINO IR."""
    root = ET.parse(xml).getroot()
    layers = {layer.get("id"): layer for layer in root.iter("layer")}
    (target,) = (i for i, layer in layers.items() if layer.get("name") == name)
    return {layers[e.get("from-layer")].get("type") for e in root.iter("edge") if e.get("to-layer") == target}


def test_keep_float_keeps_the_convolution_itself_in_float(weights, tiny_pair, tmp_path):
    """OpenVINO splits an ONNX Conv N with a bias into the Convolution `N/WithoutBiases` and an Add N: keeping N in
    float must reach the Convolution (its input and weights unquantized), while the next one stays INT8."""
    pt = Path(shutil.copy(weights, tmp_path / "best.pt"))
    stem = "/model/model.0/conv/Conv"
    args = ["--method", "quantize", "--runtime", "openvino", "--det", tiny_pair[0], "--seg", tiny_pair[1]]
    result = run("compress", "--weights", pt, *args, "--keep-float", stem)
    assert result.exit_code == 0, result.output
    xml = tmp_path / "best-int8_openvino_model" / "best-int8.xml"
    assert feeding_layers(xml, f"{stem}/WithoutBiases") == {"Parameter", "Const"}
    assert "FakeQuantize" in feeding_layers(xml, "/model/model.1/conv/Conv/WithoutBiases")


def test_accuracy_aware_validation_ranks_layers_by_outputs_and_scores_the_lower_task_share(weights, tiny_pair):
    """The validation function gives NNCF the lower task share and one output list per check image, which puts
    NNCF's Evaluator in its output mode (layers ranked by output error, not by a full validation per layer)."""
    from types import SimpleNamespace

    from nncf import Dataset
    from nncf.quantization.algorithms.accuracy_control.evaluator import Evaluator

    from yoloseghw.compress.openvino_int8 import AccuracyControl, compiled_cpu, validation_function
    from yoloseghw.nn.openvino import openvino_core
    from yoloseghw.utils.metrics import MAP50_95, MIOU

    xml = YOLOSeg(weights).export("openvino", force=True)
    model = openvino_core().read_model(str(xml))
    checks = letterboxed([p for y in tiny_pair for p in sorted((y.parent / "images/val").iterdir())], 64)
    control = AccuracyControl(lambda compiled: {MAP50_95: 0.3, MIOU: 0.45}, [], 0.02)
    validate = validation_function(control, {MAP50_95: 0.5, MIOU: 0.5})
    compiled = compiled_cpu(model)  # through the process's one Core (NNCF's own prepared model makes another)
    share, outputs = validate(compiled, checks)
    assert share == pytest.approx(0.6) and len(outputs) == len(checks) == 8
    assert [o.shape for o in outputs[0]] == [o.shape for o in outputs[-1]] and len(outputs[0]) == 2
    assert not np.array_equal(outputs[0][0], outputs[1][0])  # each image's own outputs, not a reused buffer
    assert Evaluator.determine_mode(SimpleNamespace(model_for_inference=compiled), Dataset(checks), validate) is False


def test_accuracy_aware_cli_reports_what_the_int8_model_keeps(weights, tiny_pair):
    """The share of FP32's mIoU that the command prints and stores is the one `yoloseg val` measures (the tiny
    model's mAP50-95 is 0, so mIoU is the task that counts); a --max-drop outside (0, 1) is one line. The command
    runs in a process of its own: NNCF's accuracy control compiles each candidate through OpenVINO Cores of its own,
    which leave this process open to the signal-stack crash that openvino_core() avoids (nn/openvino.py)."""
    pt = Path(shutil.copy(weights, weights.with_name("aa.pt")))
    args = ["--det", tiny_pair[0], "--seg", tiny_pair[1], "--calib", "8", "--accuracy-aware", "--max-drop"]
    command = ["compress", "--weights", pt, "--method", "quantize", "--runtime", "openvino", *args]
    assert_one_line_error(run(*command, "1.5"), "--max-drop must be between 0 and 1")
    env = {**os.environ, "COLUMNS": "200"}
    cli = [sys.executable, "-m", "yoloseghw", *map(str, command), "0.02"]
    result = subprocess.run(cli, capture_output=True, text=True, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "NNCF accuracy-aware INT8 (at most 2% lost per task)" in output, output
    int8 = YOLOSeg(pt.with_name("aa-int8_openvino_model"))
    fp32 = YOLOSeg(YOLOSeg(pt).export("openvino", force=True))
    measured = [m.val(*tiny_pair, threads=1, verbose=False)["metrics"]["metrics/mIoU"] for m in (int8, fp32)]
    calibration = int8.exported.metadata["calibration"]
    assert f"accuracy-aware: mIoU {measured[0] / measured[1]:.1%} of FP32's" in calibration, (calibration, measured)
    assert f"mIoU {measured[0] / measured[1]:.1%}" in output


def test_kept_share_is_the_lower_tasks_share_of_the_reference():
    from yoloseghw.compress.openvino_int8 import kept_share
    from yoloseghw.utils.metrics import MAP50_95, MIOU

    assert kept_share({MAP50_95: 0.5, MIOU: 0.9}, {MAP50_95: 1.0, MIOU: 1.0}) == 0.5
    assert kept_share({MAP50_95: 0.0, MIOU: 0.45}, {MAP50_95: 0.0, MIOU: 0.5}) == 0.9  # a task scoring 0 in FP32
    assert kept_share({MAP50_95: 0.0, MIOU: 0.0}, {MAP50_95: 0.0, MIOU: 0.0}) == 1.0


def test_nncf_logs_only_warnings_while_it_quantizes():
    nncf = pytest.importorskip("nncf")
    logger = logging.getLogger("nncf")
    before = logger.level
    with nncf_warnings_only(nncf):
        assert not logger.isEnabledFor(logging.INFO) and logger.isEnabledFor(logging.WARNING)
    assert logger.level == before


def test_bench_lists_the_openvino_variants_with_every_column(weights, tiny_pair, tmp_path):
    YOLOSeg(weights).export("openvino", force=True)
    result = YOLOSeg(weights).bench(*tiny_pair, runs=4, rounds=2, batch=2, project=tmp_path)
    names = [row["variant"] for row in result["variants"]]
    assert "OpenVINO FP32" in names
    for row in result["variants"]:
        for key in ("size_mb", "p50_ms", "p90_ms", "images_per_s", "metrics/mAP50-95(B)", "metrics/mIoU"):
            assert row[key] is not None and row[key] == row[key], (row["variant"], key)
    assert (tmp_path / "bench" / "bench.png").stat().st_size > 0


def test_lowrank_keeps_both_heads_trains_a_step_and_exports(weights, tiny_pair, tmp_path):
    from yoloseghw.compress.lowrank import FactorizedConv

    pt = Path(shutil.copy(weights, tmp_path / "w.pt"))
    args = ["--method", "lowrank", "--rank", "0.5", "--min-gain", "0", "--max-error", "1.0"]
    result = run("compress", "--weights", pt, *args, "--det", tiny_pair[0], "--seg", tiny_pair[1],
                 "--finetune-epochs", "1", "--batch", "4")  # fmt: skip
    assert result.exit_code == 0, result.output
    model = YOLOSeg(tmp_path / "w-lowrank50.pt")
    factorized = [m for m in model.model.modules() if isinstance(m, FactorizedConv)]
    assert factorized and all(
        m.pre.out_channels < m.conv.out_channels or m.pre.out_channels % 8 == 0 for m in factorized
    )
    assert model.model.model[-1].nc == len(model.det_names) and model.model.semantic.nc == len(model.seg_names)
    assert (tmp_path / "w-lowrank50-finetune" / "weights" / "best.pt").is_file()  # it trained
    onnx_file = model.export()
    (r,) = YOLOSeg(onnx_file).predict(np.zeros((50, 60, 3), np.uint8))
    assert r.semantic_mask.shape == (50, 60)


def test_a_factorized_convolution_is_the_same_function_at_full_rank():
    from ultralytics.nn.modules import Conv

    from yoloseghw.compress.lowrank import FactorizedConv

    torch.manual_seed(0)
    conv = Conv(16, 24, 3).eval()
    x = torch.rand(1, 16, 10, 10)
    full = FactorizedConv(conv, 24).eval()
    assert torch.allclose(full(x), conv(x), atol=1e-4)
    assert FactorizedConv(conv, 8).pre.out_channels == 8


@pytest.mark.parametrize("min_gain", [0.0, 1.0, 1.1])
def test_lowrank_takes_a_gain_of_zero_or_at_least_one(min_gain):
    from yoloseghw.compress.lowrank import check_options

    check_options(0.5, 0.5, min_gain)


OUT_OF_RANGE = [(0, 0.5, 1.1), (1, 0.5, 1.1), (0.5, 0, 1.1), (0.5, 1.5, 1.1), (0.5, 0.5, 0.5), (0.5, 0.5, -1)]


@pytest.mark.parametrize("rank, max_error, min_gain", [*OUT_OF_RANGE, (0.5, 0.5, float("nan"))])
def test_lowrank_options_out_of_range_are_user_errors(rank, max_error, min_gain):
    from yoloseghw.compress.lowrank import check_options
    from yoloseghw.utils.errors import UserInputError

    with pytest.raises(UserInputError):
        check_options(rank, max_error, min_gain)


def test_openvino_bad_input_is_one_line(weights, tmp_path):
    xml = YOLOSeg(weights).export("openvino", force=True)
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(xml, lone / "m.xml")  # without its .bin
    assert_one_line_error(run("info", lone / "m.xml"), "has no m.bin beside it")
    tampered = tmp_path / "t_openvino_model"
    shutil.copytree(xml.parent, tampered)
    text = (tampered / xml.name).read_text().replace('value="classmap4"', 'value="logits"')
    (tampered / xml.name).write_text(text)
    assert_one_line_error(run("predict", "--weights", tampered, "--project", tmp_path / "p"), "semantic output")
    assert not (tmp_path / "p").exists()
    assert_one_line_error(run("info", tmp_path / "missing_openvino_model"), "not found")


def test_without_the_extra_the_openvino_path_is_one_line(weights, tmp_path):
    """A machine without openvino: the OpenVINO path names the extra to install (exit code 2)."""
    script = (
        "import sys; sys.modules['openvino'] = None\n"
        "from yoloseghw.cli import main\n"
        f"sys.argv = ['yoloseg', 'export', '--weights', {str(weights)!r}, '--format', 'openvino', '--force']\n"
        "main()\n"
    )
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "cfg")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and 'pip install -e ".[openvino]"' in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_openvino_models_freed_in_any_order_leave_signals_deliverable(weights, tmp_path):
    """Two OpenVINO models run and freed, then a signal arrives (as a DataLoader worker's SIGCHLD does): the process
    lives. With one Core per model, OpenVINO 2026.4 left a freed signal stack installed, and the signal killed it."""
    xml = YOLOSeg(weights).export("openvino", force=True)
    same = xml  # the same model twice: two compiled models
    script = (
        "import gc, os, signal, numpy as np, torch\n"
        "from yoloseghw.nn.openvino import OpenVinoBackend\n"
        f"a, b = OpenVinoBackend({str(xml)!r}, threads=1), OpenVinoBackend({str(same)!r}, threads=1)\n"
        "x = torch.zeros(1, 3, 64, 64)\n"
        "a(x); b(x); a(x)\n"
        "del a; gc.collect(); del b; gc.collect()\n"
        "signal.signal(signal.SIGUSR1, lambda *args: None)\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "print('alive')\n"
    )
    env = {**os.environ, "YOLO_CONFIG_DIR": str(tmp_path / "cfg")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0 and "alive" in result.stdout, result.stderr[-2000:]


def test_openvino_profile_sums_node_time_by_type_and_kernel_precision(weights):
    from yoloseghw.experiments.openvino_profile import kernel_precision, profile

    xml = YOLOSeg(weights).export("openvino", force=True)
    result = profile(xml, [np.zeros((1, 3, 64, 64), np.float32)], threads=1, runs=3, precision="f32")
    assert result["ms_per_run"] > 0 and result["nodes"][0]["share"] >= result["nodes"][-1]["share"]
    assert sum(result["precisions"].values()) == pytest.approx(result["ms_per_run"], rel=1e-2)
    assert "Convolution" in result["types"] and "f32" in result["precisions"]
    assert kernel_precision("brgconv_avx512_1x1_I8") == "I8" and kernel_precision("undef") == "undef"


def test_openvino_speed_times_each_model_in_each_precision_against_onnx_runtime(weights, tmp_path):
    from yoloseghw.experiments.openvino_speed import round_robin, runners, summary

    onnx_file = YOLOSeg(weights).export(force=True)
    xml = YOLOSeg(weights).export("openvino", force=True)
    run = runners(onnx_file, [xml.parent], ["f32", "bf16"], threads=1)
    assert list(run) == [
        f"ONNX Runtime {onnx_file.name}",
        f"OpenVINO {xml.parent.parent.name}/{xml.parent.name} f32",
        f"OpenVINO {xml.parent.parent.name}/{xml.parent.name} bf16",
    ]
    times = round_robin(run, [np.zeros((1, 3, 64, 64), np.float32)], runs=4, rounds=2)
    assert all(len(ms) == 4 and min(ms) > 0 for ms in times.values())
    rows = summary(times)
    assert rows[0]["speedup"] == 1.0 and all(r["p90_ms"] >= r["p50_ms"] > 0 for r in rows)
