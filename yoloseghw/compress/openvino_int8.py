"""INT8 OpenVINO models through NNCF's post-training quantization (`yoloseg compress --method quantize --runtime
openvino`).

The FP32 OpenVINO model of the checkpoint is calibrated on training images of BOTH datasets, letterboxed as at
inference (the same `--calib` sample as ONNX Runtime's INT8). NNCF's MIXED preset (symmetric weights, asymmetric
activations) quantizes the convolutions and the ops around them; each SiLU is first made one op (see `fuse_silu`),
so that it runs inside its INT8 convolution. Each activation's INT8 range is the min and max it
took over the calibration images (NNCF's MINMAX estimator, as ONNX Runtime's MinMax calibration): NNCF's default
estimator, which averages per-image ranges, clips the rare large activations and cost the 20-epoch model 5% of
its mAP50-95, MINMAX under 1% (docs/benchmarks.md). The nodes kept in float are chosen by measurement too
(docs/benchmarks.md): by default the tails (the box decode, the score concat, the semantic upsample + argmax), as for
ONNX Runtime, and any node named in `keep_float`. With an `AccuracyControl` (`--accuracy-aware`), NNCF's
accuracy-controlled quantization returns layers to float, those whose INT8 error on val images is largest first,
until the INT8 model keeps at least 1 - `max_drop` of FP32's mAP50-95 AND of its mIoU on the two val sets.
With `float_precision` bf16 the model's metadata asks OpenVINO to run its float parts (the tails, attention) in
bfloat16 on a CPU that has it: faster, and measured as accurate as f32 (docs/benchmarks.md); elsewhere they run in f32.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from yoloseghw.compress.quantize import float_tail
from yoloseghw.data.inputs import letterboxed
from yoloseghw.nn.backends import check_float_precision
from yoloseghw.nn.openvino import (
    compile_config,
    float_parts_precision,
    openvino_core,
    require_openvino,
    write_metadata,
)
from yoloseghw.utils.console import console
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import replace_folder, scratch_folder, write_errors
from yoloseghw.utils.metrics import MAP50_95, MIOU

PRESET = "mixed"  # NNCF preset: symmetric INT8 weights, asymmetric INT8 activations
RANGES = "min-max"  # how activation ranges are calibrated: the extremes over all calibration images
RANKING_IMAGES = 60  # val images (half from each set) whose INT8 output error ranks the layers to return to float
MAX_REVERTS = 20  # layer groups the accuracy-aware mode may return to float (a full validation each)


@dataclass(frozen=True)
class AccuracyControl:
    """NNCF's accuracy-aware mode: what it validates, and how much it may lose.

    Attributes:
        metrics: a compiled OpenVINO model -> its metrics on both val sets (keys as `yoloseg val` reports them).
        images: val images of both datasets; NNCF ranks the quantized layers by the error of their INT8 outputs.
        max_drop: the largest share of FP32's mAP50-95, and of its mIoU, that the INT8 model may lose.
    """

    metrics: Callable[[Any], dict[str, float]]
    images: list[Path]
    max_drop: float


def task_shares(metrics: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    """mAP50-95 and mIoU each as a share of the reference's, for the tasks the reference scores above 0 on."""
    return {k: metrics[k] / reference[k] for k in (MAP50_95, MIOU) if reference.get(k, 0) > 0}


def kept_share(metrics: dict[str, float], reference: dict[str, float]) -> float:
    """The lower of mAP50-95 and mIoU as a share of the reference's (a task the reference scores 0 on counts 1)."""
    return min(task_shares(metrics, reference).values(), default=1.0)


def require_nncf() -> Any:
    """The nncf module; a UserInputError naming the extra when it is not installed."""
    from yoloseghw.nn.openvino import EXTRA

    try:
        import nncf
    except ImportError:
        raise UserInputError(f"INT8 for OpenVINO needs nncf: {EXTRA}") from None
    return nncf


@contextmanager
def nncf_warnings_only(nncf: Any) -> Iterator[None]:
    """NNCF's log at WARNING for the block: it logs each of its steps at INFO, and yoloseg's status line already
    says what runs."""
    logger = logging.getLogger("nncf")
    level = logger.level
    nncf.set_log_level(logging.WARNING)
    try:
        yield
    finally:
        nncf.set_log_level(level)


