"""Catastrophic forgetting on real data: each training strategy's two metrics per epoch, at one fixed budget.

Trains the same yolo26n on a box dataset and a mask dataset with each strategy (detection first where there is an
order), reads every run's results.csv and forgetting.json, trains the stock Ultralytics semantic model on the mask
set at the same budget (the second task's single-task reference), and writes a JSON file, a markdown table and a
plot of both tasks' metric per epoch for every strategy.

    python benchmarks/forgetting.py --det ../shared/data/highway/highway.yaml \
        --seg ../shared/data/camvid/camvid.yaml --epochs 12 --imgsz 256 --project runs/forgetting

Strategies run one after another; `--strategies` picks some (e.g. half in each of two processes on two cores),
and `--reuse` keeps the finished runs in `--project`, so a last `--reuse` call over all of them only reports.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch
from ultralytics import YOLO

from yoloseghw.continual.forgetting import REPORT_FILE, TASK_METRIC
from yoloseghw.engine.model import YOLOSeg
from yoloseghw.experiments.joint_vs_single import add_training_arguments, semantic_yaml, train_or_reuse
from yoloseghw.utils.plots import read_rows

STRATEGIES: dict[str, dict[str, Any]] = {
    "naive": {"schedule": "phased", "freeze": 0, "lr_scale": 1.0},  # (a) det then seg, same LR, nothing frozen
    "phased": {"schedule": "phased"},  # (b) yoloseg's phased defaults: phase two freezes 10 layers, LR x0.1
    "alternate": {"schedule": "alternate"},  # (c)
    "phased-distill": {"schedule": "phased", "distill": True},  # (d)
    "alternate-distill": {"schedule": "alternate", "distill": True},  # (d)
    "joint": {"schedule": "joint"},  # (e)
}
SINGLE = "seg-only"  # the stock Ultralytics semantic model on the mask set: the second task's reference


def refuse_unfinished(run: Path, reuse: bool) -> None:
    """Stop when `run` exists and is not a finished run that --reuse keeps (a new run never lands beside it)."""
    if run.exists() and not (reuse and (run / "time.txt").is_file()):
        raise SystemExit(f"{run} exists: pass --reuse to keep a finished run, or remove it and run again")


def budget(args: argparse.Namespace) -> dict[str, Any]:
    """The training options every run shares: the budget, seed, loader workers and device."""
    keys = ("epochs", "imgsz", "batch", "seed", "workers", "device")
    return {**{k: getattr(args, k) for k in keys}, "plots": False}


def train_strategy(name: str, args: argparse.Namespace, project: Path) -> dict[str, Any]:
    """Train one strategy (or reuse its finished run) and return its curves, forgetting report and time."""
    run = project / name
    refuse_unfinished(run, args.reuse)
    seconds = train_or_reuse(
        run,
        args.reuse,
        lambda: YOLOSeg(args.model).train(
            det=args.det, seg=args.seg, project=project, name=name, **budget(args), **STRATEGIES[name]
        ),
    )
    rows = read_rows(run / "results.csv")
    return {
        "options": STRATEGIES[name],
        "train_s": round(seconds),
        "curves": {task: [r[key] for r in rows] for task, key in TASK_METRIC.items()},
        "report": json.loads((run / REPORT_FILE).read_text()),
    }


def train_single(args: argparse.Namespace, project: Path) -> dict[str, Any]:
    """The stock Ultralytics semantic model on the mask set, same model scale, size, epochs, batch and seed."""
    run = project / SINGLE
    refuse_unfinished(run, args.reuse)
    seconds = train_or_reuse(
        run,
        args.reuse,
        lambda: YOLO(semantic_yaml(args.model)).train(
            data=args.seg, project=str(project), name=SINGLE, exist_ok=True, **budget(args)
        ),
    )
    curve = [r[TASK_METRIC["seg"]] for r in read_rows(run / "results.csv")]
    return {"train_s": round(seconds), "curves": {"seg": curve}, "final": curve[-1], "peak": max(curve)}


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per strategy: end-of-run metrics, the first task's retention, the second task against single-task."""
    single = results.get(SINGLE, {}).get("final")
    rows = []
    for name, r in results["strategies"].items():
        tasks = r["report"]["tasks"]
        det, seg = tasks["det"], tasks["seg"]
        rows.append(
            {
                "strategy": name,
                "mAP50-95": det["end_of_run"],
                "mIoU": seg["end_of_run"],
                "det_peak": det["peak"],
                "det_peak_epoch": det["peak_epoch"],
                "det_retention": det["retention"],
                "seg_retention": seg["retention"],
                "seg_vs_single": seg["end_of_run"] / single if single else None,
                "train_s": r["train_s"],
            }
        )
    return rows


def markdown_table(results: dict[str, Any]) -> str:
    """The summary as a markdown table (retention: end of run / peak; phased: the peak within phase one)."""
    lines = [
        "| strategy | mAP50-95 (end) | mIoU (end) | det peak (epoch) | det kept | seg kept | mIoU / seg-only "
        "| train (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def pct(value: float | None) -> str:
        return f"{value:.1%}" if value is not None else "-"

    for row in summary_rows(results):
        lines.append(
            f"| {row['strategy']} | {row['mAP50-95']:.4f} | {row['mIoU']:.4f} | {row['det_peak']:.4f} "
            f"({row['det_peak_epoch']}) | {pct(row['det_retention'])} | {pct(row['seg_retention'])} "
            f"| {pct(row['seg_vs_single'])} | {row['train_s']} |"
        )
    if SINGLE in results:
        s = results[SINGLE]
        lines.append(f"| {SINGLE} (stock semantic) | | {s['final']:.4f} | | | | 100% | {s['train_s']} |")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Both tasks' validation metric per epoch for every strategy (the seg-only reference dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), tight_layout=True)
    boundary = None
    for name, r in results["strategies"].items():
        for ax, task in zip(axes, TASK_METRIC):
            curve = r["curves"][task]
            ax.plot(range(1, len(curve) + 1), curve, marker=".", label=name)
        boundary = r["report"].get("phase_one_epochs") or boundary
    if SINGLE in results:
        curve = results[SINGLE]["curves"]["seg"]
        axes[1].plot(range(1, len(curve) + 1), curve, "k--", label=f"{SINGLE} (stock semantic)")
    for ax, (task, key) in zip(axes, TASK_METRIC.items()):
        if boundary:
            ax.axvline(boundary + 0.5, color="grey", linestyle=":", linewidth=1, label="phased: det -> seg")
        ax.set_title(f"{key.removeprefix('metrics/')} ({'box' if task == 'det' else 'mask'} val set)")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_arguments(parser, epochs=12)
    parser.add_argument(
        "--strategies", nargs="+", default=[*STRATEGIES, SINGLE], choices=[*STRATEGIES, SINGLE], metavar="NAME"
    )
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
    for name in args.strategies:
        if name == SINGLE:
            results[SINGLE] = train_single(args, project)
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
