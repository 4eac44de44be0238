"""INT8 OpenVINO models through NNCF's post-training quantization (`yoloseg compress --method quantize --runtime
openvino`).

The FP32 OpenVINO model of the checkpoint is calibrated on training images of BOTH datasets, letterboxed as at
inference (the same `--calib` sample as ONNX Runtime's INT8). NNCF's MIXED preset (symmetric weights, asymmetric
activations) quantizes the convolutions and the ops around them; the nodes kept in float are chosen by measurement
(docs/benchmarks.md): by default the tails (the box decode, the score concat, the semantic upsample + argmax), as for
ONNX Runtime, and any node named in `keep_float`. With `accuracy_aware`, NNCF's accuracy-controlled quantization
reverts the layers that cost the most until the combined fitness on both val sets is within `max_drop` of FP32's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from yoloseghw.compress.quantize import float_tail
from yoloseghw.data.inputs import letterboxed
from yoloseghw.nn.openvino import openvino_core, require_openvino, write_metadata
from yoloseghw.utils.console import console
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import replace_folder, scratch_folder, write_errors

PRESET = "mixed"  # NNCF preset: symmetric INT8 weights, asymmetric INT8 activations


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


def quantize_openvino(
    fp32_onnx: Path,
    out: Path,
    images: list[Path],
    keep_float: Iterable[str] = (),
    validate: Callable[[Any], float] | None = None,
    max_drop: float = 0.01,
) -> Path:
    """Write the NNCF INT8 OpenVINO model of the static-shape FP32 export `fp32_onnx` into the folder `out`
    (`<stem>-int8_openvino_model/`, complete or not at all).

    Args:
        fp32_onnx: the FP32 ONNX export (its metadata is carried over).
        out: the output folder.
        images: the calibration images (both datasets' train images).
        keep_float: more node names kept in float besides the tails.
        validate: with it, NNCF's accuracy-aware mode: `validate(compiled_model)` gives the metric to keep.
        max_drop: accuracy-aware mode: the largest absolute drop of that metric allowed.

    Returns:
        The INT8 model's .xml path.

    Raises:
        UserInputError: openvino or nncf missing, or a `keep_float` name the graph does not have.
    """
    ov, nncf = require_openvino(), require_nncf()
    model = openvino_core().read_model(str(fp32_onnx))
    names = {op.get_friendly_name() for op in model.get_ops()}
    unknown = sorted(set(keep_float) - names)
    if unknown:
        raise UserInputError(f"--keep-float: no node named {', '.join(unknown)} in {fp32_onnx.name}")
    kept = sorted((set(default_float_nodes(fp32_onnx)) & names) | set(keep_float))
    shape = [d.get_length() for d in model.inputs[0].get_partial_shape()]
    inputs = letterboxed(images, (shape[2], shape[3]))
    dataset = nncf.Dataset(inputs)
    options = {
        "preset": nncf.QuantizationPreset.MIXED,
        "subset_size": len(inputs),
        "ignored_scope": nncf.IgnoredScope(names=kept, validate=False),
    }
    status = console.status(f"Calibrating on {len(inputs)} images and quantizing to INT8 with NNCF ...")
    with status, nncf_warnings_only(nncf):
        if validate is None:
            quantized = nncf.quantize(model, dataset, **options)
        else:
            quantized = nncf.quantize_with_accuracy_control(
                model,
                dataset,
                nncf.Dataset([None]),  # the validation data are what `validate` reads itself
                validation_fn=lambda compiled, _: validate(compiled),
                max_drop=max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                **options,
            )
    meta = {p.key: p.value for p in onnx.load(str(fp32_onnx), load_external_data=False).metadata_props}
    mode = "accuracy-aware" if validate is not None else "post-training"
    extra = {"calibration": f"{len(inputs)} images of both datasets, NNCF {PRESET}, {mode}", "float_nodes": len(kept)}
    write_metadata(quantized, {**meta, "format": "openvino", "precision": "int8", **extra})
    with scratch_folder(out, "openvino-int8") as tmp:
        folder = tmp / out.name
        stem = out.name.removesuffix("_openvino_model")
        with write_errors(folder):
            ov.save_model(quantized, str(folder / f"{stem}.xml"), compress_to_fp16=False)
        replace_folder(folder, out)
    return out / f"{stem}.xml"


def fitness_of_compiled(compiled: Any, validator: Any, reference: Any) -> float:
    """The combined fitness of an NNCF-compiled model on the validator's val sets (for the accuracy-aware mode):
    it runs as the FP32 model's backend `reference` would, with the compiled model's outputs."""

    class Compiled:
        kind, device = reference.kind, reference.device
        det_names, seg_names, end2end = reference.det_names, reference.seg_names, reference.end2end

        def __call__(self, img: Any) -> tuple[Any, Any]:
            import torch

            out = compiled(np.ascontiguousarray(img.numpy(), dtype=np.float32))
            det, seg = (np.array(out[compiled.output(name)]) for name in ("detections", "semantic"))
            return torch.from_numpy(det).float(), torch.from_numpy(seg)

    return float(validator.run(Compiled())["fitness"])
