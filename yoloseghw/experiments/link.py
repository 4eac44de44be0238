"""Cross-task supervision (`--link`) at an equal budget: the same run with and without the class link.

Both runs train the same schedule, mix, epochs, size and seed; `--link` adds the box-to-mask and mask-to-box terms
(nn/link.py). Each run's last.pt (the model after the budget) is validated on both val sets; the table gives the
linked classes' and the other classes' mAP50-95 and IoU, each task's overall metric, and the wall time.

    python benchmarks/link.py --det ../shared/data/highway/highway.yaml --seg ../shared/data/camvid/camvid.yaml \\
        --link car=car,person=pedestrian --epochs 10 --imgsz 256 --project runs/link256

`--from-masks car,pedestrian` builds the pair from the mask set alone (`--det` is then not needed): half of its
train images keep their masks, the other half keep only boxes of those classes, taken from the components of their
masks that pass the component test (nn/link.py's `components`, at the training size); the val split gets both.

    python benchmarks/link.py --seg ../shared/data/camvid/camvid.yaml --from-masks car,pedestrian --link auto \\
        --epochs 10 --imgsz 256 --project runs/link-camvid
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

import cv2
import torch

from yoloseghw.data.dataset import load_data_config
from yoloseghw.engine.model import YOLOSeg
from yoloseghw.experiments.forgetting import budget, refuse_unfinished
from yoloseghw.experiments.joint_vs_single import train_or_reuse
from yoloseghw.nn.link import MIN_AREA, components, parse_link
from yoloseghw.utils.metrics import MAP50_95, MIOU
from yoloseghw.utils.options import DEFAULTS

RUNS = ("unlinked", "linked")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--det", default=None, help="the box dataset yaml (not with --from-masks)")
    parser.add_argument("--seg", required=True)
    parser.add_argument("--link", required=True, help="as yoloseg train --link")
    parser.add_argument("--link-weight", default=str(DEFAULTS["link_weight"]))
    parser.add_argument("--from-masks", default=None, metavar="CLASSES", help="build the pair from --seg alone")
    parser.add_argument("--ratio", default=str(DEFAULTS["ratio"]), help="the task mix of both runs")
    parser.add_argument("--model", default="yolo26n")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="")
    parser.add_argument("--project", default="runs/link")
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--reuse", action="store_true", help="keep finished runs in --project (their measured time)")


def pair_from_masks(seg_yaml: str | Path, classes: list[str], out: Path, imgsz: int) -> tuple[Path, Path]:
    """(det yaml, seg yaml) of a pair made from one mask dataset: its train images alternate between the mask half
    (masks kept) and the box half (boxes of `classes` only, from the components of their masks that pass the
    component test at the training size `imgsz`); the val split keeps its masks and gets boxes the same way.
    Images and masks are linked, not copied; the folder is made once (delete it to make it again)."""
    data = load_data_config(seg_yaml, "seg")
    ids = {str(n).lower(): i for i, n in data["names"].items()}
    missing = [c for c in classes if c.lower() not in ids]
    if missing:
        raise SystemExit(f"--from-masks: {', '.join(missing)} not among {seg_yaml}'s classes")
    det_yaml, sem_yaml = out / "boxes" / "boxes.yaml", out / "masks" / "masks.yaml"
    if det_yaml.is_file() and sem_yaml.is_file():
        return det_yaml, sem_yaml
    root = Path(data["path"])
    masks_dir = root / data.get("masks_dir", "masks")
    for split in ("train", "val"):
        images = sorted(Path(data[split]).iterdir())
        for index, image in enumerate(images):
            mask_file = masks_dir / split / f"{image.stem}.png"
            as_boxes = split == "val" or index % 2 == 1
            as_masks = split == "val" or index % 2 == 0
            if as_masks:
                _link(image, out / "masks" / "images" / split / image.name)
                _link(mask_file, out / "masks" / "masks" / split / mask_file.name)
            if as_boxes:
                _link(image, out / "boxes" / "images" / split / image.name)
                mask = cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED)
                label = out / "boxes" / "labels" / split / f"{image.stem}.txt"
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text(_box_lines(mask, [ids[c.lower()] for c in classes], imgsz))
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(classes))
    det_yaml.write_text(f"path: {det_yaml.parent}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    seg_names = "\n".join(f"  {i}: {n}" for i, n in data["names"].items())
    sem_yaml.write_text(
        f"path: {sem_yaml.parent}\ntrain: images/train\nval: images/val\nmasks_dir: masks\nnames:\n{seg_names}\n"
    )
    return det_yaml, sem_yaml


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.symlink(source.resolve(), target)


def _box_lines(mask: Any, class_ids: list[int], imgsz: int) -> str:
    """YOLO label lines (class x y w h, normalised) of the components of each class that pass the test; the minimum
    area is the one the training term uses at `imgsz`, scaled to the mask's resolution."""
    h, w = mask.shape[:2]
    min_area = MIN_AREA * (max(h, w) / imgsz) ** 2
    lines = []
    for det_id, seg_id in enumerate(class_ids):
        for x0, y0, x1, y1 in components(mask, seg_id, min_area):
            lines.append(
                f"{det_id} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"
            )
    return "\n".join(lines) + ("\n" if lines else "")


