"""Catastrophic forgetting on real data: each strategy for learning segmentation after detection, at one budget.

Two settings, yolo26n from scratch (no pretrained weights exist offline):
- `phased` strategies: one run learns boxes for the first half of the epochs, then masks (the box set is at hand,
  so replay is possible);
- the users' case: a stock Ultralytics detector trained alone on the box set for half the epochs, then
  `yoloseg train --weights det.pt --seg masks.yaml --val-det boxes.yaml` for the other half (no box data trains).
It reads every run's results.csv and forgetting.json, trains the stock Ultralytics semantic model on the mask set at
each budget (the second task's single-task reference), and writes a JSON file, a markdown table and a plot of both
tasks' metric per epoch.

    python benchmarks/forgetting.py --det ../shared/data/highway/highway.yaml \\
        --seg ../shared/data/camvid/camvid.yaml --epochs 12 --imgsz 256 --project runs/forgetting

Strategies run one after another; `--strategies` picks some (e.g. half in each of two processes on two cores),
and `--reuse` keeps the finished runs in `--project`, so a last `--reuse` call over all of them only reports.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path
from typing import Any

import torch
from ultralytics import YOLO

from yoloseghw.continual.distill import DISTILL_ANCHORS
from yoloseghw.continual.forgetting import REPORT_FILE, TASK_METRIC
from yoloseghw.engine.model import YOLOSeg
from yoloseghw.experiments.joint_vs_single import add_training_arguments, semantic_yaml, train_or_reuse
from yoloseghw.utils.plots import read_rows

# every option a row depends on is spelled out, so that a row means the same whatever the defaults of the day
PLAIN = {"freeze": 0, "lr_scale": 1.0, "freeze_bn": False, "distill": False}  # no remedy at all
FREEZE10 = {"freeze": 10, "lr_scale": 0.1, "freeze_bn": True}  # 0.2's phase two (backbone frozen, LR x0.1) + BN
KEEP = {"freeze": 0, "lr_scale": 1.0, "freeze_bn": True, "distill": True}  # fixed BN statistics + distillation
STRATEGIES: dict[str, dict[str, Any]] = {
    "naive": {"schedule": "phased", **PLAIN},  # det then seg, same LR, nothing frozen
    "bn": {"schedule": "phased", **PLAIN, "freeze_bn": True},  # the BatchNorm option alone
    "phased-freeze10": {"schedule": "phased", **FREEZE10, "distill": False},
    "phased-freeze10-distill": {"schedule": "phased", **FREEZE10, "distill": True},
    "phased-keep": {"schedule": "phased", **KEEP},
    "phased-keep-replay": {"schedule": "phased", **KEEP, "replay": 0.25},
    "phased-replay-moving-bn": {"schedule": "phased", **KEEP, "replay": 0.25, "freeze_bn": False},  # both sets' BN
    "phased-bn-replay": {"schedule": "phased", **PLAIN, "freeze_bn": True, "replay": 0.25},  # replay, no distill
    "phased-bn-replay-0.5": {"schedule": "phased", **PLAIN, "freeze_bn": True, "replay": 0.5},
    # EWC's strength, a small sweep (docs/benchmarks.md)
    "phased-ewc": {"schedule": "phased", **PLAIN, "freeze_bn": True, "ewc": 1e4},
    "phased-ewc-1e5": {"schedule": "phased", **PLAIN, "freeze_bn": True, "ewc": 1e5},
    "alternate": {"schedule": "alternate", "distill": False},
    "alternate-distill": {"schedule": "alternate", "distill": True},
    "joint": {"schedule": "joint"},
}
USERS = {  # the users' case: `--weights det.pt --seg ... --val-det ...` after a stock detector
    "users-plain": {"freeze": 0, "freeze_bn": False, "distill": False},
    "users-bn": {"freeze": 0, "freeze_bn": True, "distill": False},
    "users-bn-distill": {"freeze": 0, "freeze_bn": True, "distill": True},
    "users-bn-distill-w3": {"freeze": 0, "freeze_bn": True, "distill": True, "distill_weight": 3.0},  # the term x3
    "users-freeze10-bn-distill": {"freeze": 10, "freeze_bn": True, "distill": True},  # layers 0-9 frozen
    "users-backbone-bn-distill": {"freeze": "backbone", "freeze_bn": True, "distill": True},  # 0-10 in yolo26n
}
DETECTOR = "stock-det"  # the stock Ultralytics detector of the users' case (half the epochs)
SINGLE = "seg-only"  # the stock Ultralytics semantic model on the mask set: the second task's reference
SINGLE_HALF = "seg-only-half"  # ... at the users' case budget (half the epochs)
STOCK_RUNS = (DETECTOR, SINGLE, SINGLE_HALF)


def refuse_unfinished(run: Path, reuse: bool) -> None:
    """Stop when `run` exists and is not a finished run that --reuse keeps (a new run never lands beside it)."""
    if run.exists() and not (reuse and (run / "time.txt").is_file()):
        raise SystemExit(f"{run} exists: pass --reuse to keep a finished run, or remove it and run again")


def budget(args: argparse.Namespace, epochs: int | None = None) -> dict[str, Any]:
    """The training options every run shares: the budget, seed, loader workers and device."""
    keys = ("imgsz", "batch", "seed", "workers", "device")
    return {**{k: getattr(args, k) for k in keys}, "epochs": epochs or args.epochs, "plots": False}


def curves_of(run: Path) -> dict[str, Any]:
    """Both tasks' val metric per epoch, and the distillation's anchors per image per epoch (when it ran)."""
    rows = read_rows(run / "results.csv")
    curves = {task: [r[key] for r in rows] for task, key in TASK_METRIC.items() if key in rows[0]}
    anchors = [r[f"train/{DISTILL_ANCHORS}"] for r in rows if f"train/{DISTILL_ANCHORS}" in r]
    return {"curves": curves, "distill_anchors": anchors}


def train_strategy(name: str, args: argparse.Namespace, project: Path) -> dict[str, Any]:
    """Train one strategy (or reuse its finished run) and return its curves, forgetting report and time."""
    run = project / name
    refuse_unfinished(run, args.reuse)
    if name in USERS:
        weights = project / DETECTOR / "weights/best.pt"
        if not weights.is_file():
            raise SystemExit(f"{name} starts from {weights}: run --strategies {DETECTOR} first")
        options = {"weights": weights, "seg": args.seg, "val_det": args.det, **USERS[name]}
        epochs = args.epochs // 2
    else:
        options, epochs = {"det": args.det, "seg": args.seg, **STRATEGIES[name]}, args.epochs
    seconds = train_or_reuse(
        run,
        args.reuse,
        lambda: YOLOSeg().train(project=project, name=name, **budget(args, epochs), **options),
    )
    return {
        "options": {k: str(v) for k, v in (USERS.get(name) or STRATEGIES[name]).items()},
        "train_s": round(seconds),
        **curves_of(run),
        "report": json.loads((run / REPORT_FILE).read_text()),
    }


def train_stock(name: str, args: argparse.Namespace, project: Path) -> dict[str, Any]:
    """A stock Ultralytics model, same model scale, size, batch and seed: the detector (half the epochs) or the
    semantic model (all of them, or half)."""
    run = project / name
    refuse_unfinished(run, args.reuse)
    task = "det" if name == DETECTOR else "seg"
    epochs = args.epochs if name == SINGLE else args.epochs // 2
    model = f"{args.model}.yaml" if task == "det" else semantic_yaml(args.model)
    data = args.det if task == "det" else args.seg
    seconds = train_or_reuse(
        run,
        args.reuse,
        lambda: YOLO(model).train(data=data, project=str(project), name=name, exist_ok=True, **budget(args, epochs)),
    )
    curve = [r[TASK_METRIC[task]] for r in read_rows(run / "results.csv")]
    return {"train_s": round(seconds), "curves": {task: curve}, "final": curve[-1], "peak": max(curve)}


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per strategy: end-of-run metrics, the first task's retention, the second task against the stock
    semantic model at the same budget, wall time and the distillation's anchors per image."""
    rows = []
    for name, r in results["strategies"].items():
        tasks = r["report"]["tasks"]
        det, seg = tasks["det"], tasks["seg"]
        reference = results.get(SINGLE_HALF if name in USERS else SINGLE, {}).get("final")
        anchors = [a for a in r.get("distill_anchors", []) if a and not math.isnan(a)]
        rows.append(
            {
                "strategy": name,
                "mAP50-95": det["end_of_run"],
                "mIoU": seg["end_of_run"],
                "det_peak": det["peak"],
                "det_peak_epoch": det["peak_epoch"],
                "det_retention": det["retention"],
                "seg_vs_single": seg["end_of_run"] / reference if reference else None,
                "train_s": r["train_s"],
                "distill_anchors": sum(anchors) / len(anchors) if anchors else None,
            }
        )
    return rows


