"""Where an OpenVINO model's time goes: OpenVINO's own per-node counters (PERF_COUNT), summed over many runs.

Compiles each model as `yoloseg` runs it (latency hint, f32 float parts unless `--precision` says otherwise, a fixed
thread count), runs it on the same letterboxed real images with the counters on, and adds up each executed node's
time over the timed runs, after a warm-up that is not counted. Groups the time by node type and by the kernel's
precision (the last part of OpenVINO's exec type: I8, FP32, BF16...), so that an INT8 model shows which of its time
still runs in float. Prints the top nodes with their share of the whole, and writes everything to a JSON file.

    python benchmarks/openvino_profile.py best_openvino_model best-int8_openvino_model \\
        --images ../shared/data/camvid/images/val --threads 2
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from yoloseghw.data.inputs import letterboxed
from yoloseghw.nn.openvino import compile_config, model_xml, openvino_core


def kernel_precision(exec_type: str) -> str:
    """The precision part of an OpenVINO exec type ('brgconv_avx512_I8' -> 'I8'; 'undef' -> 'undef')."""
    return exec_type.rsplit("_", 1)[-1] if "_" in exec_type else exec_type


def profile(xml: Path, inputs: list, threads: int, runs: int, precision: str, warmup: int = 5) -> dict[str, Any]:
    """Per-node, per-type and per-precision time (ms per run) of the OpenVINO model `xml` over `runs` timed runs."""
    config = compile_config("CPU", threads, profile=True, precision=precision)
    compiled = openvino_core().compile_model(str(xml), "CPU", config)
    request = compiled.create_infer_request()
    nodes, types, precisions = defaultdict(float), defaultdict(float), defaultdict(float)
    type_of: dict[str, str] = {}
    for i in range(warmup + runs):
        request.infer({0: inputs[i % len(inputs)]})
        if i < warmup:
            continue
        for info in request.profiling_info:
            ms = info.real_time.total_seconds() * 1e3 / runs
            if ms <= 0:
                continue
            type_of[info.node_name] = f"{info.node_type} [{info.exec_type}]"
            nodes[info.node_name] += ms
            types[info.node_type] += ms
            precisions[kernel_precision(info.exec_type)] += ms
    total = sum(nodes.values())
    ranked = sorted(nodes.items(), key=lambda kv: -kv[1])

    def by_time(table: dict[str, float]) -> dict[str, float]:
        return {key: round(ms, 3) for key, ms in sorted(table.items(), key=lambda kv: -kv[1])}

    return {
        "file": str(xml),
        "ms_per_run": round(total, 3),
        "nodes": [
            {"node": n, "type": type_of[n], "ms": round(ms, 3), "share": round(ms / total, 4)} for n, ms in ranked
        ],
        "types": by_time(types),
        "precisions": by_time(precisions),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path, nargs="+", help="OpenVINO models (.xml or *_openvino_model folders)")
    parser.add_argument("--images", type=Path, required=True, help="folder of real images to run on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per model")
    parser.add_argument("--precision", default="f32", help="INFERENCE_PRECISION_HINT for the float parts (f32, bf16)")
    parser.add_argument("--top", type=int, default=12, help="nodes to print per model")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/openvino_profile.json"))
    args = parser.parse_args()

    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:20]
    results = []
    for path in args.models:
        xml = model_xml(path)
        shape = openvino_core().read_model(str(xml)).inputs[0].get_partial_shape()
        result = profile(xml, letterboxed(images, shape[2].get_length()), args.threads, args.runs, args.precision)
        results.append(result)
        print(f"\n{xml} ({shape[2]} px, {args.threads} threads): {result['ms_per_run']:.2f} ms of nodes")
        for row in result["nodes"][: args.top]:
            print(f"  {row['ms']:7.3f} ms {row['share']:6.1%}  {row['type']:<44} {row['node']}")
        print("  by type: " + ", ".join(f"{t} {ms:.2f}" for t, ms in list(result["types"].items())[:8]))
        print("  by precision: " + ", ".join(f"{p} {ms:.2f}" for p, ms in result["precisions"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"command": vars(args) | {"models": list(map(str, args.models))}, "results": results}, indent=2, default=str
        )
    )


if __name__ == "__main__":
    main()
