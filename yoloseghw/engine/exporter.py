"""ONNX export of a DetSegModel: Ultralytics' Exporter prepares the model; the ONNX step names both outputs.

The file carries everything needed to run it without the checkpoint: both class lists, imgsz, stride, batch, the
model family and whether detections are end-to-end (no NMS needed) or raw (NMS after the network).
"""

from __future__ import annotations

import warnings
from copy import deepcopy
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.engine.exporter import Exporter

from yoloseghw.nn.backends import METADATA_KEY
from yoloseghw.nn.link import link_entry
from yoloseghw.nn.semantic_head import seg_head_name
from yoloseghw.nn.semantic_output import DEFAULT_SEMANTIC_OUTPUT, SemanticOutput
from yoloseghw.nn.tasks import DetSegModel
from yoloseghw.utils.console import console
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import atomic_path, replace_folder, scratch_folder, write_errors
from yoloseghw.utils.version import __version__


class WithSemanticOutput(nn.Module):
    """A DetSegModel whose eval forward returns `(detections, kind(logits))`: what an export of that kind traces."""

    def __init__(self, model: DetSegModel, kind: SemanticOutput):
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        det, logits = self.model(x)
        return det, self.kind(logits, self.model.semantic.nc)


class DetSegExporter(Exporter):
    """Ultralytics' Exporter with an ONNX step for two named outputs: `detections` and `semantic`.

    Ultralytics names and makes dynamic only `output0` (and a segment model's protos); here both outputs get names,
    dynamic axes with `dynamic=True`, and metadata with the two class lists. The semantic output is the kind
    `semantic` (nn/semantic_output.py) instead of Ultralytics' full-size class map.
    """

    def __init__(self, semantic: SemanticOutput, **overrides: Any):
        super().__init__(overrides={**overrides, "format": "onnx"})
        self.semantic = semantic

    def export_onnx(self, prefix: str = "ONNX:") -> str:
        """Trace to ONNX (optionally slim it) and write the yoloseg metadata; returns the file path."""
        import onnx
        from ultralytics.utils.export.engine import best_onnx_opset, torch2onnx

        opset = self.args.opset or best_onnx_opset(onnx)
        if opset < MIN_OPSET:
            raise UserInputError(f"--opset: yoloseg models need opset {MIN_OPSET} or newer, got {opset}")
        self.model.semantic.export = False  # the head gives its stride-8 logits; the kind makes the output
        dynamic = None
        if self.args.dynamic:
            dynamic = {
                "images": {0: "batch", 2: "height", 3: "width"},
                "detections": {0: "batch"} if self.model.end2end else {0: "batch", 2: "anchors"},
                "semantic": self.semantic.dynamic_axes(),
            }
        f = self.file.with_suffix(".onnx")
        traced = WithSemanticOutput(self.model, self.semantic)
        with atomic_path(f) as tmp:  # an earlier export survives a failed one
            try:
                with warnings.catch_warnings():  # an opset torch cannot write: its error below says it in one line
                    warnings.filterwarnings("ignore", message="Exporting to ONNX opset version")
                    torch2onnx(traced, self.im, str(tmp), opset, ["images"], ["detections", "semantic"], dynamic)
            except RuntimeError as e:  # torch's own word on an opset it cannot write
                if "opset" not in str(e):
                    raise
                raise UserInputError(f"--opset {opset}: {' '.join(str(e).split())}") from None
            model_onnx = onnx.load(str(tmp))
            if self.args.simplify:
                import onnxslim

                model_onnx = onnxslim.slim(model_onnx)
            for key, value in {**self.metadata, **self.yoloseg_metadata(opset)}.items():
                meta = model_onnx.metadata_props.add()
                meta.key, meta.value = key, str(value)
            model_onnx.ir_version = min(model_onnx.ir_version, 10)  # onnxruntime reads IR <= 10
            onnx.save(model_onnx, str(tmp))
        return str(f)

    def yoloseg_metadata(self, opset: int) -> dict[str, Any]:
        """Keys that make the ONNX file self-describing for `yoloseg predict/val`."""
        model: DetSegModel = self.model
        return {
            METADATA_KEY: __version__,
            "task": "detect+semantic",
            "description": f"yoloseg {self.pretty_name} detection + semantic segmentation model",
            "author": "yoloseg",
            "license": "AGPL-3.0",
            "family": Path(str(model.yaml.get("yaml_file", "custom"))).stem,
            "seg_head": seg_head_name(model.semantic),
            "det_names": dict(model.det_names),
            "seg_names": dict(model.seg_names),
            "semantic_output": self.semantic.name,
            **link_entry(model),
            "dynamic": bool(self.args.dynamic),
            "opset": opset,
        }


FORMATS = ("onnx", "openvino")
MIN_OPSET = 11  # the oldest opset yoloseg's graphs export to


