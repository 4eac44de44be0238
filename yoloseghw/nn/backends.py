"""Inference backends with one interface: a PyTorch DetSegModel, or an exported ONNX file run by ONNX Runtime.

A backend takes a letterboxed float image batch [B,3,H,W] in 0-1 and returns (detections, semantic) as torch
tensors; predict and val post-process both the same way. The semantic output is the PyTorch head's stride-8 logits,
or the kind an ONNX file was exported with (`semantic_output`, from its metadata; nn/semantic_output.py). A backend
also knows both class lists, the stride, whether detections are end-to-end (no NMS) and, for a static ONNX file, the
one input shape it accepts.
"""

from __future__ import annotations

import ast
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoloseghw.nn.semantic_output import SemanticOutput
from yoloseghw.nn.tasks import DetSegModel
from yoloseghw.utils.console import shorten
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.ultralytics import device_error_text

METADATA_KEY = "yoloseg"  # in every yoloseg ONNX file's metadata; its value is the yoloseg version that wrote it
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def torch_device(device: str | torch.device) -> torch.device:
    """Ultralytics' device choice ('' = best available, 'cpu', '0', 'mps', ...); a device that is not here is a
    UserInputError instead of a traceback."""
    from ultralytics.utils.torch_utils import select_device

    if isinstance(device, torch.device):
        return device
    if str(device).lower() in {"mps", "mps:0"} and not torch.backends.mps.is_available():
        raise UserInputError(f"--device {device}: this machine has no Apple MPS device (use cpu or a CUDA index)")
    try:
        return select_device(device, verbose=False)
    except ValueError as e:
        reason = device_error_text(e)
        raise UserInputError(
            f"--device {device}: {reason} (torch sees {torch.cuda.device_count()} CUDA devices)"
        ) from None


