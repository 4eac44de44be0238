"""yoloseg's own training options (schedule, ratio, phases, loss weight): their defaults and checks, in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoloseghw.utils.errors import UserInputError

PROJECT = "runs/yoloseg"  # the parent folder of runs, predictions and benchmarks, unless --project says otherwise
SCHEDULES = ("alternate", "phased", "joint", "single")  # single: train order[1] only, order[0] is validated
TASKS = ("det", "seg")
DEFAULTS: dict[str, Any] = {
    "schedule": "alternate",
    "ratio": "1:1",  # chosen by quality at equal cost (docs/benchmarks.md, the task mix)
    "det_epochs": None,
    "order": "det,seg",
    "lr_scale": 1.0,
    "seg_weight": 1.0,
    "lr_shared": 1.0,
    "lr_head": 1.0,
    "distill": None,  # None: on where a second task follows a first (DISTILL_SCHEDULES) without --replay
    "teacher": None,
    "distill_t": 2.0,
    "distill_weight": 1.0,
    "ewc": 0.0,
    "replay": 0.0,
    "freeze_bn": True,
    "bn_recalibrate": 0,
    "epoch_steps": None,
    "link": None,
    "link_weight": "0.1,0.25",  # box-to-mask, mask-to-box (docs/benchmarks.md, "--link")
}
RETIRED = frozenset({"pseudo_conf"})  # options of earlier releases that pair yamls may still hold; ignored
DISTILL_SCHEDULES = ("phased", "single")  # where --distill is on unless --no-distill: one task after the other
FREEZE_NAMES = ("backbone", "neck")  # --freeze by name: the backbone, or everything before the heads
SINGLE_FREEZE = "backbone"  # what `single` freezes unless --freeze is given (docs/benchmarks.md: the users' case)


@dataclass(frozen=True)
class Mix:
    """Which task a step draws: `auto`, `a:b`, `temp:A` or `gain` (see data/multitask.py and data/gain_mix.py)."""

    kind: str  # "auto", "ratio", "temp" or "gain"
    ratio: tuple[int, int] = (1, 1)
    temperature: float = 1.0

    @classmethod
    def parse(cls, value: str | tuple | list | Mix) -> Mix:
        """The mix of `--ratio`: 'auto', 'a:b' (positive integers), 'temp:A' (A >= 0) or 'gain'; UserInputError
        otherwise."""
        if isinstance(value, Mix):
            return value
        expected = "expected auto, gain, det:seg like 2:1 or temp:A like temp:0.5 (quoted in a yaml file)"
        if isinstance(value, (tuple, list)):
            value = ":".join(str(v) for v in value)
        if not isinstance(value, str):  # e.g. an unquoted 2:1 in a yaml file reads as the number 121
            raise UserInputError(f"--ratio: {expected}, got {value}")
        text = value.strip().lower()
        if text in ("auto", "gain"):
            return cls(text)
        if text.startswith("temp:"):
            try:
                a = float(text[5:])
            except ValueError:
                raise UserInputError(f"--ratio: {expected}, got '{value}'") from None
            if not (math.isfinite(a) and a >= 0):
                raise UserInputError(f"--ratio temp:A needs a finite A >= 0, got '{value}'")
            return cls("temp", temperature=a)
        try:
            ratio = tuple(int(x) for x in text.split(":"))
        except ValueError:
            raise UserInputError(f"--ratio: {expected}, got '{value}'") from None
        if len(ratio) != 2 or min(ratio) < 1:
            raise UserInputError(f"--ratio: {expected}; det:seg needs two positive integers, got '{value}'")
        return cls("ratio", ratio=ratio)

    def shares(self, batches: dict[str, int]) -> dict[str, float]:
        """The share of an epoch's steps each task gets, given each dataset's batches per pass (`gain`: its warm-up
        shares, 1:1; the trainer sets the later epochs' shares from the validation gains)."""
        if self.kind == "gain":
            return dict.fromkeys(TASKS, 1 / len(TASKS))
        if self.kind == "ratio":
            weights = dict(zip(TASKS, self.ratio))
        else:
            a = 1.0 if self.kind == "auto" else self.temperature
            weights = {t: float(batches[t]) ** a for t in TASKS}
        total = sum(weights.values())
        return {t: w / total for t, w in weights.items()}

    def __str__(self) -> str:
        if self.kind == "ratio":
            return f"{self.ratio[0]}:{self.ratio[1]}"
        return self.kind if self.kind in ("auto", "gain") else f"temp:{self.temperature:g}"


def link_weights(value: Any) -> tuple[float, float]:
    """--link-weight: one weight for both directions ('1.0') or box-to-mask,mask-to-box ('1.0,0.5'), each >= 0."""
    items = value if isinstance(value, (tuple, list)) else str(value).split(",")
    try:
        weights = tuple(float(x) for x in items)
    except ValueError:
        raise UserInputError(f"--link-weight: expected W or W1,W2 (numbers >= 0), got '{value}'") from None
    if len(weights) == 1:
        weights = weights * 2
    if len(weights) != 2 or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise UserInputError(f"--link-weight: expected W or W1,W2 (numbers >= 0), got '{value}'")
    return weights


def parse_order(order: str | tuple[str, str] | list[str]) -> tuple[str, str]:
    """'seg,det' -> ('seg', 'det')."""
    order_t = tuple(x.strip() for x in order.split(",")) if isinstance(order, str) else tuple(order)
    if sorted(order_t) != sorted(TASKS):
        raise UserInputError(f"--order: expected det,seg or seg,det, got '{order}'")
    return order_t


def check_options(options: dict[str, Any], epochs: int) -> dict[str, Any]:
    """Checked and completed yoloseg options for a run of `epochs` epochs (ratio/order parsed, det_epochs filled)."""
    unknown = set(options) - set(DEFAULTS) - RETIRED - {"det", "seg"}
    if unknown:
        raise UserInputError(f"unknown yoloseg option(s): {', '.join(sorted(unknown))}")
    opts = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None and k not in RETIRED}}
    if opts["schedule"] not in SCHEDULES:
        raise UserInputError(f"--schedule: unknown schedule '{opts['schedule']}', choose from {', '.join(SCHEDULES)}")
    opts["ratio"], opts["order"] = Mix.parse(opts["ratio"]), parse_order(opts["order"])
    if epochs < 1:
        raise UserInputError(f"--epochs must be >= 1, got {epochs}")
    if opts["schedule"] == "phased":
        if epochs < 2:
            raise UserInputError(f"--schedule phased needs at least 2 epochs (one per phase), got --epochs {epochs}")
        opts["det_epochs"] = epochs // 2 if opts["det_epochs"] is None else int(opts["det_epochs"])
        if not 0 < opts["det_epochs"] < epochs:
            raise UserInputError(
                f"--det-epochs must be between 1 and epochs-1 ({epochs - 1}), got {opts['det_epochs']}"
            )
    for key in ("lr_scale", "lr_shared", "lr_head", "distill_t"):
        if not opts[key] > 0:
            raise UserInputError(f"--{key.replace('_', '-')} must be > 0, got {opts[key]}")
    for key in ("seg_weight", "distill_weight", "ewc", "replay", "bn_recalibrate"):
        if not (isinstance(opts[key], (int, float)) and not isinstance(opts[key], bool) and opts[key] >= 0):
            raise UserInputError(f"--{key.replace('_', '-')} must be a number >= 0, got {opts[key]}")
    if opts["epoch_steps"] is not None and not (isinstance(opts["epoch_steps"], int) and opts["epoch_steps"] >= 1):
        raise UserInputError(f"--epoch-steps must be a whole number >= 1, got {opts['epoch_steps']}")
    opts["link_weight"] = link_weights(opts["link_weight"])
    if not isinstance(opts["freeze_bn"], bool):
        raise UserInputError(f"--freeze-bn must be true or false, got {opts['freeze_bn']}")
    if opts["replay"] and opts["schedule"] not in ("phased", "single"):
        raise UserInputError(
            f"--replay draws first-task batches in a second phase: use --schedule phased or single, not "
            f"{opts['schedule']} (whose every epoch draws both datasets)"
        )
    if opts["distill"] is None:  # replayed first-task labels keep that task better than a teacher (the benchmarks)
        opts["distill"] = opts["schedule"] in DISTILL_SCHEDULES and not opts["replay"]
    if opts["distill"] and opts["schedule"] == "joint":
        raise UserInputError(
            "--distill: every joint step has labels for both heads; distil with --schedule alternate or phased"
        )
    if opts["link"] is not None and not (isinstance(opts["link"], str) and opts["link"].strip()):
        raise UserInputError(f"--link: expected auto or det=seg pairs (car=car,person=pedestrian), got {opts['link']}")
    if opts["link"] and opts["schedule"] == "joint":
        raise UserInputError(
            "--link: a joint step runs each head on its own images only; link with --schedule alternate or phased"
        )
    if opts["ewc"] and opts["schedule"] not in ("phased", "single"):
        raise UserInputError(
            "--ewc anchors the weights a first task left: use --schedule phased, or one dataset with --weights"
        )
    if opts["teacher"]:
        if not opts["distill"]:
            raise UserInputError(f"--teacher {opts['teacher']} is the teacher of --distill: add --distill")
        if not Path(opts["teacher"]).is_file():
            raise UserInputError(f"--teacher: {opts['teacher']} does not exist")
        opts["teacher"] = str(Path(opts["teacher"]).resolve())
    return opts