def default_float_nodes(fp32_onnx: Path) -> list[str]:
    """The tails of the graph (after the last convolution on each path to an output): kept in float."""
    return float_tail(onnx.load(str(fp32_onnx), load_external_data=False))


def with_parts(nodes: set[str], names: set[str]) -> list[str]:
    """ONNX node names and the OpenVINO ops their import split them into: a Conv with a bias named N becomes an Add
    named N and the Convolution `N/WithoutBiases`, so keeping N in float must keep both."""
    return sorted(nodes | {name for name in names if any(name.startswith(f"{node}/") for node in nodes)})


def fuse_silu(model: Any) -> int:
    """Rewrite every SiLU of an OpenVINO model, `Multiply(x, Sigmoid(x))` as the ONNX export spells it, into one
    Swish op (OpenVINO's SiLU) named as the Multiply was. NNCF then quantizes a convolution and its SiLU as one unit,
    with one quantizer after the SiLU, and OpenVINO's CPU plugin runs the SiLU inside the INT8 convolution. Left as
    Sigmoid and Multiply, NNCF puts quantizers on both of the Multiply's inputs and its output, and each SiLU runs
    apart in float: half the INT8 model's time at 640 px (docs/benchmarks.md). Returns how many were rewritten."""
    opset = require_openvino().opset13
    fused = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Multiply":
            continue
        left, right = (port.get_source_output() for port in op.inputs())
        for x, gate in ((left, right), (right, left)):
            node = gate.get_node()
            if node.get_type_name() == "Sigmoid" and node.input(0).get_source_output() == x:
                silu = opset.swish(x)
                silu.set_friendly_name(op.get_friendly_name())
                op.output(0).replace(silu.output(0))
                fused += 1
                break
    return fused


def quantize_openvino(
    fp32_onnx: Path,
    out: Path,
    images: list[Path],
    keep_float: Iterable[str] = (),
    control: AccuracyControl | None = None,
    float_precision: str = "f32",
) -> Path:
    """Write the NNCF INT8 OpenVINO model of the static-shape FP32 export `fp32_onnx` into the folder `out`
    (`<stem>-int8_openvino_model/`, complete or not at all).

    Args:
        fp32_onnx: the FP32 ONNX export (its metadata is carried over).
        out: the output folder.
        images: the calibration images (both datasets' train images).
        keep_float: more node names kept in float besides the tails.
        control: with it, NNCF's accuracy-aware mode (see AccuracyControl).
        float_precision: what the model's float parts run in where the CPU allows it: f32 or bf16 (metadata).

    Returns:
        The INT8 model's .xml path.

    Raises:
        UserInputError: openvino or nncf missing, a `keep_float` name the graph does not have, or an unknown
            `float_precision`.
    """
    check_float_precision(float_precision)
    ov, nncf = require_openvino(), require_nncf()
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    model = openvino_core().read_model(str(fp32_onnx))
    fuse_silu(model)
    names = {op.get_friendly_name() for op in model.get_ops()}
    unknown = sorted(set(keep_float) - names)
    if unknown:
        raise UserInputError(f"--keep-float: no node named {', '.join(unknown)} in {fp32_onnx.name}")
    kept = with_parts((set(default_float_nodes(fp32_onnx)) & names) | set(keep_float), names)
    shape = [d.get_length() for d in model.inputs[0].get_partial_shape()]
    inputs = letterboxed(images, (shape[2], shape[3]))
    options = {
        "preset": nncf.QuantizationPreset.MIXED,
        "subset_size": len(inputs),
        "ignored_scope": nncf.IgnoredScope(names=kept, validate=False),
    }
    ranges = nncf.AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
    status = console.status(f"Calibrating on {len(inputs)} images and quantizing to INT8 with NNCF ...")
    with status, nncf_warnings_only(nncf):
        if control is None:
            quantized, mode = (
                nncf.quantize(model, nncf.Dataset(inputs), advanced_parameters=ranges, **options),
                "post-training",
            )
        else:
            checks = letterboxed(control.images, (shape[2], shape[3]))
            quantized, kept_line = accuracy_controlled(
                nncf,
                model,
                nncf.Dataset(inputs),
                checks,
                control,
                {**options, "advanced_quantization_parameters": ranges},
                float_precision,
            )
            mode = f"accuracy-aware: {kept_line}"
            console.print(f"NNCF accuracy-aware INT8 (at most {control.max_drop:.0%} lost per task): {kept_line}")
    meta = {p.key: p.value for p in onnx.load(str(fp32_onnx), load_external_data=False).metadata_props}
    calibration = f"{len(inputs)} images of both datasets, NNCF {PRESET}, {RANGES} ranges, {mode}"
    extra = {"calibration": calibration, "float_nodes": len(kept), "float_precision": float_precision}
    write_metadata(quantized, {**meta, "format": "openvino", "precision": "int8", **extra})
    with scratch_folder(out, "openvino-int8") as tmp:
        folder = tmp / out.name
        stem = out.name.removesuffix("_openvino_model")
        with write_errors(folder):
            ov.save_model(quantized, str(folder / f"{stem}.xml"), compress_to_fp16=False)
        replace_folder(folder, out)
    return out / f"{stem}.xml"


