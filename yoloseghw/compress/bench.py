"""`yoloseg bench`: the plain model against each compressed variant, in one table.

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

import csv
import io
import json
import logging
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from yoloseghw.utils.console import console, make_progress, ultralytics_log
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import atomic_path
from yoloseghw.utils.metrics import MAP50, MAP50_95, MIOU, PIXEL_ACC

ACCURACY = (MAP50_95, MAP50, MIOU, PIXEL_ACC)
BESIDE = (".onnx", "-int8.onnx", "-fp16.onnx")  # variants looked for beside best.pt: best.onnx, best-int8.onnx, ...


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
    paths = [weights, *(p for p in found if p.is_file()), *given]
    for p in given:
        if not p.is_file():
            raise UserInputError(f"--variant: file not found: {p}")
    return list(dict.fromkeys(paths))


def write_atomically(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def timings(
    runners: dict[str, Callable[[np.ndarray], Any]], inputs: list[np.ndarray], runs: int, rounds: int
) -> dict[str, list[list[float]]]:
    """ms of each run per runner and round: a warm-up, then `rounds` blocks in turn (each block the same inputs for
    every runner) so that machine noise hits all alike."""
    times: dict[str, list[list[float]]] = {name: [] for name in runners}
    for run in runners.values():
        for x in inputs[:5]:
            run(x)
    per_round = max(runs // rounds, 1)
    for r in range(rounds):
        for name, run in runners.items():
            block = []
            for i in range(per_round):
                x = inputs[(r * per_round + i) % len(inputs)]
                t = time.perf_counter()
                run(x)
                block.append((time.perf_counter() - t) * 1e3)
            times[name].append(block)
    return times


def p50_p90(blocks: list[list[float]]) -> tuple[float, float]:
    """Median and 90th percentile of all the runs in `blocks`."""
    t = sorted(x for block in blocks for x in block)
    return statistics.median(t), t[int(0.9 * (len(t) - 1))]


def latency(runners: dict[str, Callable[[np.ndarray], Any]], inputs: list[np.ndarray], runs: int, rounds: int):
    """p50/p90 ms per runner over `timings`."""
    return {name: p50_p90(blocks) for name, blocks in timings(runners, inputs, runs, rounds).items()}


def network_runner(model: Any) -> Callable[[np.ndarray], Any]:
    """The bare network of a YOLOSeg (PyTorch or ONNX Runtime) on one float input batch."""
    backend = model._backend("cpu", model.threads)
    if backend.kind == "PyTorch":

        def run(x: np.ndarray) -> Any:
            with torch.inference_mode():
                return backend(torch.from_numpy(x))

        return run
    return lambda x: backend(torch.from_numpy(x))


def throughput(model: Any, inputs: list[np.ndarray], batch: int) -> tuple[float, int]:
    """Images per second and the batch used (1 for a static batch-1 export)."""
    backend = model._backend("cpu", model.threads)
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
    """The stem of the model a file holds: best-prune30 for best-prune30-int8.onnx and best-prune30.onnx."""
    return path.stem.removesuffix("-int8").removesuffix("-fp16")


def source_model(onnx_path: Path, reference: Any) -> Any:
    """The PyTorch model an ONNX variant was made from: the checkpoint beside it of the same stem (best-prune30.pt for
    best-prune30-int8.onnx), else the reference."""
    from yoloseghw import YOLOSeg

    pt = onnx_path.with_name(f"{model_stem(onnx_path)}.pt")
    return YOLOSeg(pt).model if pt.is_file() and pt != reference.weights else reference.model


def variant_name(model: Any, path: Path, reference: Path) -> str:
    if path == reference:
        return "PyTorch FP32"
    if model.onnx is None:
        return f"PyTorch {path.stem}"
    precision = model.onnx.metadata["precision"].upper()
    stem = model_stem(path)
    return f"ONNX {precision}" if stem == reference.stem else f"ONNX {precision} {stem}"


def bench_images(det_data: dict, seg_data: dict, n: int = 20) -> list[Path]:
    """`n` val images of each dataset (the same for every variant)."""
    from yoloseghw.compress.quantize import calibration_images

    return calibration_images(det_data, seg_data, 2 * n, split="val")


def run_bench(
    weights: Path,
    det: Path,
    seg: Path,
    out_dir: Path,
    *,
    given: tuple[Path, ...] = (),
    threads: int = 2,
    batch: int = 8,
    runs: int = 100,
    rounds: int = 10,
    baseline: bool = False,
) -> dict[str, Any]:
    """Time and validate every variant; write bench.json, bench.csv and bench.png to `out_dir`; return the results."""
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    from yoloseghw import YOLOSeg
    from yoloseghw.bench.onnx_speed import letterboxed
    from yoloseghw.data.dataset import load_data_config

    if threads < 1 or batch < 1 or runs < 1 or rounds < 1:
        raise UserInputError("--threads, --batch, --runs and --rounds must be at least 1")
    det_data, seg_data = load_data_config(det, "det"), load_data_config(seg, "seg")
    reference = YOLOSeg(weights)
    imgsz = reference._train_imgsz()
    params, gflops = get_num_params(reference.model), round(get_flops(reference.model, imgsz), 2)
    torch.set_num_threads(threads)
    models, variants = {}, []
    for path in find_variants(weights, list(given)):
        model = YOLOSeg(path)
        model.threads = threads
        if model.onnx is not None and model.onnx.imgsz not in (None, (imgsz, imgsz)):
            raise UserInputError(f"{path} takes {model.onnx.imgsz} inputs; the checkpoint was trained at {imgsz}")
        name = variant_name(model, path, weights)
        own = model.model if model.onnx is None else source_model(path, reference)
        p, g = (params, gflops) if own is reference.model else (get_num_params(own), round(get_flops(own, imgsz), 2))
        models[name] = model
        variants.append(Variant(name, path, p, g))
    images = bench_images(det_data, seg_data)
    inputs = letterboxed(images, imgsz)
    runners = {name: network_runner(model) for name, model in models.items()}
    extra = _stock_models(reference, imgsz, threads, out_dir) if baseline else {}
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
                "size_mb": round(v.path.stat().st_size / 2**20, 2),
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
    write_atomically(out_dir / "bench.csv", _csv(rows + stock).encode())
    _plot(rows, out_dir / "bench.png")
    return result


def _change(value: float, reference: float) -> str:
    return f"{(value / reference - 1) * 100:+.1f}%" if reference else "n/a"


def _stock_models(reference: Any, imgsz: int, threads: int, out_dir: Path) -> dict[str, tuple]:
    """The stock Ultralytics detector and semantic model of the same family and class counts, as ONNX runners."""
    from ultralytics.nn.tasks import DetectionModel, SemanticSegmentationModel
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    from yoloseghw.bench.onnx_speed import session, stock_onnx

    family = reference.model.yaml["yaml_file"]
    out_dir.mkdir(parents=True, exist_ok=True)
    stock = {
        "stock detector": DetectionModel(family, nc=len(reference.det_names), verbose=False),
        "stock semantic": SemanticSegmentationModel(
            family.replace(".yaml", "-sem.yaml"), nc=len(reference.seg_names), verbose=False
        ),
    }
    out = {}
    for name, model in stock.items():
        params, gflops = get_num_params(model), round(get_flops(model, imgsz), 2)
        path = stock_onnx(model, out_dir / f"{name.split()[1]}.onnx", imgsz)
        s = session(path, threads)
        out[name] = (lambda x, s=s: s.run(None, {s.get_inputs()[0].name: x}), path, params, gflops)
    return out


def _csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row if k != "change"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _plot(rows: list[dict], path: Path) -> None:
    """Accuracy against latency: one point per variant, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), tight_layout=True)
    for ax, key, title in ((axes[0], MAP50_95, "detection: mAP50-95"), (axes[1], MIOU, "segmentation: mIoU")):
        for row in rows:
            ax.scatter(row["p50_ms"], row[key], s=40)
            ax.annotate(
                row["variant"], (row["p50_ms"], row[key]), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
        ax.set(xlabel="network latency p50 (ms, batch 1)", ylabel=title.split(": ")[1], title=title)
        ax.grid(alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_atomically(path, buffer.getvalue())


def print_table(result: dict[str, Any]) -> None:
    """The results as a rich table; under each variant, its changes against the reference (the first row)."""
    from rich.table import Table

    columns = {
        "size_mb": ("MB", "{:.2f}"),
        "params": ("params M", "{:.2f}"),
        "GFLOPs": ("GFLOPs", "{:.2f}"),
        "p50_ms": ("p50 ms", "{:.1f}"),
        "p90_ms": ("p90 ms", "{:.1f}"),
        "images_per_s": ("img/s", "{:.1f}"),
        MAP50_95: ("mAP50-95", "{:.4f}"),
        MAP50: ("mAP50", "{:.4f}"),
        MIOU: ("mIoU", "{:.4f}"),
        PIXEL_ACC: ("pix acc", "{:.4f}"),
    }
    table = Table(title=f"yoloseg bench ({result['machine']}, {result['imgsz']} px)", title_justify="left")
    table.add_column("variant", overflow="fold")
    for label, _ in columns.values():
        table.add_column(label, justify="right", overflow="fold")
    for row in result["variants"] + result["baseline"]:
        shown = {**row, "params": row["params"] / 1e6}
        table.add_row(row["variant"], *(fmt.format(shown[k]) if k in row else "-" for k, (_, fmt) in columns.items()))
        if "change" in row:
            change = row["change"]
            table.add_row("", *(change.get(k, "") for k in columns), style="dim")
    console.print(table)