def export_path(weights: Path, fmt: str) -> Path:
    """Where an export of `weights` lands: best.onnx, or the folder best_openvino_model/."""
    from yoloseghw.nn.openvino import FOLDER_SUFFIX

    return weights.with_suffix(".onnx") if fmt == "onnx" else weights.with_name(f"{weights.stem}{FOLDER_SUFFIX}")


@dataclass(frozen=True)
class ExportOptions:
    """The options of an export (the one definition the CLI, the facade and the exporter share).

    Attributes:
        imgsz: input size (None: the training size), rounded up to the stride.
        dynamic: dynamic batch and image size.
        simplify: simplify the graph with onnxslim.
        opset: ONNX opset (None: the newest Ultralytics trusts).
        batch: batch size of a static export.
        semantic: the semantic output kind (nn/semantic_output.py).
        device: the device the model is traced on.
    """

    imgsz: int | None = None
    dynamic: bool = False
    simplify: bool = False
    opset: int | None = None
    batch: int = 1
    semantic: str = DEFAULT_SEMANTIC_OUTPUT
    device: str = "cpu"

    @classmethod
    def of(cls, options: dict[str, Any]) -> ExportOptions:
        """The options from keywords, checked; an unknown or bad one is a UserInputError."""
        unknown = set(options) - {f.name for f in fields(cls)}
        if unknown:
            raise UserInputError(f"export: unknown option(s) {', '.join(sorted(unknown))}")
        settings = cls(**options)
        SemanticOutput.parse(settings.semantic)
        if settings.batch < 1:
            raise UserInputError(f"--batch must be at least 1, got {settings.batch}")
        if settings.opset is not None and settings.opset < MIN_OPSET:
            raise UserInputError(f"--opset: yoloseg models need opset {MIN_OPSET} or newer, got {settings.opset}")
        return settings


def export_onnx(model: DetSegModel, weights: str | Path, options: ExportOptions) -> Path:
    """Export `model` (loaded from `weights`) to `<weights stem>.onnx` beside it; `options.imgsz` must be set.

    Args:
        model: the model to export (not changed: a copy is exported).
        weights: the checkpoint it came from; the ONNX file is named after it.
        options: the export options.

    Returns:
        The ONNX file's path.

    Raises:
        UserInputError: a bad option, or an export Ultralytics refuses.
    """
    kind = SemanticOutput.parse(options.semantic)
    if options.simplify:
        try:
            import onnxslim  # noqa: F401
        except ImportError:
            raise UserInputError("--simplify needs the onnxslim package: pip install onnxslim") from None
    model = deepcopy(model)  # the caller's model stays as it is (the Exporter fuses and switches heads to export)
    model.pt_path = str(weights)  # the Exporter names its output after this file
    model.task = "detect"  # the Exporter's per-task switches: treat it as a detector, the semantic head is ours
    exporter = DetSegExporter(
        semantic=kind,
        imgsz=options.imgsz,
        dynamic=options.dynamic,
        simplify=options.simplify,
        opset=options.opset,
        batch=options.batch,
        device=options.device,
        nms=False if model.end2end else None,  # False keeps a YOLO26 head end-to-end (no NMS), as in PyTorch
    )
    with console.status(f"Exporting {weights} to ONNX ..."):
        try:
            return Path(exporter(model))
        except (ValueError, AssertionError) as e:
            raise UserInputError(f"export: {' '.join(str(e).split())}") from None


def export_openvino(model: DetSegModel, weights: str | Path, options: ExportOptions) -> Path:
    """Export `model` (loaded from `weights`) as an OpenVINO IR in `<weights stem>_openvino_model/`, made from its
    ONNX export: the same graph, outputs and metadata, FP32 weights.

    Args:
        model: the model to export.
        weights: the checkpoint it came from; the folder is named after it.
        options: the export options (as for ONNX).

    Returns:
        The model's .xml path.

    Raises:
        UserInputError: openvino missing, a bad option, or a folder that cannot be written.
    """
    import onnx

    from yoloseghw.nn.openvino import FOLDER_SUFFIX, openvino_core, require_openvino, write_metadata

    ov = require_openvino()
    weights = Path(weights)
    final = weights.with_name(f"{weights.stem}{FOLDER_SUFFIX}")
    with scratch_folder(final, "openvino") as tmp:
        onnx_file = export_onnx(model, tmp / weights.name, options)
        meta = {p.key: p.value for p in onnx.load(str(onnx_file), load_external_data=False).metadata_props}
        ir = openvino_core().read_model(str(onnx_file))
        write_metadata(ir, {**meta, "format": "openvino", "precision": "fp32"})
        folder = tmp / final.name
        with write_errors(folder):
            ov.save_model(ir, str(folder / f"{weights.stem}.xml"), compress_to_fp16=False)
        replace_folder(folder, final)
    return final / f"{weights.stem}.xml"
