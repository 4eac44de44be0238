"""Compressed variants of a checkpoint, step by step: where each lands, INT8/FP16 ONNX from an FP32 export, and
pruning in rounds with fine-tuning after each. The facade (`YOLOSeg.compress`) passes in the export and the
training it owns, so this module never reaches back into the engine."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultralytics.utils.torch_utils import get_flops

from yoloseghw.compress.prune import check_options, prune
from yoloseghw.compress.quantize import check_calib_method, convert_fp16, quantize_int8
from yoloseghw.data.dataset import load_data_config
from yoloseghw.data.inputs import sample_images
from yoloseghw.nn.backends import check_float_precision
from yoloseghw.nn.tasks import DetSegModel
from yoloseghw.utils.console import console, warn
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import atomic_path, scratch_folder, write_checkpoint

if TYPE_CHECKING:
    from yoloseghw.compress.openvino_int8 import AccuracyControl

METHODS = {"prune": "prune", "lowrank": "lowrank", "quantize": "int8", "fp16": "fp16"}  # method -> output suffix
RUNTIMES = ("onnxruntime", "openvino")  # what an INT8 variant is made for
Export = Callable[[Path], Path]  # writes an FP32 ONNX export of the model at the given path; returns it
FineTune = Callable[[Path, int], tuple[Path, DetSegModel]]  # trains a checkpoint some epochs: (its best.pt, model)


def output_path(
    weights: Path, method: str, ratio: float, force: bool, runtime: str = "onnxruntime", float_precision: str = "f32"
) -> Path:
    """Where `method` writes its variant of `weights` (best.pt -> best-prune30.pt / best-lowrank50.pt (`ratio`: the
    rank share kept) / best-int8.onnx / best-fp16.onnx / best-int8_openvino_model/, best-int8-bf16_openvino_model/
    with `float_precision` bf16); UserInputError for an unknown method, runtime or float precision, a float precision
    other than f32 outside OpenVINO's INT8, or an existing output without `force`."""
    if method not in METHODS:
        raise UserInputError(f"--method: unknown method '{method}' (methods: {', '.join(METHODS)})")
    if runtime not in RUNTIMES:
        raise UserInputError(f"--runtime: expected {' or '.join(RUNTIMES)}, got '{runtime}'")
    if runtime == "openvino" and method != "quantize":
        raise UserInputError(f"--runtime openvino makes INT8 models (--method quantize), not --method {method}")
    check_float_precision(float_precision)
    if float_precision != "f32" and runtime != "openvino":
        raise UserInputError(
            f"--float-precision {float_precision} is for the float parts of OpenVINO's INT8 models: "
            "give --method quantize --runtime openvino"
        )
    if method in ("prune", "lowrank"):
        suffix = f"{method}{round(ratio * 100)}.pt"
    elif runtime == "openvino":
        suffix = f"{METHODS[method]}{'' if float_precision == 'f32' else f'-{float_precision}'}_openvino_model"
    else:
        suffix = f"{METHODS[method]}.onnx"
    out = weights.with_name(f"{weights.stem}-{suffix}")
    if out.exists() and not force:
        raise UserInputError(f"{out} exists; give --force to replace it")
    return out


def onnx_variant(
    method: str,
    out: Path,
    export: Export,
    name: str,
    det: Any = None,
    seg: Any = None,
    calib: int = 200,
    calib_method: str = "minmax",
    keep_float: tuple[str, ...] = (),
    runtime: str = "onnxruntime",
    control: AccuracyControl | None = None,
    float_precision: str = "f32",
) -> Path:
    """The INT8 (`quantize`, calibrated on `calib` train images of both datasets) or FP16 (`fp16`) variant at `out`,
    from a temporary FP32 ONNX export named `name`: an ONNX file for ONNX Runtime, or an OpenVINO model through NNCF
    (`runtime`; `control`: NNCF's accuracy-aware mode; `float_precision`: what its float parts run in where the CPU
    allows it; see compress/openvino_int8.py)."""
    images = []
    if method == "quantize":
        if det is None or seg is None:
            raise UserInputError("--method quantize calibrates on both datasets: give --det and --seg")
        check_calib_method(calib_method)
        images = sample_images(load_data_config(det, "det"), load_data_config(seg, "seg"), calib)
    with scratch_folder(out, "export") as tmp:
        fp32 = export(tmp / name)
        if runtime == "openvino":
            from yoloseghw.compress.openvino_int8 import quantize_openvino

            return quantize_openvino(fp32, out, images, keep_float, control, float_precision)
        if method == "quantize":
            return quantize_int8(fp32, out, images, calib_method, keep_float)
        return convert_fp16(fp32, out)


