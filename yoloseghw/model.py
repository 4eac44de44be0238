"""YOLOSeg: the Python facade, mirroring Ultralytics' `YOLO` (train / val / predict / export / info)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG
from ultralytics.utils.files import increment_path
from ultralytics.utils.torch_utils import intersect_dicts

from .backend import OnnxBackend, TorchBackend
from .checkpoint import load_model, read_checkpoint, transfer_detection_weights
from .console import console
from .data import load_data_config
from .demo import make_demo
from .errors import UserInputError
from .nn import DetSegModel, build_model, load_model_cfg
from .schedule import SCHEDULES

if TYPE_CHECKING:
    from .results import DetSegResult

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
        self.onnx: OnnxBackend | None = None
        self.ckpt: dict[str, Any] = {}
        self.weights: Path | None = None
        self._fused: tuple[DetSegModel, str, TorchBackend] | None = None
        if str(model).endswith((".pt", ".pth")):
            self.model, self.ckpt = load_model(model)
            self.cfg, self.weights = self.model.yaml, Path(model)
        elif str(model).endswith(".onnx"):
            self.onnx, self.weights, self.cfg = OnnxBackend(model), Path(model), None
        else:
            self.cfg = load_model_cfg(model)

    # ------------------------------------------------------------------ info
    @property
    def det_names(self) -> dict[int, str]:
        return self.onnx.det_names if self.onnx else self._require_model().det_names

    @property
    def seg_names(self) -> dict[int, str]:
        return self.onnx.seg_names if self.onnx else self._require_model().seg_names

    def _train_imgsz(self) -> int:
        """The image size the checkpoint was trained at, or the ONNX model was exported at (640 when unknown)."""
        if self.onnx:
            return int(self.onnx.metadata["imgsz"][0])
        return int(self.ckpt.get("train_args", {}).get("imgsz", 640))

    def _require_model(self) -> DetSegModel:
        if self.onnx is not None:
            raise UserInputError(f"--weights: {self.weights} is an ONNX model; this needs the PyTorch checkpoint (.pt)")
        if self.model is None:
            raise UserInputError("this YOLOSeg has no trained weights yet; train it or load a .pt checkpoint")
        return self.model

    def _backend(self, device: str = "", threads: int | None = None) -> TorchBackend | OnnxBackend:
        """The PyTorch model (a fused copy) or the ONNX Runtime session, on `device` with `threads` for ORT."""
        if self.onnx is None:
            model = self._require_model()
            if self._fused is None or self._fused[:2] != (model, str(device)):  # one fused copy per model and device
                self._fused = (model, str(device), TorchBackend(model, device, fuse=True))
            return self._fused[2]
        if (threads, str(device)) != (self.onnx.threads, self.onnx.device_request):  # one session per setting
            self.onnx = OnnxBackend(self.weights, device, threads)
        return self.onnx

    def info(self) -> dict[str, Any]:
        """Summary of the model: class lists, parameters, GFLOPs, training epoch and metrics when known."""
        from ultralytics.utils.torch_utils import get_flops, get_num_params

        if self.onnx:
            meta = self.onnx.metadata
            return {
                "architecture": meta["family"],
                "det_names": self.onnx.det_names,
                "seg_names": self.onnx.seg_names,
                "input": "dynamic" if self.onnx.dynamic else f"{(self.onnx.batch, 3, *self.onnx.imgsz)}",
                "detections": "end-to-end (no NMS)" if self.onnx.end2end else "raw (NMS after the network)",
                "semantic output": meta["semantic_output"],
                "providers": ", ".join(self.onnx.providers),
            }
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

        if self.onnx:
            raise UserInputError(
                f"{self.weights} is an ONNX model and cannot be trained; train from the .pt checkpoint"
            )
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
        threads: int | None = None,
        save_dir: str | Path | None = None,
        verbose: bool = True,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Evaluate on a detection val set and/or a semantic val set; returns metrics and per-class tables.

        With an ONNX model, ONNX Runtime runs it (`threads` sets its thread count); a static-shape export is
        evaluated at its own image size and batch.
        """
        from .predict import input_size
        from .report import print_val_report
        from .val import DetSegValidator

        if det is None and seg is None:
            raise UserInputError("give --det and/or --seg to validate on")
        det_data = load_data_config(det, "det") if det else None
        seg_data = load_data_config(seg, "seg") if seg else None
        self._check_names(det_data, seg_data)
        backend = self._backend(device, threads)
        imgsz = input_size(backend, imgsz or self._train_imgsz())
        batch = backend.batch or batch
        args = ultralytics_args({**overrides, "imgsz": imgsz, "batch": batch, "device": device}, "val")
        validator = DetSegValidator(args, det_data, seg_data, backend.stride, Path(save_dir or "."), backend.dynamic)
        metrics = validator(backend)
        result = {"metrics": metrics, "classes": validator.class_tables()}
        if verbose:
            print_val_report(result)
        return result

    def _check_names(self, det_data: dict | None, seg_data: dict | None) -> None:
        for flag, data, names in (("--det", det_data, self.det_names), ("--seg", seg_data, self.seg_names)):
            if data is not None and len(data["names"]) != len(names):
                raise UserInputError(
                    f"{flag}: {data['yaml_path']} has {len(data['names'])} classes but the model's "
                    f"{'detection' if flag == '--det' else 'segmentation'} head has {len(names)}"
                )

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        source: Any = None,
        *,
        imgsz: int | None = None,
        conf: float = 0.25,
        iou: float = 0.7,
        classes: list[int | str] | str | None = None,
        max_det: int = 300,
        device: str = "",
        threads: int | None = None,
        stream: bool = False,
        save: bool = False,
        save_mask: bool = False,
        save_txt: bool = False,
        save_conf: bool = False,
        save_json: bool = False,
        alpha: float = 0.5,
        project: str | Path = "runs/yoloseg",
        name: str = "predict",
        verbose: bool = False,
    ) -> list[DetSegResult] | Iterator[DetSegResult]:
        """Detect and segment an image, folder, glob, video, camera index or in-memory image(s).

        Returns one DetSegResult per image or frame (`.boxes`, `.semantic_mask`, `.plot()`), or a generator with
        `stream=True`. With any `save*` option the outputs go to a new `project/name` folder (`self.save_dir`).
        No source: an example image shipped with Ultralytics.
        """
        from .predict import DetSegPredictor, PredictionWriter

        if not 0 <= conf <= 1 or not 0 <= iou <= 1 or not 0 <= alpha <= 1:
            raise UserInputError(f"--conf, --iou and --alpha must be between 0 and 1 (got {conf}, {iou}, {alpha})")
        backend = self._backend(device, threads)
        imgsz = imgsz or self._train_imgsz()
        predictor = DetSegPredictor(backend, imgsz, conf, iou, class_ids(classes, backend.det_names), max_det)
        writer = None
        if save or save_mask or save_txt or save_json:
            self.save_dir = increment_path(Path(project) / name, exist_ok=False, mkdir=True)
            writer = PredictionWriter(self.save_dir, save, save_mask, save_txt, save_conf, save_json, alpha)
        self.predictor = predictor
        results = predictor.stream(source, writer, progress=verbose)
        return results if stream else list(results)

    # ------------------------------------------------------------------ export
    def export(
        self,
        format: str = "onnx",
        *,
        imgsz: int | None = None,
        dynamic: bool = False,
        simplify: bool = False,
        opset: int | None = None,
        batch: int = 1,
        semantic: str = "classmap",
        device: str = "cpu",
    ) -> Path:
        """Export to ONNX beside the checkpoint (best.pt -> best.onnx): outputs `detections` and `semantic`.

        `semantic='classmap'` bakes the argmax into the graph (uint8 [B,H,W]); 'logits' gives [B,nc,H,W] floats.
        """
        from .export import export_onnx
        from .predict import round_to_stride

        if format.lower() != "onnx":
            raise UserInputError(f"--format: only onnx is supported, got '{format}'")
        model = self._require_model()
        imgsz = round_to_stride(imgsz or self._train_imgsz(), model.input_stride)
        return export_onnx(
            model,
            self.weights,
            imgsz=imgsz,
            dynamic=dynamic,
            simplify=simplify,
            opset=opset,
            batch=batch,
            semantic=semantic,
            device=device,
        )

    def compare_with(
        self, other: str | Path, source: Any, conf: float = 0.25, threads: int | None = None
    ) -> dict[str, Any]:
        """Predict `source` with this model and with `other` (e.g. its ONNX export) at the other's image size and
        report how well they agree (see `parity.compare_predictions`)."""
        from .parity import compare_predictions

        twin = YOLOSeg(other)
        imgsz = twin._train_imgsz()
        mine = self.predict(source, imgsz=imgsz, conf=conf, threads=threads)
        theirs = twin.predict(source, imgsz=imgsz, conf=conf, threads=threads)
        return compare_predictions(mine, theirs, conf)


def class_ids(classes: list[int | str] | str | None, names: dict[int, str]) -> list[int] | None:
    """Detection class filter from ids and/or names ('car,2' or ['car', 2]); UserInputError for unknown ones."""
    if classes is None or classes == "" or classes == []:
        return None
    items = [c.strip() for c in classes.split(",")] if isinstance(classes, str) else list(classes)
    by_name = {v: k for k, v in names.items()}
    ids = []
    for item in items:
        if isinstance(item, int) or str(item).isdigit():
            if int(item) not in names:
                raise UserInputError(f"--classes: no detection class {item} (the model has ids 0-{len(names) - 1})")
            ids.append(int(item))
        elif item in by_name:
            ids.append(by_name[item])
        else:
            raise UserInputError(f"--classes: unknown detection class '{item}' (classes: {', '.join(names.values())})")
    return ids


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