def accuracy_controlled(
    nncf: Any,
    model: Any,
    calibration: Any,
    checks: list[np.ndarray],
    control: AccuracyControl,
    options: dict,
    float_precision: str = "f32",
) -> tuple[Any, str]:
    """NNCF's `quantize_with_accuracy_control` of `model`, and what the result keeps of FP32's metrics in words
    (the result's float parts run in `float_precision` for that last check).

    Its metric is the lower share of FP32's mAP50-95 and mIoU that a candidate keeps (FP32: 1), so `max_drop`
    bounds the loss of each task (see validation_function)."""
    reference = control.metrics(compiled_cpu(model))
    quantized = nncf.quantize_with_accuracy_control(
        model,
        calibration,
        nncf.Dataset(checks),
        validation_fn=validation_function(control, reference),
        max_drop=control.max_drop,
        drop_type=nncf.DropType.ABSOLUTE,
        advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(
            max_num_iterations=MAX_REVERTS, ranking_subset_size=len(checks)
        ),
        **options,
    )
    shares = task_shares(control.metrics(compiled_cpu(quantized, float_precision)), reference)
    kept = [f"{k.removeprefix('metrics/')} {v:.1%}" for k, v in shares.items()]
    return quantized, (", ".join(kept) + " of FP32's") if kept else "FP32 scores 0 on both val sets"


def validation_function(
    control: AccuracyControl, reference: dict[str, float]
) -> Callable[[Any, Iterable[np.ndarray]], tuple[float, list[list[np.ndarray]]]]:
    """NNCF's `validation_fn`: (the share of the reference's metrics a compiled model keeps, its outputs on each
    given image). Returning outputs, not a value per image, puts NNCF in its output mode: it ranks layers by their
    output error on the check images instead of by a full validation per layer group."""

    def validate(compiled: Any, items: Iterable[np.ndarray]) -> tuple[float, list[list[np.ndarray]]]:
        outputs = [[np.array(v) for v in compiled(x).values()] for x in items]  # copies of the request's buffers
        return kept_share(control.metrics(compiled), reference), outputs

    return validate


def compiled_cpu(model: Any, precision: str = "f32") -> Any:
    """An OpenVINO model compiled for the CPU, through the process's Core, its float parts in `precision` (f32 by
    default, not the CPU's bf16 default; bf16 only where the CPU has it)."""
    precision = float_parts_precision(precision, "CPU")
    return openvino_core().compile_model(model, "CPU", compile_config("CPU", None, precision=precision))


def metrics_of_compiled(compiled: Any, validator: Any, reference: Any) -> dict[str, float]:
    """mAP50-95 and mIoU of an OpenVINO compiled model on the validator's val sets (for the accuracy-aware mode):
    it runs as the FP32 model's backend `reference` would, with the compiled model's outputs."""

    class Compiled:
        kind, device = reference.kind, reference.device
        det_names, seg_names, end2end = reference.det_names, reference.seg_names, reference.end2end

        def __call__(self, img: Any) -> tuple[Any, Any]:
            import torch

            out = compiled(np.ascontiguousarray(img.numpy(), dtype=np.float32))
            det, seg = (np.array(out[compiled.output(name)]) for name in ("detections", "semantic"))
            return torch.from_numpy(det).float(), torch.from_numpy(seg)

    metrics = validator.run(Compiled())
    return {k: float(metrics[k]) for k in (MAP50_95, MIOU) if k in metrics}
