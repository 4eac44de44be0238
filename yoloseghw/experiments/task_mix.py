"""The task mix (`--ratio`) at equal cost: each mix's joint model against the two stock single-task models.

An epoch has the same length whatever the mix: the det + seg batches the two stock models draw in their epochs, so
E joint epochs cost (in steps) what E epochs of both stock models cost. For each mix the joint model's metric on
each val set is taken as a multiple of its stock single-task model's at the same epoch count; the mix whose lower
multiple is highest wins. Writes a JSON file, a markdown table and the curves (each metric against wall time, one
line per mix and per stock model).

    python benchmarks/task_mix.py --det ../shared/data/highway/highway.yaml \\
        --seg ../shared/data/camvid/camvid.yaml --epochs 10 --imgsz 256 --project runs/mix256

`--mixes` picks some (e.g. half in each of two processes on two cores); `--reuse` keeps finished runs, so a last
`--reuse` call over all of them only reports. `--seed` repeats a mix with another seed (its runs are named
`<mix>-seed<N>`); the stock references stay the seed-0 runs unless `--stock-seed N` trains them with seed N too
(`stock-det-seed<N>`), so that both sides of a multiple share a seed.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import torch
from ultralytics import YOLO

from yoloseghw.continual.forgetting import TASK_METRIC
from yoloseghw.engine.model import YOLOSeg
from yoloseghw.experiments.forgetting import budget, refuse_unfinished
from yoloseghw.experiments.joint_vs_single import add_training_arguments, semantic_yaml, train_or_reuse
from yoloseghw.utils.plots import read_rows

MIXES = ("auto", "1:1", "temp:0.5")
STOCK = {"stock-det": "det", "stock-sem": "seg"}


def seeded(name: str, seed: int, tag: str = "seed") -> str:
    """`name` with '-seed<N>' (or '-<tag><N>') for a seed other than 0: seed-0 runs keep their plain names."""
    return f"{name}-{tag}{seed}" if seed else name


def run_name(mix: str, seed: int) -> str:
    """The run folder of a mix: 'mix-1to1', 'mix-temp0.5', and '-seed1' for a seed other than 0."""
    return seeded("mix-" + mix.replace(":", "to").replace("tempto", "temp"), seed)


def curves(run: Path) -> dict[str, list[float]]:
    """Per epoch: the cumulative wall time (Ultralytics' `time` column) and both tasks' val metric."""
    rows = read_rows(run / "results.csv")
    out = {"time": [r["time"] for r in rows]}
    out.update({task: [r[key] for r in rows] for task, key in TASK_METRIC.items() if key in rows[0]})
    return out


def train_mix(mix: str, args: argparse.Namespace, project: Path) -> dict[str, Any]:
    name = run_name(mix, args.seed)
    refuse_unfinished(project / name, args.reuse)
    seconds = train_or_reuse(
        project / name,
        args.reuse,
        lambda: YOLOSeg(args.model).train(
            det=args.det, seg=args.seg, ratio=mix, project=project, name=name, **budget(args)
        ),
    )
    return {"run": name, "train_s": round(seconds), "curves": curves(project / name)}


def train_stock(name: str, args: argparse.Namespace, project: Path) -> dict[str, Any]:
    """A stock single-task model (`name` in STOCK) trained with `args.seed`; its run is `name-seed<N>` for N > 0."""
    task, run = STOCK[name], seeded(name, args.seed)
    refuse_unfinished(project / run, args.reuse)
    model = f"{args.model}.yaml" if task == "det" else semantic_yaml(args.model)
    data = args.det if task == "det" else args.seg
    seconds = train_or_reuse(
        project / run,
        args.reuse,
        lambda: YOLO(model).train(data=data, project=str(project), name=run, exist_ok=True, **budget(args)),
    )
    return {"run": run, "train_s": round(seconds), "curves": curves(project / run)}


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per mix: final metrics, each as a multiple of its stock model's at the same epoch count, the lower
    multiple, and the wall time."""
    stock = {task: results["stock"][name]["curves"][task][-1] for name, task in STOCK.items()}
    rows = []
    for mix, r in results["mixes"].items():
        final = {task: r["curves"][task][-1] for task in TASK_METRIC}
        multiples = {task: final[task] / stock[task] if stock[task] else None for task in TASK_METRIC}
        rows.append(
            {
                "mix": mix,
                "mAP50-95": final["det"],
                "mIoU": final["seg"],
                "det_multiple": multiples["det"],
                "seg_multiple": multiples["seg"],
                "lower_multiple": min(m for m in multiples.values() if m is not None),
                "train_s": r["train_s"],
            }
        )
    return rows


def markdown_table(results: dict[str, Any]) -> str:
    lines = [
        "| mix | mAP50-95 | x stock det | mIoU | x stock sem | lower multiple | train (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(results):
        lines.append(
            f"| `{row['mix']}` | {row['mAP50-95']:.4f} | {row['det_multiple']:.2f} | {row['mIoU']:.4f} | "
            f"{row['seg_multiple']:.2f} | {row['lower_multiple']:.2f} | {row['train_s']} |"
        )
    for name, task in STOCK.items():
        r = results["stock"][name]
        value = f"{r['curves'][task][-1]:.4f}"
        cells = f"{value} | 1.00 | | |" if task == "det" else f" | | {value} | 1.00 |"
        lines.append(f"| {r['run']} | {cells} | {r['train_s']} |")
    return "\n".join(lines) + "\n"


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Each task's val metric against cumulative wall time, one line per mix and per stock model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), tight_layout=True)
    for ax, (task, key) in zip(axes, TASK_METRIC.items()):
        for mix, r in results["mixes"].items():
            ax.plot(r["curves"]["time"], r["curves"][task], marker=".", label=f"joint, --ratio {mix}")
        for name, stock_task in STOCK.items():
            if stock_task == task:
                c = results["stock"][name]["curves"]
                ax.plot(c["time"], c[task], "k--", marker=".", label=f"{name} (Ultralytics)")
        ax.set(
            xlabel="wall time (s)", title=f"{key.removeprefix('metrics/')} ({'box' if task == 'det' else 'mask'} val)"
        )
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_arguments(parser, epochs=10)
    parser.add_argument("--mixes", nargs="*", default=list(MIXES), metavar="MIX", help="--ratio values to train")
    parser.add_argument("--stock", nargs="*", default=list(STOCK), choices=list(STOCK), help="stock models to train")
    parser.add_argument("--project", default="runs/mix")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in --project (their measured time)")
    parser.add_argument("--stock-seed", type=int, default=0, help="seed of the stock references (default 0)")
    args = parser.parse_args()

    project = Path(args.project).resolve()
    project.mkdir(parents=True, exist_ok=True)
    stock_seed = argparse.Namespace(**{**vars(args), "seed": args.stock_seed})
    results: dict[str, Any] = {
        "settings": {**vars(args), "torch": torch.__version__, "cpu": platform.processor() or platform.machine()},
        "stock": {name: train_stock(name, stock_seed, project) for name in args.stock},
        "mixes": {mix: train_mix(mix, args, project) for mix in args.mixes},
    }
    suffix = seeded("", args.seed) + seeded("", args.stock_seed, "stock")
    if len(results["stock"]) == len(STOCK) and results["mixes"]:
        results["summary"] = summary_rows(results)
        table = markdown_table(results)
        (project / f"results{suffix}.md").write_text(table)
        plot_curves(results, project / f"curves{suffix}.png")
        print(table)
    (project / f"results{suffix}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
