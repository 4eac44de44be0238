"""YOLOSeg: the Python facade, mirroring Ultralytics' `YOLO` (train / val / info)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG
from ultralytics.utils.files import increment_path
from ultralytics.utils.torch_utils import intersect_dicts

from .checkpoint import load_model, read_checkpoint, transfer_detection_weights
from .console import console
from .data import load_data_config
from .demo import make_demo
from .errors import UserInputError
from .nn import DetSegModel, build_model, load_model_cfg
from .schedule import SCHEDULES

DEMO_DIR = Path("datasets") / "yoloseg-demo"
DEMO_DEFAULTS = {"epochs": 15, "imgsz": 128, "batch": 16, "nbs": 16}  # nbs=batch: an optimizer step per batch


def parse_ratio(ratio: str | tuple[int, int]) -> tuple[int, int]:
    """'2:1' -> (2, 1)."""
    if isinstance(ratio, str):
        try:
            a, b = (int(x) for x in ratio.split(":"))
        except ValueError:
            raise UserInputError(f"--ratio: expected det:seg like 2:1, got '{ratio}'") from None
        ratio = (a, b)
    if len(ratio) != 2 or min(ratio) < 1:
        raise UserInputError(f"--ratio: both parts must be positive integers, got {ratio}")
    return tuple(ratio)


class YOLOSeg:
    """One YOLO network for detection + semantic segmentation.

    `YOLOSeg("yolo26n")` builds an untrained model from a stock detection yaml (any family and scale n/s/m/l/x) or a
    user yaml; `YOLOSeg("best.pt")` loads a yoloseg checkpoint.
    """

    def __init__(self, model: str | Path = "yolo26n"):
        self.model: DetSegModel | None = None
        self.ckpt: dict[str, Any] = {}
        if str(model).endswith((".pt", ".pth")):
            self.model, self.ckpt = load_model(model)
            self.cfg = self.model.yaml
        else:
            self.cfg = load_model_cfg(model)

    # ------------------------------------------------------------------ info
    @property
    def det_names(self) -> dict[int, str]:
        return self._require_model().det_names

    @property
    def seg_names(self) -> dict[int, str]:
        return self._require_model().seg_names

    def _train_imgsz(self) -> int:
        """The image size the checkpoint was trained at (640 when unknown)."""
        return int(self.ckpt.get("train_args", {}).get("imgsz", 640))

    def _require_model(self) -> DetSegModel:
        if self.model is None:
            raise UserInputError("this YOLOSeg has no trained weights yet; train it or load a .pt checkpoint")
        return self.model

    def info(self) -> dict[str, Any]:
        """Summary of the model: class lists, parameters, GFLOPs, training epoch and metrics when known."""
        from ultralytics.utils.torch_utils import get_flops, get_num_params

        model = self._require_model()
        imgsz = self._train_imgsz()
        return {
            "architecture": Path(str(model.yaml.get("yaml_file", "custom"))).stem,
            "det_names": dict(model.det_names),
            "seg_names": dict(model.seg_names),
            "parameters": get_num_params(model),
            f"GFLOPs@{imgsz}": round(get_flops(model, imgsz), 2),
            "epoch": self.ckpt.get("epoch", -1) + 1 if self.ckpt else None,
            "metrics": {k: v for k, v in self.ckpt.get("metrics", {}).items() if k.startswith(("metrics/", "fitness"))},
            "version": self.ckpt.get("version"),
            "date": self.ckpt.get("date"),
        }

    # ------------------------------------------------------------------ train
    def train(
        self,
        det: str | Path | None = None,
        seg: str | Path | None = None,
        *,
        schedule: str = "alternate",
        ratio: str | tuple[int, int] = "1:1",
        det_epochs: int | None = None,
        order: str = "det,seg",
        freeze: int | None = None,
        lr_scale: float = 0.1,
        seg_weight: float = 1.0,
        weights: str | Path | None = None,
        resume: bool | str | Path = False,
        project: str | Path = "runs/yoloseg",
        name: str = "train",
        **overrides: Any,
    ) -> dict[str, float]:
        """Train on a box-only dataset (`det` yaml) and a mask-only dataset (`seg` yaml); returns best.pt's metrics.

        With neither dataset given, a built-in synthetic demo pair is generated and used. Other keyword arguments are
        Ultralytics training options with their usual meaning (epochs, imgsz, batch, device, workers, fraction, seed,
        lr0, patience, cache, optimizer, ...).
        """
        from .train import DetSegTrainer

        if resume:
            trainer = self._resume_trainer(resume)
        else:
            if (det is None) != (seg is None):
                raise UserInputError("give both --det and --seg (or neither, to train on the built-in demo)")
            if det is None:
                det, seg = make_demo_if_missing(DEMO_DIR)
                overrides = {**DEMO_DEFAULTS, **overrides}
            args = ultralytics_args(overrides, "train")
            options = train_options(args, det, seg, schedule, ratio, det_epochs, order, freeze, lr_scale, seg_weight)
            det_data, seg_data = load_data_config(det, "det"), load_data_config(seg, "seg")
            model = self._model_for(det_data, seg_data, weights)
            save_dir = increment_path(Path(project) / name, exist_ok=False, mkdir=True)
            trainer = DetSegTrainer(model, args, det_data, seg_data, options, save_dir)
        _train_or_clean_up(trainer)
        best = trainer.weights_dir / "best.pt"
        self.model, self.ckpt = load_model(best)
        console.print(f"[bold]Validating {best}[/]")
        return self.val(
            det=trainer.options["det"],
            seg=trainer.options["seg"],
            imgsz=trainer.args.imgsz,
            batch=trainer.args.batch,
            device=trainer.args.device,
            save_dir=trainer.save_dir,
        )

    def _model_for(self, det_data: dict, seg_data: dict, weights: str | Path | None) -> DetSegModel:
        """A fresh model with the datasets' class lists, initialised from this model or `weights` where shapes match."""
        model = build_model(self.cfg, len(det_data["names"]), len(seg_data["names"]))
        model.names, model.seg_names = dict(det_data["names"]), dict(seg_data["names"])
        if self.model is not None:  # fine-tuning a yoloseg checkpoint, possibly on new class lists
            model.load_state_dict(intersect_dicts(self.model.float().state_dict(), model.state_dict()), strict=False)
        if weights:
            n, total = transfer_detection_weights(model, weights)
            console.print(f"Transferred {n}/{total} tensors from {weights}")
        return model

    def _resume_trainer(self, resume: bool | str | Path):
        from .train import DetSegTrainer

        path = Path(resume) if not isinstance(resume, bool) else None
        if path is None:
            raise UserInputError("--resume: give the interrupted run's weights/last.pt (or its run directory)")
        if path.is_dir():
            path = path / "weights" / "last.pt"
        ckpt = read_checkpoint(path, flag="--resume")
        if "train_state" not in ckpt:
            raise UserInputError(f"--resume: {path} has no resumable state (the run finished, or it is not last.pt)")
        options = ckpt["options"]
        det_data, seg_data = load_data_config(options["det"], "det"), load_data_config(options["seg"], "seg")
        args = get_cfg(DEFAULT_CFG, ckpt["train_args"])
        trainer = DetSegTrainer(ckpt["model"].float(), args, det_data, seg_data, options, path.parent.parent)
        trainer.resume_state = ckpt["train_state"]
        console.print(f"Resuming {trainer.save_dir} from epoch {ckpt['train_state']['epoch'] + 2}/{args.epochs}")
        return trainer

    # ------------------------------------------------------------------ val
    def val(
        self,
        det: str | Path | None = None,
        seg: str | Path | None = None,
        *,
        imgsz: int | None = None,
        batch: int = 16,
        device: str = "",
        save_dir: str | Path | None = None,
        verbose: bool = True,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Evaluate on a detection val set and/or a semantic val set; returns metrics and per-class tables."""
        from ultralytics.utils.checks import check_imgsz
        from ultralytics.utils.torch_utils import select_device

        from .report import print_val_report
        from .val import DetSegValidator

        model = self._require_model()
        if det is None and seg is None:
            raise UserInputError("give --det and/or --seg to validate on")
        det_data = load_data_config(det, "det") if det else None
        seg_data = load_data_config(seg, "seg") if seg else None
        self._check_names(det_data, seg_data)
        imgsz = imgsz or self._train_imgsz()
        args = ultralytics_args({**overrides, "imgsz": imgsz, "batch": batch, "device": device}, "val")
        stride = max(int(model.stride.max()), 32)
        args.imgsz = check_imgsz(args.imgsz, stride=stride, max_dim=1)
        model.to(select_device(device, verbose=False))
        validator = DetSegValidator(args, det_data, seg_data, stride, Path(save_dir or "."))
        metrics = validator(model)
        result = {"metrics": metrics, "classes": validator.class_tables()}
        if verbose:
            print_val_report(result)
        return result

    def _check_names(self, det_data: dict | None, seg_data: dict | None) -> None:
        model = self._require_model()
        for flag, data, names in (("--det", det_data, model.det_names), ("--seg", seg_data, model.seg_names)):
            if data is not None and len(data["names"]) != len(names):
                raise UserInputError(
                    f"{flag}: {data['yaml_path']} has {len(data['names'])} classes but the model's "
                    f"{'detection' if flag == '--det' else 'segmentation'} head has {len(names)}"
                )


def ultralytics_args(overrides: dict[str, Any], mode: str) -> Any:
    """Ultralytics' args namespace (its defaults + `overrides`); invalid values become a UserInputError."""
    try:
        return get_cfg(DEFAULT_CFG, {**overrides, "mode": mode, "task": "detect", "plots": False})
    except (TypeError, ValueError, SyntaxError, KeyError) as e:
        raise UserInputError(" ".join(str(e).split()).split(" See ")[0]) from None


def train_options(
    args: Any,
    det: str | Path,
    seg: str | Path,
    schedule: str,
    ratio: str | tuple[int, int],
    det_epochs: int | None,
    order: str | tuple[str, str],
    freeze: int | None,
    lr_scale: float,
    seg_weight: float,
) -> dict[str, Any]:
    """Checked yoloseg training options (saved in checkpoints, so a resume continues with the same ones)."""
    if schedule not in SCHEDULES:
        raise UserInputError(f"--schedule: unknown schedule '{schedule}', choose from {', '.join(SCHEDULES)}")
    order_t = tuple(x.strip() for x in order.split(",")) if isinstance(order, str) else tuple(order)
    if sorted(order_t) != ["det", "seg"]:
        raise UserInputError(f"--order: expected det,seg or seg,det, got '{order}'")
    if args.epochs < 1:
        raise UserInputError(f"--epochs must be >= 1, got {args.epochs}")
    if schedule == "phased" and args.epochs < 2:
        raise UserInputError(f"--schedule phased needs at least 2 epochs (one per phase), got --epochs {args.epochs}")
    det_epochs = args.epochs // 2 if det_epochs is None else det_epochs
    if schedule == "phased" and not 0 < det_epochs < args.epochs:
        raise UserInputError(f"--det-epochs must be between 1 and epochs-1 ({args.epochs - 1}), got {det_epochs}")
    return {
        "det": str(det),
        "seg": str(seg),
        "schedule": schedule,
        "ratio": parse_ratio(ratio),
        "det_epochs": det_epochs,
        "order": order_t,
        "freeze": (10 if schedule == "phased" else 0) if freeze is None else freeze,
        "lr_scale": lr_scale,
        "seg_weight": seg_weight,
    }


def _train_or_clean_up(trainer) -> None:
    """Train; if bad input stops a new run before its first checkpoint, remove the (empty) run folder it made."""
    try:
        trainer.train()
    except UserInputError:
        if not trainer.resume_state and not (trainer.weights_dir / "last.pt").exists():
            shutil.rmtree(trainer.save_dir, ignore_errors=True)
        raise
    except KeyboardInterrupt:
        if (trainer.weights_dir / "last.pt").exists():
            console.print(f"Interrupted. Continue with: yoloseg train --resume {trainer.save_dir}")
        raise


def make_demo_if_missing(root: Path) -> tuple[Path, Path]:
    """The demo pair under `root`, generated on first use."""
    det, seg = root / "demo-det" / "demo-det.yaml", root / "demo-seg" / "demo-seg.yaml"
    if not (det.is_file() and seg.is_file()):
        console.print(f"Generating the built-in demo datasets in {root} ...")
        det, seg = make_demo(root)
    return det, seg
