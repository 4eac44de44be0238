"""OpenVINO models against ONNX Runtime FP32 in one round robin: network latency only, on the same real images.

Times a reference FP32 ONNX file in ONNX Runtime and each OpenVINO model once per `--precision` of its float parts
(f32, bf16), all with the same thread count, in turns (`--rounds` blocks of `--runs / --rounds` runs each), so that
machine noise hits every model alike. Compiles each OpenVINO model as `yoloseg` does (latency hint, fixed threads),
with the float precision set explicitly instead of read from its metadata, so that one file can be timed both ways.
Prints p50 / p90 per model and its speed-up over the reference's p50, and writes them to a JSON file.

    python benchmarks/openvino_speed.py runs/e20r16/s640/best.onnx runs/e20r16/s640/best-prune30-int8_openvino_model \\
        --images ../shared/data/camvid/images/val --threads 2 --runs 120 --precision f32 bf16
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from yoloseghw.data.inputs import letterboxed
from yoloseghw.nn.backends import FLOAT_PRECISIONS, ort_session
from yoloseghw.nn.openvino import compile_config, model_xml, openvino_core


def runners(reference: Path, models: list[Path], precisions: list[str], threads: int) -> dict[str, Callable]:
    """name (a model as its folder/name) -> a function running one input batch: the ONNX Runtime reference, then each
    OpenVINO model in each precision."""
    session = ort_session(reference, threads)
    name = session.get_inputs()[0].name
    found: dict[str, Callable] = {f"ONNX Runtime {reference.name}": lambda x: session.run(None, {name: x})}
    for path in models:
        xml = model_xml(path)
        for precision in precisions:
            config = compile_config("CPU", threads, precision=precision)
            request = openvino_core().compile_model(str(xml), "CPU", config).create_infer_request()
            key = f"OpenVINO {path.parent.name}/{path.name} {precision}"
            # the input shared with the request, not copied into it: as the backend's CompiledModel.__call__ runs it
            found[key] = lambda x, r=request: r.infer({0: x}, share_inputs=True)
    return found


def round_robin(run: dict[str, Callable], inputs: list[np.ndarray], runs: int, rounds: int) -> dict[str, list[float]]:
    """Milliseconds of each runner over `runs` runs, in `rounds` blocks that take turns, after 5 warm-up runs each."""
    times: dict[str, list[float]] = {key: [] for key in run}
    for key, fn in run.items():
        for x in inputs[:5]:
            fn(x)
    for _ in range(rounds):
        for key, fn in run.items():
            for i in range(runs // rounds):
                start = time.perf_counter()
                fn(inputs[i % len(inputs)])
                times[key].append((time.perf_counter() - start) * 1e3)
    return times


def summary(times: dict[str, list[float]]) -> list[dict[str, Any]]:
    """p50 / p90 per runner and its speed-up over the first one's (the reference's) p50."""
    base = float(np.median(next(iter(times.values()))))
    return [
        {
            "model": key,
            "p50_ms": round(float(np.median(ms)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2),
            "speedup": round(base / float(np.median(ms)), 3),
        }
        for key, ms in times.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="the FP32 ONNX file timed in ONNX Runtime")
    parser.add_argument("models", type=Path, nargs="+", help="OpenVINO models (.xml or *_openvino_model folders)")
    parser.add_argument("--images", type=Path, required=True, help="folder of real images to run on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=120, help="timed runs per model and precision")
    parser.add_argument("--rounds", type=int, default=6, help="round-robin blocks the runs are split into")
    parser.add_argument("--precision", nargs="+", default=["f32"], choices=FLOAT_PRECISIONS)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/openvino_speed.json"))
    args = parser.parse_args()

    shape = openvino_core().read_model(str(model_xml(args.models[0]))).inputs[0].get_partial_shape()
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:20]
    inputs = letterboxed(images, shape[2].get_length())
    rows = summary(
        round_robin(runners(args.reference, args.models, args.precision, args.threads), inputs, args.runs, args.rounds)
    )
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, {args.runs} runs per model")
    for row in rows:
        print(f"  {row['model']:<64} p50 {row['p50_ms']:7.2f}  p90 {row['p90_ms']:7.2f}  {row['speedup']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
