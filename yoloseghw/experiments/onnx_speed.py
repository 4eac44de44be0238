"""ONNX Runtime latency: the joint det+seg model vs the two stock single-task Ultralytics models, exported alike.

Exports (a) a yoloseg checkpoint with `yoloseg export`, once per semantic output kind asked for (`--semantic`), and
with `--det/--seg` also as INT8 (`yoloseg compress --method quantize`), (b) a stock Ultralytics detector and (c) a
stock Ultralytics semantic model of the same family and class counts with Ultralytics' own exporter (FP32, static
shape, batch 1, no NMS in the graph; the stock semantic model with Ultralytics' full-size class map). All run in ONNX
Runtime on the CPU with a fixed thread count, on the same letterboxed real images, in turns (round robin) so machine
noise hits all alike. Reports network p50/p90 per model, each joint variant's share of the sum of the two
single-task models, the full pipeline split into pre-processing, inference and post-processing (ONNX Runtime for
every joint variant, PyTorch for the checkpoint), and with `--seg` each variant's mIoU and pixel accuracy on the
semantic val set (with `--val-det`, also mAP on the detection val set). Several `--weights` (one family and class
lists: say the same recipe trained with `--seg-head conv` and `separable`) are timed in the same round robin, each
named after its run folder. Besides the ratio of the p50s, each joint variant's ratio is taken per round, from that
round's medians of the three models, which ran one after another on the same inputs; their median and quartiles
are what a noisy machine moves least.

    python benchmarks/onnx_speed.py --weights runs/yoloseg/train/weights/best.pt \
        --images ../shared/data/camvid/images/val --imgsz 640 --threads 2 \
        --semantic classmap classmap4 classmap8 --det highway.yaml --seg camvid.yaml
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from yoloseghw.compress.baseline import stock_models, stock_onnx
from yoloseghw.data.inputs import letterboxed
from yoloseghw.engine.model import YOLOSeg
from yoloseghw.nn.backends import ort_session
from yoloseghw.nn.semantic_output import DEFAULT_SEMANTIC_OUTPUT
from yoloseghw.utils.metrics import MAP50, MAP50_95, SEG_KEYS
from yoloseghw.utils.timing import latency, p50_p90, timings


def session_runners(sessions: dict[str, ort.InferenceSession]) -> dict[str, Callable[[np.ndarray], list]]:
    """{name: run(x)} of each ONNX Runtime session on one input batch."""
    return {name: (lambda x, s=s: s.run(None, {s.get_inputs()[0].name: x})) for name, s in sessions.items()}


def network_latency(
    sessions: dict[str, ort.InferenceSession], inputs: list[np.ndarray], runs: int, rounds: int
) -> dict:
    """p50/p90 ms of session.run per model, timed in `rounds` alternating blocks after a warm-up."""
    return latency(session_runners(sessions), inputs, runs, rounds)


def round_ratios(blocks: dict[str, list[list[float]]], joint: str) -> dict[str, float]:
    """Median and quartiles over the rounds of `joint`'s share of the two stock models, each round's medians paired
    (the three ran one after the other on the same inputs, so a slow spell of the machine cancels out)."""
    med = statistics.median
    ratios = sorted(med(j) / (med(d) + med(s)) for j, d, s in zip(blocks[joint], blocks["detect"], blocks["semantic"]))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
    return {"median": round(med(ratios), 3), "q25": round(q[0], 3), "q75": round(q[2], 3)}


def pipeline_split(weights: Path, images: list[Path], imgsz: int, threads: int) -> dict[str, float]:
    """Mean ms per image of pre-processing, inference and post-processing through `YOLOSeg.predict`."""
    model = YOLOSeg(weights)
    model.predict(images[:3], imgsz=imgsz, threads=threads)  # warm-up
    model.predict(images, imgsz=imgsz, threads=threads)
    p = model.predictor
    return {k: v / p.seen for k, v in p.totals.items()}


def joint_variants(
    weights: Path,
    out: Path,
    imgsz: int,
    kinds: list[str],
    det: Path | None,
    seg: Path | None,
    reuse: bool = False,
    simplify: bool = False,
    label: str = "joint",
) -> dict[str, Path]:
    """{name: ONNX file} of the joint model: one FP32 export per kind, and its INT8 twin when both datasets are given
    (each kind from its own copy of the checkpoint, so that the files get their own names; names and files start
    with `label`). With `reuse`, files that an earlier run of the same settings left in `out` are taken as they are."""
    files = {}
    for kind in kinds:
        pt = Path(shutil.copy(weights, out / f"{label}-{kind}.pt"))
        fp32, int8 = pt.with_suffix(".onnx"), out / f"{label}-{kind}-int8.onnx"
        if not (reuse and fp32.is_file()):
            fp32 = YOLOSeg(pt).export(imgsz=imgsz, semantic=kind, simplify=simplify)
        files[f"{label} {kind}"] = fp32
        if reuse and int8.is_file():
            files[f"{label} {kind} INT8"] = int8
        elif det and seg:
            files[f"{label} {kind} INT8"] = YOLOSeg(pt).compress(
                "quantize", det=det, seg=seg, imgsz=imgsz, semantic=kind, force=True
            )
    return files


def joint_labels(weights: list[Path]) -> list[str]:
    """'joint' for one checkpoint; for several, 'joint-' + each one's run folder name (.../<run>/weights/best.pt)."""
    if len(weights) == 1:
        return ["joint"]
    labels = [f"joint-{w.parent.parent.name if w.parent.name == 'weights' else w.stem}" for w in weights]
    if len(set(labels)) < len(labels):
        raise SystemExit(f"--weights: the checkpoints need distinct run folder names, got {', '.join(labels)}")
    return labels


