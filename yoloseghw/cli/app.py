"""The `yoloseg` command line: a thin Typer layer over the YOLOSeg facade."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from yoloseghw.cli.data import data_app
from yoloseghw.cli.errors import cli_errors, weights_file
from yoloseghw.compress.benchmark import BenchOptions
from yoloseghw.compress.lowrank import MAX_ERROR, MIN_GAIN, RANK_SHARE
from yoloseghw.engine.exporter import ExportOptions
from yoloseghw.nn.semantic_output import DEFAULT_SEMANTIC_OUTPUT
from yoloseghw.utils.files import size_mb
from yoloseghw.utils.options import DEFAULTS, DISTILL_SCHEDULES, PROJECT, SCHEDULES, SINGLE_FREEZE

SEMANTIC_HELP = (
    "Semantic output: classmap[2|4|8] (uint8 class ids, argmax in the graph, at stride 1/2/4/8) or "
    "logits[2|4|8] (float); predict and val resize it to the image."
)
FACADE_ARGS = ("det", "seg", "data", "model", "weights", "val_det", "val_seg", "seg_head", "project", "name", "resume")

app = typer.Typer(
    name="yoloseg",
    help="One YOLO network for object detection + semantic segmentation, "
    "trained from a box-only and a mask-only dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")


def given_options(ctx: typer.Context) -> dict[str, Any]:
    """The options of a command typed on its command line (not those left at their defaults)."""
    return {k: v for k, v in ctx.params.items() if ctx.get_parameter_source(k).name == "COMMANDLINE"}


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@cli_errors
def train(
    ctx: typer.Context,
    det: Optional[Path] = typer.Option(None, help="Detection dataset yaml (images + YOLO txt boxes)."),
    seg: Optional[Path] = typer.Option(None, help="Semantic dataset yaml (images + PNG class masks, 255 = ignore)."),
    data: Optional[Path] = typer.Option(None, help="A pair yaml (det, seg and options) instead of --det/--seg."),
    model: Optional[str] = typer.Option(
        None,
        help="Stock detection model name (yolov8n, yolo11s, yolo26m, ...) or a yaml (default yolo26n; with --weights, "
        "their own architecture).",
    ),
    weights: Optional[Path] = typer.Option(
        None, help="A detection or yoloseg .pt to start from (with only --seg: a detector learns segmentation)."
    ),
    val_det: Optional[Path] = typer.Option(
        None, help="With only --seg: the box dataset yaml whose val split measures what detection keeps."
    ),
    val_seg: Optional[Path] = typer.Option(
        None, help="With only --det: the mask dataset yaml whose val split measures what segmentation keeps."
    ),
    seg_head: Optional[str] = typer.Option(
        None, help="Semantic head of a new model: conv (default, Ultralytics' SemanticSegment) or separable."
    ),
    schedule: Optional[str] = typer.Option(
        None,
        help=f"{' | '.join(SCHEDULES)} (default {DEFAULTS['schedule']}; single: one task from --weights, chosen when "
        "one dataset is given).",
    ),
    ratio: Optional[str] = typer.Option(
        None,
        help=f"alternate: which task a step draws: det:seg like 1:1 or 2:1, auto (each set's share of the batches), "
        f"temp:A (share of batches**A), or gain (1:1 in the warm-up, then by each task's validation gain per step); "
        f"default {DEFAULTS['ratio']}.",
    ),
    epoch_steps: Optional[int] = typer.Option(
        None, help="Batches an epoch draws (default: det + seg batches, what the two single-task models draw)."
    ),
    replay: Optional[float] = typer.Option(
        None,
        help=f"phased phase two, single: first-task batches drawn per second-task batch "
        f"(default {DEFAULTS['replay']}).",
    ),
    freeze_bn: Optional[bool] = typer.Option(
        None,
        "--freeze-bn/--no-freeze-bn",
        help=f"phased phase two, single: keep the shared layers' BatchNorm statistics fixed (default "
        f"{DEFAULTS['freeze_bn']}).",
    ),
    bn_recalibrate: Optional[int] = typer.Option(
        None, help="After the last epoch, re-estimate the shared BatchNorm statistics on N batches of each set."
    ),
    det_epochs: Optional[int] = typer.Option(None, help="phased: epochs of the detection phase (default: half)."),
    order: Optional[str] = typer.Option(None, help=f"phased: {DEFAULTS['order']} (default) or the reverse."),
    freeze: Optional[str] = typer.Option(
        None,
        help="Freeze N layers, the backbone, or the neck (all before the heads); phased: in phase two; single: "
        f"default {SINGLE_FREEZE} (--freeze 0 trains every layer).",
    ),
    lr_scale: Optional[float] = typer.Option(
        None, help=f"phased: LR multiplier in phase two (default {DEFAULTS['lr_scale']})."
    ),
    seg_weight: Optional[float] = typer.Option(
        None, help=f"Weight of the segmentation loss (default {DEFAULTS['seg_weight']})."
    ),
    lr_shared: Optional[float] = typer.Option(
        None, help=f"LR multiplier of the shared layers (default {DEFAULTS['lr_shared']})."
    ),
    lr_head: Optional[float] = typer.Option(
        None, help=f"LR multiplier of the two heads (default {DEFAULTS['lr_head']})."
    ),
    distill: Optional[bool] = typer.Option(
        None,
        "--distill/--no-distill",
        help="Learning without Forgetting: a teacher's outputs supervise the head a batch has no labels for "
        f"(default: on in {' and '.join(DISTILL_SCHEDULES)} without --replay, off otherwise).",
    ),
    teacher: Optional[Path] = typer.Option(
        None, help="--distill: teacher checkpoint (default: phased, the phase-one model; alternate, the EMA)."
    ),
    distill_t: Optional[float] = typer.Option(
        None, help=f"--distill: softmax temperature of the KL (default {DEFAULTS['distill_t']})."
    ),
    distill_weight: Optional[float] = typer.Option(
        None, help=f"--distill: weight of the term (default {DEFAULTS['distill_weight']})."
    ),
    ewc: Optional[float] = typer.Option(
        None, help="EWC strength: pull the weights toward the first task's, by its Fisher information (phased/single)."
    ),
    link: Optional[str] = typer.Option(
        None,
        help="Classes both datasets hold, det=seg by name (car=car,person=pedestrian) or auto (the same names): box "
        "images teach the semantic head and mask images teach Detect, for these classes only.",
    ),
    link_weight: Optional[str] = typer.Option(
        None,
        help=f"--link: weight of both cross-task terms, or box-to-mask,mask-to-box (default "
        f"{DEFAULTS['link_weight']}).",
    ),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default 100; 15 for the demo)."),
    imgsz: Optional[int] = typer.Option(None, help="Train/val image size (default 640; 128 for the demo)."),
    batch: Optional[int] = typer.Option(None, help="Batch size per task (default 16; with DDP, over all GPUs)."),
    device: Optional[str] = typer.Option(None, help="cpu, 0, 0,1 (several GPUs: DDP), ... (default: best available)."),
    workers: Optional[int] = typer.Option(None, help="Dataloader workers per loader (per GPU with DDP)."),
    fraction: Optional[float] = typer.Option(None, help="Fraction of each training set to use."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    lr0: Optional[float] = typer.Option(None, help="Initial LR (used when --optimizer is not auto)."),
    optimizer: Optional[str] = typer.Option(None, help="auto, SGD, AdamW, ... as in Ultralytics."),
    patience: Optional[int] = typer.Option(None, help="Early-stop after N epochs without fitness gain."),
    cache: Optional[str] = typer.Option(None, help="Cache images: ram or disk."),
    project: str = typer.Option(PROJECT, help="Parent folder of runs."),
    name: str = typer.Option("train", help="Run name (a new run never overwrites an old one: train-2, train-3, ...)."),
    resume: Optional[Path] = typer.Option(None, help="Continue an interrupted run: its folder or weights/last.pt."),
) -> None:
    """Train on a box dataset and a mask dataset (no data arguments: the built-in demo).

    Any Ultralytics training option can follow as key=value, e.g. `cos_lr=True warmup_epochs=1 amp=False`.
    """
    from yoloseghw.engine.model import YOLOSeg
    from yoloseghw.utils.metrics import MAP50, MAP50_95, MIOU, PIXEL_ACC

    given = {k: v for k, v in given_options(ctx).items() if k not in FACADE_ARGS}
    result = YOLOSeg(model).train(
        det=det,
        seg=seg,
        data=data,
        weights=weights,
        val_det=val_det,
        val_seg=val_seg,
        resume=resume or False,
        project=project,
        name=name,
        seg_head=seg_head,
        **{**key_value_overrides(ctx.args), **given},
    )
    m = result.get("metrics")
    if m:
        typer.echo(
            f"Final (best.pt): mAP50 {m[MAP50]:.3f}, mAP50-95 {m[MAP50_95]:.3f}, mIoU {m[MIOU]:.3f}, "
            f"pixel acc {m[PIXEL_ACC]:.3f}"
        )


def key_value_overrides(items: list[str]) -> dict[str, Any]:
    """Ultralytics-style `key=value` arguments (as `yolo train` takes them) -> {key: typed value}."""
    from ultralytics.cfg import parse_key_value_pair

    from yoloseghw.utils.errors import UserInputError

    overrides = {}
    for item in items:
        if "=" not in item or item.startswith("-"):
            raise UserInputError(f"unexpected argument '{item}' (see --help; Ultralytics options go as key=value)")
        try:
            key, value = parse_key_value_pair(item)
        except AssertionError:
            raise UserInputError(f"'{item}': missing value after '='") from None
        overrides[key] = value
    return overrides


@app.command()
@cli_errors
def val(
    weights: Path = typer.Option(..., help="yoloseg checkpoint (best.pt / last.pt) or exported .onnx."),
    det: Optional[Path] = typer.Option(None, help="Detection dataset yaml; its val split is used."),
    seg: Optional[Path] = typer.Option(None, help="Semantic dataset yaml; its val split is used."),
    imgsz: Optional[int] = typer.Option(None, help="Image size (default: the training size)."),
    batch: int = typer.Option(16, help="Batch size."),
    device: str = typer.Option("", help="cpu, 0, ..."),
    threads: Optional[int] = typer.Option(None, help="ONNX Runtime intra-op threads (default: onnxruntime's)."),
    conf: Optional[float] = typer.Option(None, help="Detection confidence threshold (default 0.001)."),
    iou: Optional[float] = typer.Option(None, help="NMS IoU threshold (default 0.7)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write metrics and per-class tables to this file."),
) -> None:
    """Evaluate a checkpoint or exported ONNX model on a det and/or seg val set, with per-class tables."""
    from yoloseghw.engine.model import YOLOSeg
    from yoloseghw.utils.files import check_output_file

    if json_path:
        check_output_file(json_path, "--json", (".json",))
        _refuse_non_report(json_path)
    result = YOLOSeg(weights_file(weights, onnx=True)).val(
        det=det,
        seg=seg,
        imgsz=imgsz,
        batch=batch,
        device=device,
        threads=threads,
        **{k: v for k, v in (("conf", conf), ("iou", iou)) if v is not None},
    )
    if json_path:
        from yoloseghw.utils.files import atomic_path

        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
        typer.echo(f"Wrote {json_path}")


def _refuse_non_report(path: Path) -> None:
    """An existing --json file is replaced only when it is a report `val --json` wrote (a JSON object of metrics)."""
    from yoloseghw.utils.errors import UserInputError

    if not path.exists():
        return
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        report = None
    if not (isinstance(report, dict) and "metrics" in report):
        raise UserInputError(f"--json: {path} exists and is not a yoloseg val report; it is left as it is")


@app.command()
@cli_errors
def predict(
    source: Optional[str] = typer.Argument(
        None, help="Image, folder, glob, video, .txt list or camera index (default: an example image)."
    ),
    weights: Optional[Path] = typer.Option(None, help="best.pt or an exported .onnx (default: the newest best.pt)."),
    imgsz: Optional[int] = typer.Option(None, help="Inference size (default: the training or export size)."),
    conf: float = typer.Option(0.25, help="Detection confidence threshold."),
    iou: float = typer.Option(0.7, help="NMS IoU threshold."),
    classes: Optional[str] = typer.Option(None, help="Keep only these detection classes: names or ids, 'car,2'."),
    max_det: int = typer.Option(300, help="Most boxes per image."),
    alpha: float = typer.Option(0.5, help="Opacity of the semantic overlay (0-1)."),
    device: str = typer.Option("", help="cpu, 0, ... (ONNX: CPU, or CUDA/TensorRT when onnxruntime has them)."),
    threads: Optional[int] = typer.Option(None, help="ONNX Runtime intra-op threads (default: onnxruntime's)."),
    semantic: Optional[str] = typer.Option(
        None,
        help=f"PyTorch weights: semantic output to compute, as export --semantic (default {DEFAULT_SEMANTIC_OUTPUT}).",
    ),
    save: bool = typer.Option(True, help="Save annotated images / videos."),
    save_mask: bool = typer.Option(False, help="Save PNG class maps (ids, 255 = ignore) at the original size."),
    save_txt: bool = typer.Option(False, help="Save YOLO txt boxes (class x y w h, normalized)."),
    save_conf: bool = typer.Option(False, help="Add the confidence to each --save-txt row."),
    json_out: bool = typer.Option(False, "--json", help="Write predictions.jsonl: boxes and class pixel fractions."),
    project: str = typer.Option(PROJECT, help="Parent folder of prediction runs."),
    name: str = typer.Option("predict", help="Run name (predict, predict-2, ...)."),
) -> None:
    """Detect objects and segment every pixel; draws boxes over a coloured class map with a legend."""
    from yoloseghw.engine.checkpoint import newest_weights
    from yoloseghw.engine.model import YOLOSeg
    from yoloseghw.utils.console import console

    if weights is None:
        weights = newest_weights(Path(project))
        console.print(f"Using {weights}")
    model = YOLOSeg(weights_file(weights, onnx=True))
    results = model.predict(
        source,
        imgsz=imgsz,
        conf=conf,
        iou=iou,
        classes=classes,
        max_det=max_det,
        device=device,
        threads=threads,
        stream=True,
        save=save,
        save_mask=save_mask,
        save_txt=save_txt,
        save_conf=save_conf,
        save_json=json_out,
        alpha=alpha,
        semantic=semantic,
        project=project,
        name=name,
        verbose=True,
    )
    count = sum(1 for _ in results)
    console.print(model.predictor.speed_line(), markup=False, soft_wrap=True)
    if save or save_mask or save_txt or json_out:
        console.print(f"{count} image(s) or frame(s); results saved to [bold]{model.save_dir}[/]")


@app.command()
@cli_errors
def export(
    ctx: typer.Context,
    weights: Path = typer.Option(..., help="yoloseg checkpoint (best.pt); the ONNX file is written beside it."),
    format: str = typer.Option("onnx", help="onnx (best.onnx) or openvino (best_openvino_model/)."),
    imgsz: Optional[int] = typer.Option(ExportOptions.imgsz, help="Input size (default: the training size)."),
    dynamic: bool = typer.Option(ExportOptions.dynamic, help="Dynamic batch and image size."),
    simplify: bool = typer.Option(ExportOptions.simplify, help="Simplify the graph with onnxslim."),
    opset: Optional[int] = typer.Option(
        ExportOptions.opset, help="ONNX opset (default: the newest Ultralytics trusts)."
    ),
    batch: int = typer.Option(ExportOptions.batch, help="Batch size of a static export."),
    semantic: str = typer.Option(ExportOptions.semantic, help=SEMANTIC_HELP),
    verify: Optional[str] = typer.Option(
        None, help="Images (file, folder, glob) to check the export against PyTorch on; exit 1 if they disagree."
    ),
    force: bool = typer.Option(False, help="Replace an existing export of the same name."),
) -> None:
    """Export to ONNX with two outputs, `detections` and `semantic`, and both class lists in its metadata."""
    from yoloseghw.engine.model import YOLOSeg
    from yoloseghw.utils.console import console

    model = YOLOSeg(weights_file(weights, onnx=False))
    if verify:
        from yoloseghw.data.sources import open_source

        open_source(verify, flag="--verify").close()  # a bad --verify source fails before the export, not after
    options = {k: v for k, v in ctx.params.items() if k not in ("weights", "format", "verify", "force")}
    path = model.export(format, force=force, **options)
    size = size_mb(path)
    console.print(
        f"Exported {path} ({size:.1f} MB)\nPredict: yoloseg predict IMAGE --weights {path}\n"
        f"Validate: yoloseg val --weights {path} --det DET.yaml --seg SEG.yaml",
        markup=False,
        soft_wrap=True,
    )
    if verify:
        from yoloseghw.engine.parity import agrees

        report = model.compare_with(path, verify)
        console.print(
            f"Verified on {report['images']} images: {report['boxes_matched']}/{report['boxes']} boxes matched "
            f"(IoU > 0.99, class agreement {report['class_agreement']:.1%}), "
            f"{report['mask_agreement']:.3%} of mask pixels identical",
            soft_wrap=True,
        )
        if not agrees(report):
            console.print("[red]The export disagrees with PyTorch beyond the tolerances.[/]")
            raise typer.Exit(1)


@app.command()
@cli_errors
def compress(
    weights: Path = typer.Option(..., help="yoloseg checkpoint (best.pt); the output is written beside it."),
    method: str = typer.Option(
        ...,
        help="prune (-> best-prune30.pt), lowrank (-> best-lowrank50.pt), quantize (INT8, -> best-int8.onnx) or fp16.",
    ),
    det: Optional[Path] = typer.Option(
        None, help="Detection dataset yaml (prune, lowrank: fine-tuning; quantize: calibration)."
    ),
    seg: Optional[Path] = typer.Option(
        None, help="Semantic dataset yaml (prune, lowrank: fine-tuning; quantize: calibration)."
    ),
    ratio: float = typer.Option(0.3, help="prune: the share of GFLOPs to remove (0-1; the nearest achievable one)."),
    criterion: str = typer.Option("l2", help="prune: channel importance, l1, l2 or bn (BatchNorm scale)."),
    steps: int = typer.Option(1, help="prune: rounds, each followed by fine-tuning."),
    finetune_epochs: int = typer.Option(10, help="prune, lowrank: fine-tuning epochs in all (with --det and --seg)."),
    batch: Optional[int] = typer.Option(None, help="prune, lowrank: fine-tuning batch size."),
    calib: int = typer.Option(200, help="quantize: calibration images, half from each dataset's train split."),
    calib_method: str = typer.Option("minmax", help="quantize: minmax, entropy or percentile."),
    keep_float: str = typer.Option("", help="quantize: node names (a,b) kept in float besides the stem and tails."),
    imgsz: Optional[int] = typer.Option(None, help="Input size (default: the training size)."),
    semantic: str = typer.Option(DEFAULT_SEMANTIC_OUTPUT, help="quantize, fp16: " + SEMANTIC_HELP),
    runtime: str = typer.Option(
        "onnxruntime", help="quantize: onnxruntime (best-int8.onnx) or openvino (NNCF, best-int8_openvino_model/)."
    ),
    accuracy_aware: bool = typer.Option(
        False, help="quantize --runtime openvino: NNCF's accuracy-aware mode (see --max-drop; validates on both sets)."
    ),
    max_drop: float = typer.Option(
        0.02, help="--accuracy-aware: the largest share of FP32's mAP50-95, and of its mIoU, INT8 may lose."
    ),
    float_precision: str = typer.Option(
        "f32",
        help="quantize --runtime openvino: the float parts (tails, attention) in f32, or bf16 on a CPU with bfloat16 "
        "(-> best-int8-bf16_openvino_model/).",
    ),
    rank: float = typer.Option(
        RANK_SHARE, help="lowrank: the share of each layer's rank to keep (-> best-lowrank50.pt)."
    ),
    max_error: float = typer.Option(
        MAX_ERROR, help="lowrank: the largest relative weight error of a factorized layer."
    ),
    min_gain: float = typer.Option(
        MIN_GAIN, help="lowrank: the smallest measured speed-up that factorizes a layer (0: any speed)."
    ),
    force: bool = typer.Option(False, help="Replace an existing output file."),
) -> None:
    """Write a compressed variant: a pruned or low-rank checkpoint, an INT8 ONNX or OpenVINO model, an FP16 ONNX."""
    from yoloseghw.engine.model import YOLOSeg
    from yoloseghw.utils.console import console

    model = YOLOSeg(weights_file(weights, onnx=False))
    nodes = tuple(n.strip() for n in keep_float.split(",") if n.strip())
    path = model.compress(
        method,
        det=det,
        seg=seg,
        calib=calib,
        calib_method=calib_method,
        keep_float=nodes,
        imgsz=imgsz,
        ratio=ratio,
        criterion=criterion,
        steps=steps,
        finetune_epochs=finetune_epochs,
        semantic=semantic,
        runtime=runtime,
        accuracy_aware=accuracy_aware,
        max_drop=max_drop,
        float_precision=float_precision,
        rank=rank,
        max_error=max_error,
        min_gain=min_gain,
        force=force,
        **({"batch": batch} if batch else {}),
    )
    size = size_mb(path)
    console.print(
        f"Wrote {path} ({size:.1f} MB)\nValidate: yoloseg val --weights {path} --det DET.yaml --seg SEG.yaml",
        markup=False,
        soft_wrap=True,
    )


@app.command()
@cli_errors
def bench(
    weights: Path = typer.Option(..., help="yoloseg checkpoint (best.pt); its variants beside it are found."),
    det: Path = typer.Option(..., help="Detection dataset yaml (val split)."),
    seg: Path = typer.Option(..., help="Semantic dataset yaml (val split)."),
    variant: list[Path] = typer.Option([], help="Another variant (.pt or .onnx) to compare; repeatable."),
    threads: int = typer.Option(BenchOptions.threads, help="Threads for every variant (torch and ONNX Runtime)."),
    batch: int = typer.Option(BenchOptions.batch, help="Batch size of the throughput figure."),
    runs: int = typer.Option(BenchOptions.runs, help="Timed runs per variant."),
    rounds: int = typer.Option(BenchOptions.rounds, help="Round-robin blocks the runs are split into."),
    baseline: bool = typer.Option(BenchOptions.baseline, help="Add the stock single-task detector and semantic model."),
    imgsz: Optional[int] = typer.Option(
        BenchOptions.imgsz, help="Input size of every variant (default: the training size; exports must match)."
    ),
    project: str = typer.Option(PROJECT, help="Parent folder of the results."),
    name: str = typer.Option("bench", help="Results folder name (bench, bench-2, ...)."),
) -> None:
    """The plain model against every compressed variant: size, latency, throughput and accuracy in one table."""
    from yoloseghw.compress.bench_report import print_table
    from yoloseghw.engine.model import YOLOSeg
    from yoloseghw.utils.console import console

    model = YOLOSeg(weights_file(weights, onnx=False))
    result = model.bench(
        det,
        seg,
        variants=tuple(variant),
        threads=threads,
        batch=batch,
        runs=runs,
        rounds=rounds,
        baseline=baseline,
        imgsz=imgsz,
        project=project,
        name=name,
    )
    print_table(result)
    console.print(f"Results: {model.save_dir}/bench.json, bench.csv, bench.png", markup=False, soft_wrap=True)


@app.command()
@cli_errors
def info(
    weights: Path = typer.Argument(..., help="yoloseg checkpoint (.pt), exported .onnx or OpenVINO model."),
) -> None:
    """Show a model's two class lists, size and training metrics (exported: its input, outputs and precision)."""
    from rich.table import Table

    from yoloseghw.engine.model import YOLOSeg
    from yoloseghw.utils.console import console

    summary = YOLOSeg(weights_file(weights, onnx=True, flag="WEIGHTS")).info()
    table = Table(show_header=False, title=str(weights), title_justify="left")
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in value.items())
        table.add_row(key, str(value))
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
