"""Where an ONNX model's time goes: ONNX Runtime's own per-node profile, summed over many runs.

Runs each file on the same letterboxed real images with a fixed thread count and profiling on, then adds up the
kernel time of every node (and of every op type) over the timed runs, after a warm-up that is not counted. Prints
the top nodes with their share of the whole, and writes everything to a JSON file.

    python benchmarks/onnx_profile.py best.onnx best-int8.onnx --images ../shared/data/camvid/images/val --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import onnxruntime as ort

from yoloseghw.data.inputs import letterboxed

KERNEL_SUFFIX = "_kernel_time"


def profile(path: Path, inputs: list, threads: int, runs: int, warmup: int = 5) -> dict[str, Any]:
    """Per-node and per-op-type kernel time (ms per run) of `path` over `runs` timed runs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for i in range(warmup + runs):
            session.run(None, {name: inputs[i % len(inputs)]})
        events = json.loads(Path(session.end_profiling()).read_text())
    runs_seen, nodes, ops = -1, defaultdict(float), defaultdict(float)
    op_of = {}
    for event in events:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            runs_seen += 1
        if event.get("cat") != "Node" or not event["name"].endswith(KERNEL_SUFFIX) or runs_seen < warmup:
            continue
        node = event["name"][: -len(KERNEL_SUFFIX)]
        op_of[node] = event.get("args", {}).get("op_name", "?")
        nodes[node] += event["dur"] / 1e3 / runs
        ops[op_of[node]] += event["dur"] / 1e3 / runs
    total = sum(nodes.values())
    ranked = sorted(nodes.items(), key=lambda kv: -kv[1])
    return {
        "file": str(path),
        "kernel_ms_per_run": round(total, 3),
        "nodes": [{"node": n, "op": op_of[n], "ms": round(ms, 3), "share": round(ms / total, 4)} for n, ms in ranked],
        "ops": {op: round(ms, 3) for op, ms in sorted(ops.items(), key=lambda kv: -kv[1])},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("onnx", type=Path, nargs="+", help="ONNX files (static shape) to profile")
    parser.add_argument("--images", type=Path, required=True, help="folder of real images to run on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per file")
    parser.add_argument("--top", type=int, default=12, help="nodes to print per file")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/onnx_profile.json"))
    args = parser.parse_args()

    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:20]
    results = []
    for path in args.onnx:
        shape = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
        result = profile(path, letterboxed(images, int(shape[2])), args.threads, args.runs)
        results.append(result)
        print(f"\n{path} ({shape[2]} px, {args.threads} threads): {result['kernel_ms_per_run']:.2f} ms of kernels")
        for row in result["nodes"][: args.top]:
            print(f"  {row['ms']:7.3f} ms {row['share']:6.1%}  {row['op']:<22} {row['node']}")
        print("  by op type: " + ", ".join(f"{op} {ms:.2f}" for op, ms in list(result["ops"].items())[:8]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"command": vars(args) | {"onnx": list(map(str, args.onnx))}, "results": results}, indent=2, default=str
        )
    )


if __name__ == "__main__":
    main()
