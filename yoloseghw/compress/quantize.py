"""INT8 and FP16 ONNX variants of an exported yoloseg model.

INT8 is ONNX Runtime's static quantization: `quant_pre_process`, then QDQ with U8 activations, per-channel S8
weights, calibrated on training images of BOTH datasets, letterboxed as at inference. Every op is quantized except,
by default, the two ends of the network, chosen by measurement (docs/benchmarks.md):
- the stem: the first convolution and its activation (quantizing them cost most of the INT8 model's mIoU);
- the tails: the nodes after the last convolution on each path to an output (the box decode, the score concat, the
  semantic upsample + argmax);
plus any node named in `keep_float`. FP16 is onnxruntime's float16 converter, with float32 input and outputs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from ultralytics.data.augment import LetterBox

from yoloseghw.data.inputs import network_input
from yoloseghw.utils.console import console
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import atomic_path

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
PRECISION_KEY = "precision"  # ONNX metadata: fp32 (plain export), int8 or fp16


def float_tail(model: onnx.ModelProto) -> list[str]:
    """Nodes after the last Conv on every path to an output: the decode tails, kept in float by default."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    feeds_conv: dict[int, bool] = {}

    def reaches_conv(node: onnx.NodeProto) -> bool:
        key = id(node)
        if key not in feeds_conv:
            feeds_conv[key] = False  # a cycle cannot occur in an ONNX graph; this only stops re-entry
            feeds_conv[key] = any(
                c.op_type == "Conv" or reaches_conv(c) for out in node.output for c in consumers.get(out, [])
            )
        return feeds_conv[key]

    return [n.name for n in model.graph.node if n.op_type != "Conv" and not reaches_conv(n)]


def check_calib_method(method: str) -> None:
    if method not in CALIBRATION_METHODS:
        raise UserInputError(f"--calib-method: expected one of {', '.join(CALIBRATION_METHODS)}, got '{method}'")


def float_stem(model: onnx.ModelProto) -> list[str]:
    """The convolution(s) reading the image input and the nodes after them up to the next convolution."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    stem, todo = [], [c for i in model.graph.input for c in consumers.get(i.name, [])]
    while todo:
        node = todo.pop()
        if node.name in stem:
            continue
        stem.append(node.name)
        todo += [c for out in node.output for c in consumers.get(out, []) if c.op_type != "Conv"]
    return stem


class LetterboxedImages(CalibrationDataReader):
    """ONNX Runtime calibration reader: each image letterboxed to the model's input, RGB float 0-1 [1,3,H,W]."""

    def __init__(self, images: list[Path], imgsz: tuple[int, int], input_name: str = "images"):
        self.images, self.input_name = iter(images), input_name
        self.letterbox = LetterBox(imgsz, auto=False)

    def get_next(self) -> dict[str, np.ndarray] | None:
        for path in self.images:
            image = cv2.imread(str(path))
            if image is not None:  # an unreadable image is skipped, as the datasets skip it
                return {self.input_name: network_input([image], self.letterbox)}
        return None


def quantize_int8(
    fp32: Path,
    out: Path,
    images: list[Path],
    method: str = "minmax",
    keep_float: Iterable[str] = (),
) -> Path:
    """Write the INT8 QDQ model of the static-shape export `fp32` to `out` (atomically); returns `out`."""
    check_calib_method(method)
    model = onnx.load(str(fp32))
    names = {n.name for n in model.graph.node}
    unknown = sorted(set(keep_float) - names)
    if unknown:
        raise UserInputError(f"--keep-float: no node named {', '.join(unknown)} in {fp32.name}")
    excluded = sorted(set(float_stem(model)) | set(float_tail(model)) | set(keep_float))
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    reader = LetterboxedImages(images, tuple(shape[2:]))
    with tempfile.TemporaryDirectory() as tmp:  # the system's temporary folder: nothing is left beside the weights
        prepared, quantized = Path(tmp, "prepared.onnx"), Path(tmp, "int8.onnx")
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        with console.status(f"Calibrating on {len(images)} images ({method}) and quantizing to INT8 ..."):
            quantize_static(
                str(prepared),
                str(quantized),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CALIBRATION_METHODS[method],
                nodes_to_exclude=excluded,
            )
        extra = {"calibration": f"{len(images)} images of both datasets, {method}", "float_nodes": len(excluded)}
        _save_with_metadata(onnx.load(str(quantized)), model, "int8", extra, out)
    return out


def convert_fp16(fp32: Path, out: Path) -> Path:
    """Write the FP16 model of `fp32` (float32 input and outputs) to `out` (atomically); returns `out`."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(fp32))
    _save_with_metadata(convert_float_to_float16(model, keep_io_types=True), model, "fp16", {}, out)
    return out


def _save_with_metadata(model: onnx.ModelProto, source: onnx.ModelProto, precision: str, extra: dict, out: Path):
    """`source`'s yoloseg metadata plus the precision, then an atomic write to `out`."""
    meta = {p.key: p.value for p in source.metadata_props} | {PRECISION_KEY: precision} | extra
    del model.metadata_props[:]
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, str(value)
    with atomic_path(out) as tmp:
        onnx.save(model, str(tmp))
