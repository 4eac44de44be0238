"""Joint det+seg model vs the two stock single-task Ultralytics models, at an equal budget.

Trains (a) the yoloseg joint model on a box dataset + a mask dataset, (b) stock Ultralytics `detect` on the box
dataset, (c) stock Ultralytics `semantic` on the mask dataset, with the same model scale, imgsz, epochs, batch and
data; then reports mAP50-95, mAP50, mIoU, training time, parameters, GFLOPs and PyTorch CPU latency, as JSON and as
a markdown table.

    python benchmarks/joint_vs_single.py --det ../shared/data/highway/highway.yaml \
        --seg ../shared/data/camvid/camvid.yaml --model yolo26n --epochs 10 --imgsz 256 --ratio 3:1
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel, SemanticSegmentationModel
from ultralytics.utils.torch_utils import get_flops, get_num_params

from yoloseghw.engine.model import YOLOSeg
from yoloseghw.utils.metrics import MAP50, MAP50_95, MIOU


def forward_times_ms(model: torch.nn.Module, imgsz: int, runs: int, warmup: int = 5) -> list[float]:
    """Batch-1 fp32 CPU forward times of an eval model (after `warmup` untimed passes)."""
    model = model.float().eval().cpu()
    x = torch.rand(1, 3, imgsz, imgsz)
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            t = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append((time.perf_counter() - t) * 1e3)
    return times


def latency_table(models: dict[str, torch.nn.Module], imgsz: int, threads: int, runs: int, rounds: int = 5) -> dict:
    """p50/p90 latency per model; models are timed in turns (round robin) so machine noise hits all of them alike."""
    torch.set_num_threads(threads)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            times[name] += forward_times_ms(model, imgsz, max(runs // rounds, 1))
    return {name: (statistics.median(t), sorted(t)[int(0.9 * (len(t) - 1))]) for name, t in times.items()}


def train_or_reuse(run: Path, reuse: bool, train: Callable[[], object]) -> float:
    """Train (timed, in seconds) unless `reuse` and the run already has best.pt; then its time.txt gives the time."""
    timing = run / "time.txt"
    if reuse and (run / "weights/best.pt").is_file() and timing.is_file():
        return float(timing.read_text())
    t = time.time()
    train()
    seconds = time.time() - t
    timing.write_text(f"{seconds:.1f}")
    return seconds


def add_training_arguments(parser: argparse.ArgumentParser, epochs: int) -> None:
    """The data, model and training budget options every training benchmark takes."""
    parser.add_argument("--det", required=True)
    parser.add_argument("--seg", required=True)
    parser.add_argument("--model", default="yolo26n")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="")


def semantic_yaml(model: str) -> str:
    """yolo26n -> yolo26n-sem.yaml (Ultralytics ships semantic yamls for YOLO26)."""
    match = re.fullmatch(r"(yolo26)([nslmx])", model)
    if not match:
        raise SystemExit(f"--model {model}: stock Ultralytics semantic models exist for yolo26n/s/m/l/x only")
    return f"{match[1]}{match[2]}-sem.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_arguments(parser, epochs=10)
    parser.add_argument("--ratio", default="auto", help="joint model ratio: auto (each set once an epoch) or det:seg")
    parser.add_argument("--schedule", default="alternate", help="joint model schedule")
    parser.add_argument(
        "--joint-only", action="store_true", help="train only the joint model; latency against untrained stock models"
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the latency measurement")
    parser.add_argument("--runs", type=int, default=100, help="timed forward passes per model and size (5 turns)")
    parser.add_argument("--project", default="runs/bench")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in --project (their measured time)")
    args = parser.parse_args()

    project = Path(args.project).resolve()
    common = {
        "epochs": args.epochs,
        "imgsz": args.imgsz,
        "batch": args.batch,
        "workers": args.workers,
        "seed": args.seed,
        "device": args.device,
    }
    results = {
        "settings": {**vars(args), "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
    }

    joint_time = train_or_reuse(
        project / "joint",
        args.reuse,
        lambda: YOLOSeg(args.model).train(
            det=args.det,
            seg=args.seg,
            schedule=args.schedule,
            ratio=args.ratio,
            project=project,
            name="joint",
            plots=False,
            **common,
        ),
    )
    joint = YOLOSeg(project / "joint/weights/best.pt")
    jm = joint.val(det=args.det, seg=args.seg, imgsz=args.imgsz, batch=args.batch, verbose=False)["metrics"]

    if args.joint_only:
        names = {"det": len(joint.det_names), "seg": len(joint.seg_names)}
        det_model = DetectionModel(f"{args.model}.yaml", nc=names["det"], verbose=False)
        sem_model = SemanticSegmentationModel(semantic_yaml(args.model), nc=names["seg"], verbose=False)
        det_model.fuse(verbose=False)
        sem_model.fuse(verbose=False)
        dm = sm = None
        det_time = sem_time = None
    else:
        det_time = train_or_reuse(
            project / "detect",
            args.reuse,
            lambda: YOLO(f"{args.model}.yaml").train(
                data=args.det, project=str(project), name="detect", plots=False, **common
            ),
        )
        det = YOLO(project / "detect/weights/best.pt")
        dm = det.val(data=args.det, imgsz=args.imgsz, batch=args.batch, plots=False, verbose=False)
        sem_time = train_or_reuse(
            project / "semantic",
            args.reuse,
            lambda: YOLO(semantic_yaml(args.model)).train(
                data=args.seg, project=str(project), name="semantic", plots=False, **common
            ),
        )
        sem = YOLO(project / "semantic/weights/best.pt")
        sm = sem.val(data=args.seg, imgsz=args.imgsz, batch=args.batch, plots=False, verbose=False)
        det_model, sem_model = det.model.fuse(), sem.model.fuse()

    models = {"joint": joint.model.fuse(verbose=False), "detect": det_model, "semantic": sem_model}
    sizes = sorted({args.imgsz, 640})
    latency = {size: latency_table(models, size, args.threads, args.runs) for size in sizes}
    for name, model in models.items():
        results[name] = {"params": get_num_params(model), "GFLOPs": round(get_flops(model, args.imgsz), 2)}
        for size in sizes:
            p50, p90 = latency[size][name]
            results[name][f"latency_p50_ms@{size}"], results[name][f"latency_p90_ms@{size}"] = (
                round(p50, 2),
                round(p90, 2),
            )
    results["joint"].update(
        {
            "mAP50-95": jm[MAP50_95],
            "mAP50": jm[MAP50],
            "mIoU": jm[MIOU],
            "train_s": round(joint_time),
        }
    )
    if dm is not None:
        results["detect"].update(
            {"mAP50-95": float(dm.box.map), "mAP50": float(dm.box.map50), "train_s": round(det_time)}
        )
        results["semantic"].update({"mIoU": float(sm.results_dict[MIOU]), "train_s": round(sem_time)})

    j, d, s = results["joint"], results["detect"], results["semantic"]
    accuracy = {}
    if dm is not None:
        accuracy = {
            "mAP50-95 joint/detect": j["mAP50-95"] / max(d["mAP50-95"], 1e-9),
            "mIoU joint/semantic": j["mIoU"] / max(s["mIoU"], 1e-9),
        }
    results["ratios"] = {
        **accuracy,
        **{
            f"latency p50 joint/(detect+semantic) @{size}": j[f"latency_p50_ms@{size}"]
            / (d[f"latency_p50_ms@{size}"] + s[f"latency_p50_ms@{size}"])
            for size in sizes
        },
    }
    results["sizes"] = sizes
    (project / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown_table(results)
    (project / "results.md").write_text(table)
    print(table)


def markdown_table(r: dict) -> str:
    """Results as a markdown table, with the target ratios."""

    def f(model: str, key: str, fmt: str = "{:.3f}") -> str:
        return fmt.format(r[model][key]) if key in r[model] else "–"

    sizes = r["sizes"]
    head = " | ".join(f"latency p50 / p90 @{s} (ms)" for s in sizes)
    lines = [
        f"| model | mAP50-95 | mAP50 | mIoU | train time (s) | params | GFLOPs@{r['settings']['imgsz']} | {head} |",
        "|---|---|---|---|---|---|---|" + "---|" * len(sizes),
    ]
    for name in ("joint", "detect", "semantic"):
        lat = " | ".join(f"{r[name][f'latency_p50_ms@{s}']} / {r[name][f'latency_p90_ms@{s}']}" for s in sizes)
        lines.append(
            f"| {name} | {f(name, 'mAP50-95')} | {f(name, 'mAP50')} | {f(name, 'mIoU')} "
            f"| {f(name, 'train_s', '{}')} | {r[name]['params']:,} | {r[name]['GFLOPs']} | {lat} |"
        )
    d, s_ = r["detect"], r["semantic"]
    lat = " | ".join(f"{round(d[f'latency_p50_ms@{s}'] + s_[f'latency_p50_ms@{s}'], 2)}" for s in sizes)
    train_s = d["train_s"] + s_["train_s"] if "train_s" in d else "–"
    lines.append(
        f"| detect + semantic | | | | {train_s} | {d['params'] + s_['params']:,} "
        f"| {round(d['GFLOPs'] + s_['GFLOPs'], 2)} | {lat} |"
    )
    lines.append("")
    lines += [f"- {k}: {v:.3f}" for k, v in r["ratios"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
