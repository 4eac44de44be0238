"""OpenVINO: a yoloseg model as an OpenVINO IR (`<stem>_openvino_model/<stem>.xml` + `.bin`), run by OpenVINO on a
CPU, GPU or NPU with a chosen thread count, as the third inference backend beside PyTorch and ONNX Runtime.

The IR holds the same graph, output names and yoloseg metadata (in its `model_info` runtime information) as the
ONNX export it is made from. OpenVINO and NNCF are an optional extra: `pip install -e ".[openvino]"`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoloseghw.nn.backends import ExportedBackend, check_graph, read_metadata
from yoloseghw.utils.console import shorten
from yoloseghw.utils.errors import UserInputError

EXTRA = 'pip install -e ".[openvino]"'  # the optional extra that brings openvino and nncf
FOLDER_SUFFIX = "_openvino_model"  # Ultralytics' name for an OpenVINO export folder: best_openvino_model/
INFO = "model_info"  # the runtime-information section the metadata keys live in (as Ultralytics writes them)
DEVICES = {"": "CPU", "cpu": "CPU", "gpu": "GPU", "npu": "NPU"}


def require_openvino() -> Any:
    """The openvino module; a UserInputError naming the extra when it is not installed."""
    try:
        import openvino
    except ImportError:
        raise UserInputError(f"the OpenVINO path needs openvino and nncf: {EXTRA}") from None
    return openvino


@functools.cache
def openvino_core() -> Any:
    """The process's one OpenVINO Core, kept for its lifetime. Every model is read and compiled through it: with
    several Cores, OpenVINO 2026.4 frees a signal stack that it leaves installed on the thread that ran inference,
    and the next signal (a DataLoader worker's SIGCHLD) kills the process."""
    return require_openvino().Core()


def is_openvino(path: str | Path) -> bool:
    """Whether `path` names an OpenVINO model: an .xml file or a `*_openvino_model` folder."""
    path = Path(path)
    return path.suffix == ".xml" or path.name.endswith(FOLDER_SUFFIX)


def model_xml(path: str | Path) -> Path:
    """The .xml of an OpenVINO model given as its .xml or its folder; UserInputError when it or its .bin is missing."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.xml"))
        if len(found) != 1:
            raise UserInputError(f"--weights: {path} holds {len(found)} OpenVINO .xml files; expected one")
        path = found[0]
    if not path.is_file():
        raise UserInputError(f"--weights: OpenVINO model not found: {path}")
    if not path.with_suffix(".bin").is_file():
        raise UserInputError(f"--weights: {path} has no {path.with_suffix('.bin').name} beside it (its weights)")
    return path


def write_metadata(model: Any, meta: dict[str, Any]) -> None:
    """Store the yoloseg metadata keys in an OpenVINO model's runtime information (saved with it)."""
    for key, value in meta.items():
        model.set_rt_info(str(value), [INFO, key])


def read_model_metadata(model: Any) -> dict[str, str]:
    """The metadata keys of an OpenVINO model (empty when it has none)."""
    if not model.has_rt_info(INFO):
        return {}
    info = model.get_rt_info(INFO).astype(dict)
    return {key: value.astype(str) for key, value in info.items()}


def openvino_device(device: str, available: list[str]) -> str:
    """The OpenVINO device for `--device`: '' or cpu -> CPU, gpu, npu (or an OpenVINO name like GPU.1)."""
    name = DEVICES.get(str(device).lower().strip(), str(device).upper())
    if name.split(".")[0] not in {d.split(".")[0] for d in available}:
        raise UserInputError(f"--device {device}: OpenVINO sees {', '.join(available)} on this machine")
    return name


def cpu_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin runs bfloat16 on this CPU (AVX-512 BF16 or AMX)."""
    return "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def float_parts_precision(requested: str, device_name: str) -> str:
    """The precision an INT8 model's float parts run in on `device_name`: the `requested` one (its metadata's
    float_precision), but f32 where that is bf16 and the device is not a CPU with bfloat16."""
    return "bf16" if requested == "bf16" and device_name == "CPU" and cpu_has_bf16() else "f32"


def float_parts_entry(backend: Any) -> dict[str, str]:
    """`info`'s line on what an OpenVINO INT8 model's float parts run in (empty for other models)."""
    if getattr(backend, "kind", None) != OpenVinoBackend.kind or backend.metadata["precision"] != "int8":
        return {}
    if backend.device_name != "CPU":  # compiled without a precision hint: the device's own choice
        return {"float parts": f"{backend.device_name}'s default precision"}
    requested, used = backend.metadata["float_precision"], backend.float_precision
    note = "" if used == requested else f" ({requested} asked; this CPU has no bfloat16)"
    return {"float parts": used + note}


def compile_config(
    device_name: str, threads: int | None, profile: bool = False, precision: str = "f32"
) -> dict[str, Any]:
    """OpenVINO's compile settings for one latency-bound request: on a CPU, float parts in `precision` (f32, or bf16
    for an INT8 model made with `--float-precision bf16`) and `threads` threads (None: OpenVINO's choice); `profile`
    turns on its per-node counters (PERF_COUNT)."""
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if device_name == "CPU":
        config["INFERENCE_PRECISION_HINT"] = precision  # f32 by default: what was exported, not the CPU's bf16 default
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
    if profile:
        config["PERF_COUNT"] = True
    return config


class OpenVinoBackend(ExportedBackend):
    """An OpenVINO model written by `yoloseg export --format openvino` (or its NNCF INT8 twin), run by OpenVINO.

    Attributes:
        kind: the backend's name in speed lines ("OpenVINO").
        det_names, seg_names, stride, end2end, dynamic, imgsz, batch, semantic_output, metadata: as OnnxBackend's.
        device_name: the OpenVINO device it runs on (CPU, GPU, NPU).
        providers: the device, for `info` (as ONNX Runtime's providers).
        float_precision: what the float parts run in on a CPU: f32, or bf16 for an INT8 model made with
            `--float-precision bf16` on a CPU with bfloat16 (other CPUs run them in f32; a GPU or NPU, in its own
            default precision).
    """

    kind = "OpenVINO"

    def __init__(self, path: str | Path, device: str = "", threads: int | None = None):
        """Read and compile an OpenVINO model.

        Args:
            path: the model's .xml, or its `*_openvino_model` folder.
            device: '' or 'cpu' (CPU), 'gpu' or 'npu' where OpenVINO has them.
            threads: CPU inference threads (None: OpenVINO's choice).

        Raises:
            UserInputError: openvino missing, a missing .xml or .bin, a model OpenVINO cannot read, one without (or
                with damaged) yoloseg metadata, a bad thread count, or a device this machine lacks.
        """
        core = openvino_core()
        self.path = model_xml(path)
        if threads is not None and threads < 1:
            raise UserInputError(f"--threads must be at least 1, got {threads}")
        try:
            model = core.read_model(str(self.path))
        except Exception as e:  # OpenVINO raises plain RuntimeErrors for unreadable files
            reason = shorten(str(e))
            raise UserInputError(f"--weights: {self.path} is not a loadable OpenVINO model ({reason})") from None
        meta = read_metadata(read_model_metadata(model), self.path)
        self.take_metadata(meta)
        outputs = {o.get_any_name(): o.get_partial_shape().rank.get_length() for o in model.outputs}
        shape = [d.get_length() if d.is_static else "?" for d in model.inputs[0].get_partial_shape()]
        check_graph(outputs, shape, meta, self.path)
        self.device_name = openvino_device(device, core.available_devices)
        self.float_precision = float_parts_precision(meta["float_precision"], self.device_name)
        config = compile_config(self.device_name, threads, precision=self.float_precision)
        self.compiled = core.compile_model(model, self.device_name, config)
        self.threads, self.device_request = threads, str(device)
        self.device = torch.device("cpu")  # outputs come back as CPU tensors
        self.providers = [f"OpenVINO {self.device_name}"]
        self.outputs = {name: self.compiled.output(name) for name in ("detections", "semantic")}

    def __call__(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model on one batch.

        Args:
            img: a letterboxed float batch [B,3,H,W] in 0-1 (a static export: exactly its own shape).

        Returns:
            (detections, the semantic output of the model's kind) as CPU torch tensors.

        Raises:
            UserInputError: a batch whose shape a static export does not take.
        """
        x = np.ascontiguousarray(img.detach().cpu().numpy(), dtype=np.float32)
        self.check_input(x)
        out = self.compiled(x)
        det, seg = out[self.outputs["detections"]], out[self.outputs["semantic"]]  # the request's own buffers: copied
        return torch.from_numpy(np.array(det)).float(), torch.from_numpy(np.array(seg))