def accuracy(path: Path, det: Path | None, seg: Path, threads: int) -> dict[str, float]:
    """mIoU and pixel accuracy of an ONNX file on the semantic val set of `seg` (and mAP on `det`'s, when given)."""
    metrics = YOLOSeg(path).val(det=det, seg=seg, threads=threads, verbose=False)["metrics"]
    keys = (MAP50_95, MAP50, *SEG_KEYS)
    return {k.removeprefix("metrics/"): round(v, 4) for k, v in metrics.items() if k in keys}


def command_line(args: argparse.Namespace) -> str:
    """The options of this run as they are typed (flags for booleans, lists space-separated), without --out."""
    words = []
    for key, value in vars(args).items():
        flag = "--" + key.replace("_", "-")
        if key == "out" or value is None or value is False:
            continue
        words.append(
            flag if value is True else f"{flag} {' '.join(map(str, value)) if isinstance(value, list) else value}"
        )
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--weights", type=Path, nargs="+", required=True, help="yoloseg best.pt file(s) of one family and class lists"
    )
    parser.add_argument("--images", type=Path, required=True, help="folder of real images to time on")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100, help="timed runs per model")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--semantic", nargs="+", default=[DEFAULT_SEMANTIC_OUTPUT], help="joint output kinds")
    parser.add_argument("--det", type=Path, help="detection yaml: with --seg, INT8 twins calibrated on both sets")
    parser.add_argument("--seg", type=Path, help="semantic yaml: mIoU and pixel accuracy of every joint variant")
    parser.add_argument("--val-det", action="store_true", help="with --det: mAP of every joint variant too")
    parser.add_argument("--reuse", action="store_true", help="time the ONNX files an earlier run left in --out")
    parser.add_argument("--simplify", action="store_true", help="export the joint FP32 files with onnxslim")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/onnx_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # the PyTorch pipeline row uses the same thread count

    args.out.mkdir(parents=True, exist_ok=True)
    files, checkpoints = {}, {}
    for weights, label in zip(args.weights, joint_labels(args.weights)):
        checkpoints[label] = Path(shutil.copy(weights, args.out / f"{label}.pt"))
        files.update(
            joint_variants(
                checkpoints[label],
                args.out,
                args.imgsz,
                args.semantic,
                args.det,
                args.seg,
                args.reuse,
                args.simplify,
                label,
            )
        )
    models = [YOLOSeg(pt) for pt in checkpoints.values()]
    joint, family = models[0], models[0].model.yaml["yaml_file"]
    if any(
        (m.model.yaml["yaml_file"], m.det_names, m.seg_names) != (family, joint.det_names, joint.seg_names)
        for m in models
    ):
        raise SystemExit("--weights: the checkpoints must share one model family and both class lists")
    det_nc, seg_nc = len(joint.det_names), len(joint.seg_names)
    stock = {"detect": args.out / "detect.onnx", "semantic": args.out / "semantic.onnx"}
    for task, model in stock_models(family, det_nc, seg_nc).items():
        if not (args.reuse and stock[task].is_file()):
            stock[task] = stock_onnx(model, stock[task], args.imgsz)
    files.update(stock)

    images = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:50]
    inputs = letterboxed(images, args.imgsz)
    sessions = {name: ort_session(path, args.threads) for name, path in files.items()}
    blocks = timings(session_runners(sessions), inputs, args.runs, args.rounds)
    latency = {name: p50_p90(b) for name, b in blocks.items()}
    stock = latency["detect"][0] + latency["semantic"][0]
    joints = [name for name in files if name.startswith("joint")]
    result = {
        "command": "python benchmarks/onnx_speed.py " + command_line(args),
        "machine": f"{platform.processor() or platform.machine()}, onnxruntime {ort.__version__}",
        "family": Path(family).stem,
        "imgsz": args.imgsz,
        "threads": args.threads,
        "images": len(images),
        "latency_ms": {k: {"p50": round(v[0], 2), "p90": round(v[1], 2)} for k, v in latency.items()},
        "size_mb": {k: round(p.stat().st_size / 2**20, 2) for k, p in files.items()},
        "joint_over_sum": {name: round(latency[name][0] / stock, 3) for name in joints},
        "joint_over_sum_per_round": {name: round_ratios(blocks, name) for name in joints},
        "pipeline_ms": {
            **{name: pipeline_split(files[name], images, args.imgsz, args.threads) for name in joints},
            **{
                f"{label} pytorch": pipeline_split(pt, images, args.imgsz, args.threads)
                for label, pt in checkpoints.items()
            },
        },
    }
    if args.seg:
        det = args.det if args.val_det else None
        result["val"] = {name: accuracy(files[name], det, args.seg, args.threads) for name in joints}
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