def train_run(name: str, args: argparse.Namespace, det: Path, seg: Path, project: Path) -> dict[str, Any]:
    """Train one run (or reuse it) and validate its last.pt on both val sets."""
    run = project / name
    refuse_unfinished(run, args.reuse)
    link = {"link": args.link, "link_weight": args.link_weight} if name == "linked" else {}
    seconds = train_or_reuse(
        run,
        args.reuse,
        lambda: YOLOSeg(args.model).train(
            det=det, seg=seg, ratio=args.ratio, project=project, name=name, **link, **budget(args)
        ),
    )
    result = YOLOSeg(run / "weights" / "last.pt").val(det, seg, imgsz=args.imgsz, batch=args.batch)
    return {"train_s": round(seconds), "metrics": result["metrics"], "classes": result["classes"]}


def scores(run: dict[str, Any], det_linked: set[str], seg_linked: set[str]) -> dict[str, float]:
    """The run's means over the linked and the other classes of each task (classes with val labels only), and
    each task's overall metric."""

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    det_rows = [r for r in run["classes"]["det"] if r["instances"]]
    seg_rows = [r for r in run["classes"]["seg"] if r["pixels"]]
    return {
        "det_linked": mean([r["mAP50-95"] for r in det_rows if r["class"] in det_linked]),
        "det_other": mean([r["mAP50-95"] for r in det_rows if r["class"] not in det_linked]),
        "det_all": run["metrics"][MAP50_95],
        "seg_linked": mean([r["IoU"] for r in seg_rows if r["class"] in seg_linked]),
        "seg_other": mean([r["IoU"] for r in seg_rows if r["class"] not in seg_linked]),
        "seg_all": run["metrics"][MIOU],
    }


COLUMNS = (
    ("det_linked", "mAP50-95 linked"),
    ("det_other", "mAP50-95 other"),
    ("det_all", "mAP50-95 all"),
    ("seg_linked", "IoU linked"),
    ("seg_other", "IoU other"),
    ("seg_all", "mIoU"),
)


def markdown_table(results: dict[str, Any]) -> str:
    """One row per run and, with both, the linked run's change relative to the unlinked one."""
    head = " | ".join(title for _, title in COLUMNS)
    lines = [f"| run | {head} | train (s) |", "|---|" + "---|" * (len(COLUMNS) + 1)]
    for name, r in results["runs"].items():
        cells = " | ".join(f"{r['scores'][key]:.4f}" for key, _ in COLUMNS)
        lines.append(f"| {name} | {cells} | {r['train_s']} |")
    if len(results["runs"]) == 2:
        base, linked = results["runs"]["unlinked"]["scores"], results["runs"]["linked"]["scores"]
        cells = " | ".join(f"{linked[k] / base[k] - 1:+.1%}" if base[k] else "-" for k, _ in COLUMNS)
        lines.append(f"| linked vs unlinked | {cells} | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    project = Path(args.project).resolve()
    project.mkdir(parents=True, exist_ok=True)
    if args.from_masks:
        det, seg = pair_from_masks(args.seg, args.from_masks.split(","), project / "pair", args.imgsz)
    elif args.det:
        det, seg = Path(args.det), Path(args.seg)
    else:
        raise SystemExit("give --det, or --from-masks to build the box set from --seg")
    det_names, seg_names = load_data_config(det, "det")["names"], load_data_config(seg, "seg")["names"]
    link = parse_link(args.link, det_names, seg_names)
    det_linked, seg_linked = {det_names[d] for d in link}, {seg_names[s] for s in link.values()}
    results: dict[str, Any] = {
        "settings": {**vars(args), "torch": torch.__version__, "cpu": platform.processor() or platform.machine()},
        "det": str(det),
        "seg": str(seg),
        "runs": {},
    }
    for name in args.runs:
        run = train_run(name, args, det, seg, project)
        results["runs"][name] = {**run, "scores": scores(run, det_linked, seg_linked)}
    (project / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown_table(results)
    (project / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