CACHE_VALUES = (True, False, "ram", "disk")
MIN_IMGSZ = 32  # the largest stride of every model family yoloseg builds


def check_training_args(args: Any, layers: int) -> int:
    """Ultralytics options that Ultralytics itself checks only mid-run, or never: each bad value is a one-line error
    before any run folder exists. `layers` is the model's layer count before the semantic head (Detect is the last).
    Returns the image size, rounded up to a multiple of the stride with a warning, as Ultralytics' check_imgsz does."""
    if args.batch == 0 or args.batch < -1:
        raise UserInputError(f"--batch must be at least 1 (or -1: Ultralytics' AutoBatch on a GPU), got {args.batch}")
    if args.workers < 0:
        raise UserInputError(f"--workers must be 0 or more, got {args.workers}")
    if args.cache not in CACHE_VALUES:
        raise UserInputError(f"--cache: expected ram or disk (or True/False), got '{args.cache}'")
    freeze = args.freeze if isinstance(args.freeze, list) else range(args.freeze or 0)
    if any(not 0 <= int(i) < layers - 1 for i in freeze):
        raise UserInputError(
            f"--freeze {args.freeze}: the model has {layers} layers and the last (Detect) must train; "
            f"freeze at most {layers - 1}"
        )
    if isinstance(args.imgsz, list) and not 1 <= len(args.imgsz) <= 2:
        raise UserInputError(f"imgsz: one size or [height, width], got {args.imgsz}")
    imgsz = max(args.imgsz) if isinstance(args.imgsz, list) else args.imgsz
    if imgsz < MIN_IMGSZ:
        raise UserInputError(f"--imgsz must be at least {MIN_IMGSZ}, got {imgsz}")
    return round_to_stride(imgsz, MIN_IMGSZ)