def markdown_table(results: dict[str, Any]) -> str:
    """The summary as a markdown table (retention: end of run / peak; phased: the peak within phase one; the users'
    case: the detector's own score at the start)."""
    lines = [
        "| strategy | mAP50-95 (end) | mIoU (end) | det peak (epoch) | det kept | mIoU / stock semantic | train (s) "
        "| distilled anchors / image |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def pct(value: float | None) -> str:
        return f"{value:.1%}" if value is not None else "-"

    for row in summary_rows(results):
        anchors = f"{row['distill_anchors']:.1f}" if row["distill_anchors"] is not None else "-"
        lines.append(
            f"| {row['strategy']} | {row['mAP50-95']:.4f} | {row['mIoU']:.4f} | {row['det_peak']:.4f} "
            f"({row['det_peak_epoch']}) | {pct(row['det_retention'])} | {pct(row['seg_vs_single'])} "
            f"| {row['train_s']} | {anchors} |"
        )
    for name in STOCK_RUNS:
        if name in results:
            s = results[name]
            metric = "det" if name == DETECTOR else "seg"
            cells = f"{s['final']:.4f} | |" if metric == "det" else f" | {s['final']:.4f}"
            lines.append(f"| {name} (stock) | {cells} | | | | {s['train_s']} | |")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Both tasks' validation metric per epoch for every strategy (the stock semantic references dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), tight_layout=True)
    boundary = None
    for name, r in results["strategies"].items():
        offset = results.get(DETECTOR, {}).get("epochs", 0) if name in USERS else 0
        for ax, task in zip(axes, TASK_METRIC):
            curve = r["curves"].get(task, [])
            ax.plot(range(offset + 1, offset + len(curve) + 1), curve, marker=".", label=name)
        boundary = r["report"].get("phase_one_epochs") or boundary
    for name in (SINGLE, SINGLE_HALF):
        if name in results:
            curve = results[name]["curves"]["seg"]
            axes[1].plot(range(1, len(curve) + 1), curve, "k--" if name == SINGLE else "k:", label=f"{name} (stock)")
    for ax, (task, key) in zip(axes, TASK_METRIC.items()):
        if boundary:
            ax.axvline(boundary + 0.5, color="grey", linestyle=":", linewidth=1, label="det -> seg")
        ax.set_title(f"{key.removeprefix('metrics/')} ({'box' if task == 'det' else 'mask'} val set)")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_arguments(parser, epochs=12)
    names = [*STRATEGIES, *USERS, *STOCK_RUNS]
    parser.add_argument("--strategies", nargs="+", default=names, choices=names, metavar="NAME")
    parser.add_argument("--project", default="runs/forgetting")
    parser.add_argument("--plot", default=None, help="where to draw the curves (default: <project>/forgetting.png)")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in --project (their measured time)")
    args = parser.parse_args()

    project = Path(args.project).resolve()
    project.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "settings": {**vars(args), "torch": torch.__version__, "cpu": platform.processor() or platform.machine()},
        "strategies": {},
    }
    for name in sorted(args.strategies, key=lambda n: n not in STOCK_RUNS):  # the detector before the users' case
        if name in STOCK_RUNS:
            results[name] = {**train_stock(name, args, project), "epochs": args.epochs // 2}
        else:
            results["strategies"][name] = train_strategy(name, args, project)
    results["summary"] = summary_rows(results)
    (project / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown_table(results)
    (project / "results.md").write_text(table)
    plot_curves(results, Path(args.plot) if args.plot else project / "forgetting.png")
    print(table)


if __name__ == "__main__":
    main()
