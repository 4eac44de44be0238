"""Low-rank factorization across model scales: which layers the measured budget picks, and what it does to ONNX
Runtime latency, for joint models of several families (random weights: latency does not depend on them).

For each family it builds the joint model, measures every convolution (compress/lowrank.py) at `--imgsz`, factorizes
the chosen ones, exports both the plain and the factorized model to ONNX (FP32, static, batch 1) and times the two in
ONNX Runtime in turns (round robin) with `--threads` threads.

    python benchmarks/lowrank_speed.py --families yolo26n yolo26s yolo11s --imgsz 640 --threads 2 --rank 0.5
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from yoloseghw.compress.lowrank import factorize, measure
from yoloseghw.engine.exporter import ExportOptions, export_onnx
from yoloseghw.nn.backends import ort_session
from yoloseghw.nn.tasks import build_model
from yoloseghw.utils.timing import latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=["yolo26n", "yolo26s", "yolo11s"])
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rank", type=float, default=0.5)
    parser.add_argument("--max-error", type=float, default=1.0, help="random weights: the error budget does not apply")
    parser.add_argument("--min-gain", type=float, default=1.1)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--det-nc", type=int, default=5)
    parser.add_argument("--seg-nc", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/lowrank_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    tmp = Path(tempfile.mkdtemp())
    try:
        for family in args.families:
            torch.manual_seed(0)
            model = build_model(family, args.det_nc, args.seg_nc)
            files = {"plain": export_onnx(model, tmp / f"{family}.pt", ExportOptions(imgsz=args.imgsz))}
            choices = measure(model, args.imgsz, args.rank, args.max_error, args.min_gain)
            count = factorize(model, choices)
            files["lowrank"] = export_onnx(model, tmp / f"{family}-lowrank.pt", ExportOptions(imgsz=args.imgsz))
            sessions = {k: ort_session(f, args.threads) for k, f in files.items()}
            x = [np.random.default_rng(0).random((1, 3, args.imgsz, args.imgsz), dtype=np.float32)]
            runners = {k: (lambda v, s=s: s.run(None, {s.get_inputs()[0].name: v})) for k, s in sessions.items()}
            times = latency(runners, x, args.runs, args.rounds)
            results[family] = {
                "factorized": count,
                "candidates": len(choices),
                "chosen": [c.name for c in choices if c.chosen],
                "params": {k: sum(p.numel() for p in m.parameters()) for k, m in (("lowrank", model),)},
                "p50_ms": {k: round(v[0], 2) for k, v in times.items()},
                "speedup": round(times["plain"][0] / times["lowrank"][0], 3),
            }
            print(family, json.dumps(results[family]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "settings": vars(args) | {"out": str(args.out)},
        "machine": f"{platform.processor() or platform.machine()}, onnxruntime {ort.__version__}",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