def lowrank_checkpoint(
    model: DetSegModel,
    ckpt: dict[str, Any],
    out: Path,
    *,
    rank: float,
    max_error: float,
    min_gain: float,
    imgsz: int,
    finetune_epochs: int,
    finetune: FineTune | None,
    source: str,
) -> Path:
    """Factorize a copy of `model` (compress/lowrank.py: the layers chosen by their measured speed-up and weight
    error at `rank`), then fine-tune it for `finetune_epochs` epochs with `finetune` (None: factorize only); the
    result at `out` is a checkpoint of the module itself, holding the measurements (`lowrank`)."""
    from yoloseghw.compress.lowrank import check_options as check_lowrank
    from yoloseghw.compress.lowrank import factorize, measure

    check_lowrank(rank, max_error, min_gain)
    if finetune_epochs < 0:
        raise UserInputError(f"--finetune-epochs must be at least 0, got {finetune_epochs}")
    model = deepcopy(model).float()
    base, params = get_flops(model, imgsz), sum(p.numel() for p in model.parameters())
    with console.status(f"Timing every convolution at {imgsz} px as it is and factorized at rank share {rank} ..."):
        choices = measure(model, imgsz, rank, max_error, min_gain)
    count = factorize(model, choices)
    if not count:
        raise UserInputError(
            f"--method lowrank: no layer is at least {min_gain}x faster factorized at rank share {rank} within "
            f"weight error {max_error} (try a lower --rank or a larger --max-error)"
        )
    report = [vars(c) | {"gain": round(c.gain, 3)} for c in choices]
    settings = {"rank": rank, "max_error": max_error, "min_gain": min_gain, "imgsz": imgsz, "layers": report}
    with scratch_folder(out, "lowrank") as tmp:
        current = tmp / out.name
        state = {**ckpt, "model": deepcopy(model).half(), "ema": None, "optimizer": None, "train_metrics": {}}
        state.pop("train_results", None)
        write_checkpoint(current, {**state, "lowrank": settings})
        if finetune is not None and finetune_epochs:
            best, model = finetune(current, finetune_epochs)
            shutil.copyfile(best, current)
        with atomic_path(out) as final:
            shutil.copyfile(current, final)
    print_choices(choices)
    console.print(
        f"Factorized {count} of {len(choices)} convolutions of {source}: GFLOPs@{imgsz} {base:.2f} -> "
        f"{get_flops(model, imgsz):.2f}, parameters {params:,} -> {sum(p.numel() for p in model.parameters()):,}"
    )
    if finetune is None or not finetune_epochs:
        warn(f"{out.name} is not fine-tuned: its accuracy drops until it is (give --det and --seg)")
    return out


def print_choices(choices: list[Any]) -> None:
    """The measured candidates as a table: shape, rank, weight error, ms before and after, chosen or not."""
    from rich.table import Table

    table = Table(title="Low-rank candidates (measured)", title_justify="left")
    for col in ("layer", "input", "k", "out", "rank", "weight error", "ms", "ms factorized", "speed-up", "chosen"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for c in choices:
        table.add_row(
            c.name, "x".join(map(str, c.shape[1:])), str(c.kernel), str(c.out_channels), str(c.rank),
            f"{c.error:.3f}", f"{c.ms_before:.3f}", f"{c.ms_after:.3f}", f"{c.gain:.2f}", "yes" if c.chosen else "",
        )  # fmt: skip
    console.print(table)


def prune_checkpoint(
    model: DetSegModel,
    ckpt: dict[str, Any],
    out: Path,
    *,
    ratio: float,
    criterion: str,
    steps: int,
    finetune_epochs: int,
    imgsz: int,
    finetune: FineTune | None,
    source: str,
) -> Path:
    """Prune a copy of `model` in `steps` rounds to `ratio` of its GFLOPs at `imgsz` removed, fine-tuning each round
    for `finetune_epochs / steps` epochs with `finetune` (None: prune only); the result at `out` is a checkpoint of
    the pruned module itself (never rebuilt from yaml). `source` names the original in the summary line."""
    check_options(ratio, criterion)
    if steps < 1 or finetune_epochs < 0:
        raise UserInputError(
            f"--steps must be at least 1 and --finetune-epochs at least 0 (got {steps}, {finetune_epochs})"
        )
    model = deepcopy(model)
    base = flops = get_flops(model, imgsz)
    params = sum(p.numel() for p in model.parameters())
    with scratch_folder(out, "prune") as tmp:  # `out` is written once every round has passed, never half-way
        current = tmp / out.name
        for k in range(1, steps + 1):
            target = base * (1 - ratio * k / steps)  # GFLOPs after round k
            if flops > target:
                flops = prune(model, 1 - target / flops, criterion, imgsz)
            state = {**ckpt, "model": deepcopy(model).half(), "ema": None, "optimizer": None, "train_metrics": {}}
            state.pop("train_results", None)
            write_checkpoint(current, {**state, "pruning": {"ratio": ratio, "criterion": criterion, "round": k}})
            if finetune is not None and finetune_epochs:
                best, model = finetune(current, max(finetune_epochs // steps, 1))
                shutil.copyfile(best, current)
                model = deepcopy(model)
        with atomic_path(out) as final:
            shutil.copyfile(current, final)
    console.print(
        f"Pruned {source}: GFLOPs@{imgsz} {base:.2f} -> {flops:.2f} ({1 - flops / base:.1%} "
        f"removed, asked {ratio:.0%}), parameters {params:,} -> {sum(p.numel() for p in model.parameters()):,}"
    )
    if finetune is None or not finetune_epochs:
        warn(
            f"{out.name} is not fine-tuned: its accuracy drops until it is "
            f"(yoloseg train --model {out} --det DET.yaml --seg SEG.yaml)"
        )
    return out
