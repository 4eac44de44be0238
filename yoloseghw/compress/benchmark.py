"""`yoloseg bench`: the plain model against each compressed variant, in one table (output: bench_report.py).

Variants: the checkpoint in PyTorch (FP32, the reference), its ONNX export, and every variant found beside it
(`best.onnx`, `best-int8.onnx`, `best-fp16.onnx`, `best-prune30.pt` and its own ONNX variants) or given. Per variant:
- file size, parameters and GFLOPs (ONNX variants: those of the checkpoint they were made from, found by name);
- network latency p50/p90 at batch 1 after warm-up, all variants timed in turns (round robin) on the same
  letterboxed val images with the same thread count;
- the pipeline split into pre-processing, inference and post-processing (`YOLOSeg.predict`);
- throughput in images/s: batches of `batch` where the variant takes them (PyTorch, dynamic ONNX), else batch 1;
- mAP50-95 and mAP50 on the detection val set, mIoU and pixel accuracy on the semantic val set;
- each figure's change against the reference.
`baseline` adds the two stock single-task Ultralytics models of the same family and class counts (latency, size,
parameters and GFLOPs: what the joint model saves).
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoloseghw.compress.baseline import stock_models, stock_onnx
from yoloseghw.compress.bench_report import csv_text, plot, write_atomically
from yoloseghw.data.dataset import load_data_config
from yoloseghw.data.inputs import letterboxed, sample_images
from yoloseghw.nn.backends import ort_session
from yoloseghw.nn.openvino import FOLDER_SUFFIX, compile_config, is_openvino, openvino_core
from yoloseghw.utils.console import console, make_progress
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import size_mb
from yoloseghw.utils.metrics import MAP50, MAP50_95, MIOU, PIXEL_ACC
from yoloseghw.utils.timing import latency
from yoloseghw.utils.ultralytics import ultralytics_log

ACCURACY = (MAP50_95, MAP50, MIOU, PIXEL_ACC)
# variants looked for beside best.pt: best.onnx, best-int8.onnx, ..., best_openvino_model/, best-int8_openvino_model/
BESIDE = (".onnx", "-int8.onnx", "-fp16.onnx", FOLDER_SUFFIX, f"-int8{FOLDER_SUFFIX}", f"-int8-bf16{FOLDER_SUFFIX}")
STOCK_NAMES = {"detect": "stock detector", "semantic": "stock semantic"}


@dataclass(frozen=True)
class BenchOptions:
    """The options of a bench run (the one definition the CLI, the facade and the benchmark share).

    Attributes:
        threads: threads of every runtime (torch and ONNX Runtime).
        batch: batch size of the throughput figure.
        runs: timed runs per variant.
        rounds: round-robin blocks the runs are split into.
        baseline: also time the stock single-task detector and semantic model.
        imgsz: the input size every variant runs at (None: the checkpoint's training size); exported variants must
            have been exported at it.
    """

    threads: int = 2
    batch: int = 8
    runs: int = 100
    rounds: int = 10
    baseline: bool = False
    imgsz: int | None = None


@dataclass
class Variant:
    """One model to time and validate."""

    name: str
    path: Path
    params: int
    gflops: float
    results: dict[str, Any] = field(default_factory=dict)


def find_variants(weights: Path, given: list[Path]) -> list[Path]:
    """The checkpoint, the variants beside it (pruned ones too), and the given ones (each once, in that order)."""
    found = [weights.with_name(weights.stem + suffix) for suffix in BESIDE]
    for pruned in sorted(weights.parent.glob(f"{weights.stem}-prune*.pt")):
        found += [pruned, *(pruned.with_name(pruned.stem + suffix) for suffix in BESIDE)]
    paths = [weights, *(p for p in found if p.exists()), *given]
    for p in given:
        if not p.exists():
            raise UserInputError(f"--variant: file not found: {p}")
        if p.suffix not in (".pt", ".pth", ".onnx") and not is_openvino(p):
            raise UserInputError(f"--variant: {p} is not a checkpoint (.pt) or an exported model (.onnx, OpenVINO)")
    return list(dict.fromkeys(paths))


def network_runner(model: Any) -> Callable[[np.ndarray], Any]:
    """The bare network of a YOLOSeg (PyTorch or ONNX Runtime) on one float input batch."""
    backend = model.backend("cpu", model.threads)
    if backend.kind == "PyTorch":

        def run(x: np.ndarray) -> Any:
            with torch.inference_mode():
                return backend(torch.from_numpy(x))

        return run
    return lambda x: backend(torch.from_numpy(x))


def throughput(model: Any, inputs: list[np.ndarray], batch: int) -> tuple[float, int]:
    """Images per second and the batch used (1 for a static batch-1 export)."""
    backend = model.backend("cpu", model.threads)
    size = batch if backend.batch in (None, batch) else 1
    x = np.concatenate([inputs[i % len(inputs)] for i in range(size)])
    run = network_runner(model)
    run(x)
    n, start = 0, time.perf_counter()
    while n < 2 * batch or time.perf_counter() - start < 1.0:
        run(x)
        n += size
    return n / (time.perf_counter() - start), size


def model_stem(path: Path) -> str:
    """The stem of the model a file holds: best-prune30 for best-prune30-int8.onnx, best-prune30.onnx,
    best-prune30-int8_openvino_model/ and best-prune30-int8-bf16_openvino_model/."""
    name = path.name.removesuffix(FOLDER_SUFFIX).removesuffix(path.suffix).removesuffix("-bf16")
    return name.removesuffix("-int8").removesuffix("-fp16")


def source_model(onnx_path: Path, reference: Any, open_model: Callable[[Path], Any]) -> Any:
    """The PyTorch model an ONNX variant was made from: the checkpoint beside it of the same stem (best-prune30.pt for
    best-prune30-int8.onnx), else the reference."""
    pt = onnx_path.with_name(f"{model_stem(onnx_path)}.pt")
    return open_model(pt).model if pt.is_file() and pt != reference.weights else reference.model


def variant_name(model: Any, path: Path, reference: Path) -> str:
    if path == reference:
        return "PyTorch FP32"
    if model.exported is None:
        return f"PyTorch {path.stem}"
    precision = model.exported.metadata["precision"].upper()
    if getattr(model.exported, "float_precision", "f32") != "f32":  # an OpenVINO INT8 model's float parts
        precision += f"+{model.exported.float_precision}"
    runtime = "OpenVINO" if is_openvino(path) else "ONNX"
    stem = model_stem(path)
    return f"{runtime} {precision}" if stem == reference.stem else f"{runtime} {precision} {stem}"


def bench_images(det_data: dict, seg_data: dict, n: int = 20) -> list[Path]:
    """`n` val images of each dataset (the same for every variant)."""
    return sample_images(det_data, seg_data, 2 * n, split="val")


def run_bench(
    weights: Path,
    det: Path,
    seg: Path,
    out_dir: Path,
    open_model: Callable[[Path], Any],
    options: BenchOptions,
    given: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """Time and validate every variant of a checkpoint.

    Args:
        weights: the checkpoint (the reference); the variants beside it are found by name.
        det: the detection dataset yaml (its val split).
        seg: the semantic dataset yaml (its val split).
        out_dir: where bench.json, bench.csv and bench.png are written.
        open_model: opens a checkpoint or an ONNX file as a model with `predict`, `val` and `backend` (the facade).
        options: the bench options.
        given: more variant files.

    Returns:
        The results as written to bench.json.

    Raises:
        UserInputError: bad options, data or variant files.
    """
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    threads, batch, runs, rounds = options.threads, options.batch, options.runs, options.rounds
    if threads < 1 or batch < 1 or runs < 1 or rounds < 1:
        raise UserInputError("--threads, --batch, --runs and --rounds must be at least 1")
    det_data, seg_data = load_data_config(det, "det"), load_data_config(seg, "seg")
    reference = open_model(weights)
    imgsz = options.imgsz or reference._train_imgsz()
    params, gflops = get_num_params(reference.model), round(get_flops(reference.model, imgsz), 2)
    torch.set_num_threads(threads)
    models, variants = {}, []
    for path in find_variants(weights, list(given)):
        try:
            model = open_model(path)
        except UserInputError as e:  # a given variant's trouble names the option it came from
            raise UserInputError(str(e).replace("--weights:", "--variant:", 1) if path in given else str(e)) from None
        model.threads = threads
        if model.exported is not None and model.exported.imgsz not in (None, (imgsz, imgsz)):
            raise UserInputError(
                f"{path} takes {model.exported.imgsz} inputs; the bench runs at {imgsz} (--imgsz; export or compress "
                f"with --imgsz {imgsz})"
            )
        name = variant_name(model, path, weights)
        own = model.model if model.exported is None else source_model(path, reference, open_model)
        p, g = (params, gflops) if own is reference.model else (get_num_params(own), round(get_flops(own, imgsz), 2))
        models[name] = model
        variants.append(Variant(name, path, p, g))
    images = bench_images(det_data, seg_data)
    inputs = letterboxed(images, imgsz)
    runners = {name: network_runner(model) for name, model in models.items()}
    extra = _stock_models(reference, imgsz, threads, out_dir) if options.baseline else {}
    with console.status(f"Timing {len(runners) + len(extra)} models in turns ({runs} runs each, {threads} threads)"):
        times = latency({**runners, **{k: v[0] for k, v in extra.items()}}, inputs, runs, rounds)
    with make_progress() as progress:
        task = progress.add_task("bench", total=len(variants), info="")
        for v in variants:
            progress.update(task, description=v.name[:18], info="pipeline, throughput, validation")
            model = models[v.name]
            model.predict(images[:2], imgsz=imgsz, threads=threads)  # warm-up
            model.predict(images, imgsz=imgsz, threads=threads)
            split = {k: round(t / model.predictor.seen, 2) for k, t in model.predictor.totals.items()}
            ips, used = throughput(model, inputs, batch)
            with ultralytics_log(logging.WARNING):  # no dataset scan chatter inside the progress bar
                metrics = model.val(det, seg, imgsz=imgsz, threads=threads, verbose=False)["metrics"]
            v.results = {
                "size_mb": size_mb(v.path),
                "p50_ms": round(times[v.name][0], 2),
                "p90_ms": round(times[v.name][1], 2),
                **{f"{k}_ms": t for k, t in split.items()},
                "images_per_s": round(ips, 1),
                "throughput_batch": used,
                **{k: round(metrics[k], 4) for k in ACCURACY},
            }
            progress.advance(task)
    rows = [
        {"variant": v.name, "file": str(v.path), "params": v.params, "GFLOPs": v.gflops, **v.results} for v in variants
    ]
    ref = rows[0]
    for row in rows[1:]:
        row["change"] = {k: _change(row[k], ref[k]) for k in ("size_mb", "p50_ms", "images_per_s", *ACCURACY)}
    stock = [
        {
            "variant": name,
            "file": str(path),
            "params": p,
            "GFLOPs": g,
            "size_mb": round(path.stat().st_size / 2**20, 2),
            "p50_ms": round(times[name][0], 2),
            "p90_ms": round(times[name][1], 2),
        }
        for name, (_, path, p, g) in extra.items()
    ]
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {threads} threads",
        "imgsz": imgsz,
        "images": len(images),
        "variants": rows,
        "baseline": stock,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(out_dir / "bench.json", json.dumps(result, indent=2).encode())
    write_atomically(out_dir / "bench.csv", csv_text(rows + stock).encode())
    plot(rows, out_dir / "bench.png")
    return result


def _change(value: float, reference: float) -> str:
    return f"{(value / reference - 1) * 100:+.1f}%" if reference else "n/a"


def _stock_models(reference: Any, imgsz: int, threads: int, out_dir: Path) -> dict[str, tuple]:
    """The stock Ultralytics detector and semantic model of the same family and class counts, exported by Ultralytics
    to ONNX, as runners in ONNX Runtime and (where it is installed) in OpenVINO, FP32."""
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    family = reference.model.yaml["yaml_file"]
    out_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    models = stock_models(family, len(reference.det_names), len(reference.seg_names))
    for task, model in models.items():
        params, gflops = get_num_params(model), round(get_flops(model, imgsz), 2)
        path = stock_onnx(model, out_dir / f"{task}.onnx", imgsz)
        s = ort_session(path, threads)
        out[STOCK_NAMES[task]] = (lambda x, s=s: s.run(None, {s.get_inputs()[0].name: x}), path, params, gflops)
        compiled = openvino_runner(path, threads)
        if compiled is not None:
            out[f"{STOCK_NAMES[task]} (OpenVINO)"] = (compiled, path, params, gflops)
    return out


def openvino_runner(onnx_path: Path, threads: int) -> Callable[[np.ndarray], Any] | None:
    """A stock model's ONNX file compiled by OpenVINO for the CPU (FP32, `threads` threads); None without OpenVINO."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return None
    return openvino_core().compile_model(str(onnx_path), "CPU", compile_config("CPU", threads))
