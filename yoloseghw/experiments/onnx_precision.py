"""ONNX Runtime latency of exported variants of one model (FP32, INT8, FP16, ...), timed in turns on real images.

The first file is the reference: each other row gives its speed-up over it. Same letterboxed images, fixed thread
count, warm-up, then round-robin blocks so that machine noise hits every variant alike (utils/timing.py).

    python benchmarks/onnx_precision.py best.onnx best-int8.onnx best-fp16.onnx \
        --images ../shared/data/camvid/images/val --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import onnxruntime as ort

from yoloseghw.data.inputs import letterboxed
from yoloseghw.experiments.onnx_speed import network_latency
from yoloseghw.nn.backends import OnnxBackend, ort_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "models", type=Path, nargs="+", help="yoloseg ONNX files of one model; the first is the reference"
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of real images to time on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=150, help="timed runs per model")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    backends = {str(p): OnnxBackend(p) for p in args.models}  # checks each is a yoloseg export
    imgsz = {b.imgsz for b in backends.values()}
    if len(imgsz) != 1 or None in imgsz:
        raise SystemExit(f"the models must be static exports of one input size, got {imgsz}")
    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:50]
    inputs = letterboxed(images, imgsz.pop()[0])
    sessions = {name: ort_session(name, args.threads) for name in backends}
    latency = network_latency(sessions, inputs, args.runs, args.rounds)
    reference = latency[str(args.models[0])][0]
    rows = {
        name: {
            "precision": backends[name].metadata["precision"],
            "size_mb": round(Path(name).stat().st_size / 2**20, 2),
            "p50_ms": round(p50, 2),
            "p90_ms": round(p90, 2),
            "speedup": round(reference / p50, 2),
        }
        for name, (p50, p90) in latency.items()
    }
    machine = f"{platform.processor() or platform.machine()}, onnxruntime {ort.__version__}, {args.threads} threads"
    print(json.dumps({"machine": machine, "images": len(images), "models": rows}, indent=2))


if __name__ == "__main__":
    main()