class TorchBackend:
    """A DetSegModel on a torch device (a fused copy for inference when `fuse`, the model itself otherwise).

    Attributes:
        kind: the backend's name in speed lines ("PyTorch").
        det_names, seg_names: the two class lists.
        stride: the multiple input sizes must have.
        end2end: whether detections come without NMS (an end-to-end head).
        dynamic: whether any batch and image size is taken (always, for PyTorch).
    """

    kind = "PyTorch"
    dynamic = True  # any batch and image size (multiples of the stride)
    imgsz: tuple[int, int] | None = None
    batch: int | None = None
    semantic_output: SemanticOutput | None = None  # raw head logits; the predictor applies the kind it is asked for

    def __init__(self, model: DetSegModel, device: str | torch.device = "", fuse: bool = False):
        """Put `model` on `device`.

        Args:
            model: the model to run.
            device: Ultralytics' device string ('' = the best available, 'cpu', '0', ...) or a torch device.
            fuse: run a fused (Conv+BN) copy, leaving `model` as it is.

        Raises:
            UserInputError: a device that is not there.
        """
        self.device = torch_device(device)
        if fuse:
            model = deepcopy(model).to(self.device).eval().fuse(verbose=False)
        self.model = model.to(self.device)
        self.det_names, self.seg_names = dict(model.det_names), dict(model.seg_names)
        self.stride = model.input_stride
        self.end2end = bool(getattr(model, "end2end", False))
        self.dtype = next(model.parameters()).dtype

    @torch.inference_mode()
    def __call__(self, img: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """Run the model in eval mode (its train/eval mode is restored afterwards).

        Args:
            img: a letterboxed float batch [B,3,H,W] in 0-1.

        Returns:
            (Detect's eval output, the semantic logits [B,nc,H/8,W/8]).
        """
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model(img.to(self.device, self.dtype))
        finally:
            self.model.train(was_training)


class ExportedBackend:
    """What the backends of exported files share: the model description read from yoloseg's metadata, and the input
    check of a static-shape export."""

    path: Path

    def take_metadata(self, meta: dict[str, Any]) -> None:
        """The class lists, stride, detection and semantic output kinds and input shape of the file's metadata."""
        self.det_names, self.seg_names = meta["det_names"], meta["seg_names"]
        self.stride, self.end2end, self.dynamic = meta["stride"], meta["end2end"], meta["dynamic"]
        self.imgsz = None if self.dynamic else tuple(meta["imgsz"])
        self.batch = None if self.dynamic else meta["batch"]
        self.semantic_output = meta["semantic_output"]
        self.metadata = meta

    def check_input(self, x: np.ndarray) -> None:
        """UserInputError for a batch whose shape a static export does not take."""
        if self.imgsz is not None and (tuple(x.shape[2:]) != self.imgsz or x.shape[0] != self.batch):
            raise UserInputError(
                f"--weights: {self.path.name} was exported for input {(self.batch, 3, *self.imgsz)}, got "
                f"{tuple(x.shape)} (export with --dynamic for other sizes)"
            )


class OnnxBackend(ExportedBackend):
    """An ONNX file written by `yoloseg export`, run by ONNX Runtime with a chosen thread count and providers.

    Attributes:
        kind: the backend's name in speed lines ("ONNX Runtime").
        det_names, seg_names, stride, end2end, dynamic: read from the file's metadata, as for TorchBackend.
        imgsz, batch: the one input shape a static export takes (None for a dynamic one).
        semantic_output: the file's semantic output kind.
        metadata: every yoloseg metadata key, parsed.
        providers: the ONNX Runtime providers in use.
    """

    kind = "ONNX Runtime"

    def __init__(self, path: str | Path, device: str = "", threads: int | None = None):
        """Open `path` in ONNX Runtime.

        Args:
            path: a yoloseg ONNX export.
            device: 'cpu', or '' / a GPU index for the best provider present (TensorRT > CUDA > CPU).
            threads: intra-op threads (None: onnxruntime's choice).

        Raises:
            UserInputError: a missing or unloadable file, one without (or with damaged) yoloseg metadata, a bad
                thread count, or a GPU this onnxruntime cannot use.
        """
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise UserInputError(f"--weights: ONNX file not found: {self.path}")
        if threads is not None and threads < 1:
            raise UserInputError(f"--threads must be at least 1, got {threads}")
        self.providers = choose_providers(device, ort.get_available_providers())
        try:
            self.session = ort_session(self.path, threads, self.providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            reason = shorten(str(e))
            raise UserInputError(f"--weights: {self.path} is not a loadable ONNX model ({reason})") from None
        meta = read_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        self.threads, self.device_request = threads, str(device)
        self.device = torch.device("cpu")  # outputs come back as CPU tensors
        self.take_metadata(meta)
        outputs = {o.name: len(o.shape) for o in self.session.get_outputs()}
        check_graph(outputs, self.session.get_inputs()[0].shape, meta, self.path)
        image_input = self.session.get_inputs()[0]
        self.input_name = image_input.name
        self.input_dtype = np.float16 if "float16" in image_input.type else np.float32

    def __call__(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the file on one batch.

        Args:
            img: a letterboxed float batch [B,3,H,W] in 0-1 (a static export: exactly its own shape).

        Returns:
            (detections, the semantic output of the file's kind: class map [B,h,w] or logits [B,nc,h,w]) as CPU
            torch tensors.

        Raises:
            UserInputError: a batch whose shape a static export does not take.
        """
        x = img.detach().cpu().numpy().astype(self.input_dtype, copy=False)
        self.check_input(x)
        det, seg = self.session.run(["detections", "semantic"], {self.input_name: x})
        return torch.from_numpy(det).float(), torch.from_numpy(seg)


def ort_session(path: str | Path, threads: int | None, providers: list[str] | None = None) -> Any:
    """An ONNX Runtime session of `path` with `threads` intra-op threads (None: onnxruntime's choice) and one
    inter-op thread, on `providers` (default: the CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


def choose_providers(device: str, available: list[str]) -> list[str]:
    """ONNX Runtime providers for `device`: CPU only for 'cpu', else the best of TensorRT > CUDA > CPU present."""
    device = str(device).lower().strip()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    chosen = [p for p in PROVIDER_PREFERENCE if p in available]
    if device and len(chosen) == 1:
        raise UserInputError(f"--device {device}: this onnxruntime has no GPU provider (it has {', '.join(available)})")
    return chosen


def check_graph(outputs: dict[str, int], shape: list, meta: dict[str, Any], path: Path) -> None:
    """UserInputError unless the graph is what its yoloseg metadata says: outputs `detections` and `semantic` (of
    the rank its semantic kind has; `outputs` maps names to ranks), and an input of `shape` that is dynamic (named or
    unknown dimensions) or the static shape given."""
    if set(outputs) != {"detections", "semantic"}:
        raise UserInputError(
            f"--weights: {path} has yoloseg metadata but not its outputs (detections, semantic): it has "
            f"{', '.join(outputs)}"
        )
    rank = 3 if meta["semantic_output"].classmap else 4
    if outputs["semantic"] != rank:
        raise UserInputError(
            f"--weights: {path}'s semantic output has {outputs['semantic']} dimensions; its metadata says "
            f"{meta['semantic_output'].name} ({rank})"
        )
    static = all(isinstance(d, int) for d in shape)
    if meta["dynamic"] == static:
        said = "dynamic" if meta["dynamic"] else "static"
        raise UserInputError(f"--weights: {path}'s metadata says a {said} input, the graph takes {shape}")
    if static and (len(shape) != 4 or shape[0] != meta["batch"] or tuple(shape[2:]) != tuple(meta["imgsz"])):
        raise UserInputError(
            f"--weights: {path}'s metadata says input {(meta['batch'], 3, *meta['imgsz'])}, the graph takes {shape}"
        )


FLOAT_PRECISIONS = ("f32", "bf16")  # what an OpenVINO INT8 model's float parts (float tails, attention) may run in


def check_float_precision(precision: str) -> None:
    """UserInputError for a `--float-precision` that OpenVINO's INT8 path does not offer."""
    if precision not in FLOAT_PRECISIONS:
        raise UserInputError(f"--float-precision: expected {' or '.join(FLOAT_PRECISIONS)}, got '{precision}'")


def read_metadata(meta: dict[str, str], path: Path) -> dict[str, Any]:
    """Parse the yoloseg keys of an ONNX file's metadata; UserInputError when the file was not written by yoloseg."""
    if METADATA_KEY not in meta:
        raise UserInputError(
            f"--weights: {path} has no yoloseg metadata (export it with `yoloseg export`; "
            "a plain Ultralytics ONNX model has only one task)"
        )
    try:
        parsed = {k: ast.literal_eval(meta[k]) for k in ("det_names", "seg_names", "imgsz", "stride", "batch")}
        flags = {k: meta[k] == "True" for k in ("end2end", "dynamic")}
        kind = SemanticOutput.parse(meta.get("semantic_output", "classmap"), "semantic_output")
        float_precision = meta.get("float_precision", "f32")
        if float_precision not in FLOAT_PRECISIONS:
            raise ValueError(f"float_precision '{float_precision}' is not one of {', '.join(FLOAT_PRECISIONS)}")
        if not flags["dynamic"] and not (len(parsed["imgsz"]) == 2 and min(parsed["imgsz"]) >= 1):
            raise ValueError(f"imgsz {parsed['imgsz']} is not an image size")
    except (KeyError, ValueError, SyntaxError, TypeError, UserInputError) as e:
        raise UserInputError(f"--weights: {path} has damaged yoloseg metadata ({e})") from None
    return {
        **parsed,
        **flags,
        "semantic_output": kind,
        "family": meta.get("family"),
        "seg_head": meta.get("seg_head", "conv"),  # files from before the key existed carry Ultralytics' head
        "precision": meta.get("precision", "fp32"),
        "calibration": meta.get("calibration"),  # an INT8 model's: its images and method
        "link": meta.get("link"),  # --link: the classes the two datasets' labels taught together
        "float_precision": float_precision,  # an OpenVINO INT8 model's float parts: f32, or bf16 where the CPU has it
    }