def check_imgsz(imgsz: int | None) -> None:
    """UserInputError unless an inference size is unset (the model's own) or at least MIN_IMGSZ."""
    if imgsz is not None and not (isinstance(imgsz, int) and imgsz >= MIN_IMGSZ):
        raise UserInputError(f"--imgsz must be at least {MIN_IMGSZ}, got {imgsz}")


def round_to_stride(imgsz: int, stride: int) -> int:
    """`imgsz` rounded up to a multiple of `stride`, with a warning when it changes (as Ultralytics does)."""
    from yoloseghw.utils.console import warn

    if imgsz < 1:
        raise UserInputError(f"--imgsz must be positive, got {imgsz}")
    rounded = math.ceil(imgsz / stride) * stride
    if rounded != imgsz:
        warn(f"--imgsz {imgsz} is not a multiple of the stride {stride}, using {rounded}")
    return rounded


def layer_count(cfg: dict) -> int:
    """Layers of a model yaml (backbone + head; Detect is the last)."""
    return len(cfg["backbone"]) + len(cfg["head"])


def freeze_layers(freeze: Any, cfg: dict | None) -> Any:
    """--freeze as Ultralytics takes it: `backbone` (the yaml's backbone layers), `neck` (every layer before the
    heads: backbone and neck) or a number of layers; a list of layer indices passes as it is. Names need the model's
    yaml `cfg` (None: a resume, whose model is the checkpoint's)."""
    if not isinstance(freeze, str):
        return freeze
    text = freeze.strip().lower()
    if text.isdigit():
        return int(text)
    if text not in FREEZE_NAMES:
        raise UserInputError(f"--freeze: expected a number of layers, {' or '.join(FREEZE_NAMES)}, got '{freeze}'")
    if cfg is None:
        raise UserInputError("--resume: give --freeze as a number of layers")
    return len(cfg["backbone"]) if text == "backbone" else layer_count(cfg) - 1


def ultralytics_args(overrides: dict[str, Any], mode: str) -> Any:
    """Ultralytics' args namespace (its defaults + `overrides`); an unknown key or bad value is a one-line error."""
    from ultralytics.cfg import get_cfg
    from ultralytics.utils import DEFAULT_CFG

    from yoloseghw.utils.ultralytics import error_text

    try:
        return get_cfg(DEFAULT_CFG, {**overrides, "mode": mode, "task": "detect"})
    except (TypeError, ValueError, SyntaxError, KeyError) as e:
        raise UserInputError(error_text(e)) from None
