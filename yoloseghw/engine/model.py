"""YOLOSeg: the Python facade, mirroring Ultralytics' `YOLO` (train / val / predict / export / info)."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultralytics.cfg import get_cfg
from ultralytics.utils import DEFAULT_CFG, RANK, callbacks
from ultralytics.utils.files import increment_path

from yoloseghw.data.dataset import load_data_config
from yoloseghw.data.demo import make_demo
from yoloseghw.data.pair import PAIR_FILE, read_pair, write_pair
from yoloseghw.data.sources import open_source
from yoloseghw.engine.checkpoint import (
    checkpoint_metrics,
    checkpoint_model,
    is_legacy_resumable,
    load_model,
    read_checkpoint,
    trained_epochs,
    upgrade_legacy_resumable,
    write_checkpoint,
)
from yoloseghw.engine.distributed import join_process_group, on_rank_zero
from yoloseghw.nn.backends import OnnxBackend, TorchBackend, torch_device
from yoloseghw.nn.semantic_head import seg_head_class, seg_head_name
from yoloseghw.nn.semantic_output import DEFAULT_SEMANTIC_OUTPUT
from yoloseghw.nn.tasks import DetSegModel, load_model_cfg
from yoloseghw.utils.console import console, ultralytics_log, ultralytics_warnings, warn
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import check_output_folder
from yoloseghw.utils.options import DEFAULTS as OPTION_DEFAULTS
from yoloseghw.utils.options import (
    PHASED_FREEZE,
    check_options,
    check_training_args,
    freeze_layers,
    layer_count,
    round_to_stride,
)
from yoloseghw.utils.report import print_val_report

if TYPE_CHECKING:
    from yoloseghw.engine.results import DetSegResult

DEMO_DIR = Path("datasets") / "yoloseg-demo"
METRIC_PREFIXES = ("metrics/", "fitness")
COMPRESS_METHODS = {"prune": "prune", "quantize": "int8", "fp16": "fp16"}  # method -> the output's name suffix
DEMO_DEFAULTS = {"epochs": 15, "imgsz": 128, "batch": 16, "nbs": 16}  # nbs=batch: an optimizer step per batch


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
        self.callbacks = callbacks.get_default_callbacks()
        self.trainer = None
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
                "semantic head": meta["seg_head"],
                "det_names": self.onnx.det_names,
                "seg_names": self.onnx.seg_names,
                "input": "dynamic" if self.onnx.dynamic else f"{(self.onnx.batch, 3, *self.onnx.imgsz)}",
                "detections": "end-to-end (no NMS)" if self.onnx.end2end else "raw (NMS after the network)",
                "semantic output": meta["semantic_output"].name,
                "precision": meta["precision"],
                "providers": ", ".join(self.onnx.providers),
            }
        model = self._require_model()
        imgsz = self._train_imgsz()
        return {
            "architecture": Path(str(model.yaml.get("yaml_file", "custom"))).stem,
            "semantic head": seg_head_name(model.semantic),
            "det_names": dict(model.det_names),
            "seg_names": dict(model.seg_names),
            "parameters": get_num_params(model),
            f"GFLOPs@{imgsz}": round(get_flops(model, imgsz), 2),
            "epochs trained": trained_epochs(self.ckpt),
            "metrics": {k: v for k, v in checkpoint_metrics(self.ckpt).items() if k.startswith(METRIC_PREFIXES)},
            "version": self.ckpt.get("version"),
            "date": self.ckpt.get("date"),
        }

    # ------------------------------------------------------------------ callbacks
    def add_callback(self, event: str, fn: Callable) -> None:
        """Add `fn(trainer)` to an Ultralytics callback event ('on_train_epoch_end', 'on_fit_epoch_end', ...)."""
        if event not in self.callbacks:
            raise UserInputError(f"unknown callback event '{event}' (events: {', '.join(self.callbacks)})")
        self.callbacks[event].append(fn)

    def clear_callback(self, event: str) -> None:
        """Remove every callback of an event."""
        self.callbacks[event] = []

    # ------------------------------------------------------------------ train
    def train(
        self,
        det: str | Path | None = None,
        seg: str | Path | None = None,
        *,
        data: str | Path | None = None,
        weights: str | Path | None = None,
        resume: bool | str | Path = False,
        project: str | Path = "runs/yoloseg",
        name: str = "train",
        trainer: type | None = None,
        seg_head: str | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Train on a box-only dataset (`det` yaml) and a mask-only dataset (`seg` yaml), or a pair yaml (`data`).

        With no data at all, a built-in synthetic demo pair is generated and used. yoloseg's options (schedule,
        ratio, det_epochs, order, lr_scale, seg_weight) and every Ultralytics training option (epochs, imgsz, batch,
        device, lr0, cos_lr, freeze, amp, patience, ...) go in as keywords. Training runs on Ultralytics' trainer
        (`DetSegTrainer`, or a subclass given as `trainer`, as in Ultralytics' `YOLO.train`), with the callbacks added
        by `add_callback`. `seg_head` picks the semantic head of a model built from its yaml (nn/semantic_head.py).
        Returns best.pt's metrics and per-class tables.
        """
        from yoloseghw.engine.trainer import DetSegTrainer

        trainer_class = trainer or DetSegTrainer
        if self.onnx:
            raise UserInputError(f"{self.weights} is an ONNX model and cannot be trained; train from the .pt file")
        options = {k: overrides.pop(k) for k in list(overrides) if k in OPTION_DEFAULTS}
        cfg = self.cfg if seg_head is None else {**self.cfg, "seg_head": seg_head}
        if seg_head is not None:
            seg_head_class(seg_head)
            if resume or (self.ckpt and not weights):
                raise UserInputError(
                    "--seg-head builds a new model's head: train from --model (or --weights), not a resume or a "
                    "fine-tune of the checkpoint's own head"
                )
        device = str(overrides.get("device", ""))
        torch_device(device)  # an unavailable --device is one line, before any run folder
        join_process_group(device)  # under torchrun every process runs this; rank 0 writes the run folder
        if "freeze" in overrides:
            overrides["freeze"] = freeze_layers(overrides["freeze"], None if resume else self.cfg)
        if resume:
            if options:
                raise UserInputError(
                    f"--resume keeps the run's own {', '.join(sorted(options))}; start a new run to change them"
                )
            trainer = self._resume_trainer(trainer_class, resume, det, seg, overrides)
        else:
            pair, overrides = self._pair_for(det, seg, data, weights, options, overrides)
            if self.ckpt and "imgsz" not in overrides:  # fine-tuning keeps the checkpoint's size, as Ultralytics does
                overrides["imgsz"] = self._train_imgsz()
            args = ultralytics_args({**overrides, "data": "pair.yaml"}, "train")
            opts = check_options(pair, args.epochs)
            if opts["schedule"] == "phased" and "freeze" not in overrides:
                overrides["freeze"] = args.freeze = PHASED_FREEZE
            overrides["imgsz"] = check_training_args(args, layer_count(self.cfg))
            check_output_folder(project, "--project")
            if args.rect and opts["schedule"] == "joint":
                raise UserInputError("rect=True cannot train the joint schedule (a joint step needs one image size)")
            # the trainer loads both again from pair.yaml; checking here first means bad data stops the run before a
            # run folder exists and before Ultralytics' integrations (TensorBoard, MLflow, ...) start a run
            load_data_config(opts["det"], "det"), load_data_config(opts["seg"], "seg")
            source = self._source_model(weights)
            save_dir, pair_yaml = on_rank_zero(lambda: _new_run_folder(Path(project) / name, opts))
            overrides = {**overrides, "data": str(pair_yaml), "save_dir": str(save_dir), "model": self._model_name()}
            trainer = _new_trainer(trainer_class, overrides, self.callbacks, save_dir)
            if weights:  # initialise a model built from --model with what fits (Ultralytics' BaseModel.load)
                trainer.model = trainer.get_model(cfg=cfg, weights=source, transfer=True)
            else:  # fine-tune this checkpoint's own module, or start from scratch
                trainer.model = trainer.get_model(cfg=cfg, weights=source)
        self.trainer = trainer
        _train_or_clean_up(trainer)
        if RANK not in {-1, 0}:
            return {}
        final = trainer.best if trainer.best.exists() else trainer.last  # a resumed run may never beat its best
        self.model, self.ckpt = load_model(final)
        self.weights = final
        if trainer.validator is None:  # Ultralytics' DDP launcher trained in its workers: validate best.pt here
            data, args = trainer.data, trainer.args
            return self.val(
                data["det"]["yaml_path"],
                data["seg"]["yaml_path"],
                imgsz=args.imgsz,
                batch=args.batch,
                device=args.device,
            )
        result = {"metrics": trainer.validator.results, "classes": trainer.validator.class_tables()}
        print_val_report(result)
        return result

    def _pair_for(
        self, det: Any, seg: Any, data: Any, weights: Any, options: dict[str, Any], overrides: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The pair (det, seg and options) to train on: `data`, or `det`+`seg`, one of them with a yoloseg checkpoint
        (`single`), or the generated demo."""
        if data is not None:
            if det is not None or seg is not None:
                raise UserInputError("give either --data (a pair yaml) or --det and --seg, not both")
            return {**read_pair(data), **options}, overrides
        if (det is None) != (seg is None):
            return self._single_task_pair(det, seg, weights, options), overrides
        if det is None:
            det, seg = on_rank_zero(lambda: make_demo_if_missing(DEMO_DIR))
            overrides = {**DEMO_DEFAULTS, **overrides}
        return {"det": str(det), "seg": str(seg), **options}, overrides

    def _single_task_pair(self, det: Any, seg: Any, weights: Any, options: dict[str, Any]) -> dict[str, Any]:
        """One dataset given: fine-tune that task only (schedule `single`) from a yoloseg checkpoint that knows the
        other one, whose val set (from the checkpoint's own pair yaml) measures what that task keeps."""
        new = "det" if det is not None else "seg"
        old = "seg" if new == "det" else "det"
        ckpt = read_checkpoint(weights) if weights else self.ckpt
        if not ckpt or not isinstance(checkpoint_model(ckpt), DetSegModel):
            raise UserInputError(
                f"give both --det and --seg (--{new} alone fine-tunes a yoloseg checkpoint, given as --weights, "
                "that already knows the other task)"
            )
        pair = Path(str((ckpt.get("train_args") or {}).get("data", "")))
        if pair.name != PAIR_FILE or not pair.is_file():
            raise UserInputError(
                f"--{new} alone: the checkpoint's own pair yaml ({pair}) is not found; give --{old} too"
            )
        if options.get("schedule", "single") != "single":
            raise UserInputError(f"--schedule {options['schedule']} trains two datasets; --{new} alone trains one")
        datasets = read_pair(pair)
        datasets[new] = str(det if new == "det" else seg)
        return {
            "det": datasets["det"],
            "seg": datasets["seg"],
            **options,
            "schedule": "single",
            "order": f"{old},{new}",
        }

    def _source_model(self, weights: str | Path | None) -> Any:
        """What the new run starts from: `weights` (any Ultralytics detection or yoloseg .pt), this model, or None."""
        if weights:
            model = checkpoint_model(read_checkpoint(weights)).float()
            model.pt_path = str(weights)
            return model
        return self.model

    def _model_name(self) -> str:
        """The model as Ultralytics' `model` arg records it: the checkpoint, or the yaml/name it was built from."""
        if self.weights:
            return str(self.weights)
        return str(self.cfg.get("yaml_file", "custom.yaml"))

    def _resume_trainer(
        self, trainer_class: type, resume: bool | str | Path, det: Any, seg: Any, overrides: dict[str, Any]
    ):
        """A trainer that continues `<run>/weights/last.pt` in its own run folder (a 0.1.0 last.pt is upgraded)."""
        if isinstance(resume, bool):
            raise UserInputError("--resume: give the interrupted run's weights/last.pt (or its run directory)")
        path = Path(resume)
        if path.is_dir():
            path = path / "weights" / "last.pt"
        ckpt = read_checkpoint(path, flag="--resume")
        legacy = is_legacy_resumable(ckpt)
        if not legacy and not ckpt.get("optimizer"):
            raise UserInputError(f"--resume: {path} has no resumable state (the run finished, or it is not last.pt)")
        if not isinstance(checkpoint_model(ckpt), DetSegModel):
            raise UserInputError(f"--resume: {path} is not a yoloseg checkpoint")
        data = on_rank_zero(lambda: self._prepare_resume(path, ckpt, legacy, det, seg))
        if data is not None:
            overrides["data"] = data
        ultralytics_args(overrides, "train")  # one-line errors for bad values
        options = {**overrides, "resume": str(path), "model": str(path)}
        with ultralytics_warnings("Resume ignores") as ignored:  # Ultralytics' own rule of what a resume may change
            trainer = _new_trainer(trainer_class, options, self.callbacks)
        if ignored:
            keys = ignored[0].removeprefix("Resume ignores ").split(", using")[0]
            raise UserInputError(f"--resume keeps the run's own {keys}; start a new run to change them")
        console.print(f"Resuming {trainer.save_dir} from {path}")
        return trainer

    @staticmethod
    def _prepare_resume(path: Path, ckpt: dict, legacy: bool, det: Any, seg: Any) -> str | None:
        """Upgrade a 0.1.0 last.pt, or write a pair yaml with new dataset locations; returns that yaml, if new."""
        run = path.parent.parent
        if legacy:
            if path.parent.name != "weights":
                raise UserInputError(f"--resume: {path} must stay at <run>/weights/last.pt to be resumed")
            options = ckpt["options"]
            write_pair(run / PAIR_FILE, det or options["det"], seg or options["seg"], options)
            upgrade_legacy_resumable(path, ckpt, run / PAIR_FILE)
            console.print(
                f"Upgraded {path} (yoloseg {ckpt.get('version')}) to resume it; the original is last-0.1.0.pt"
            )
        elif det is not None or seg is not None:  # new data locations: a new pair yaml with the run's options
            args = ckpt["train_args"]
            previous = read_pair(args["data"]) if Path(args["data"]).is_file() else {}
            pair = {**previous, **{k: v for k, v in (("det", det), ("seg", seg)) if v is not None}}
            run = Path(args.get("save_dir") or run)  # the run that wrote the file: the only folder resume writes
            return str(write_pair(run / PAIR_FILE, pair["det"], pair["seg"], pair))
        return None

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
        from yoloseghw.engine.predictor import input_size
        from yoloseghw.engine.validator import DetSegValidator

        if det is None and seg is None:
            raise UserInputError("give --det and/or --seg to validate on")
        det_data = load_data_config(det, "det") if det else None
        seg_data = load_data_config(seg, "seg") if seg else None
        self._check_names(det_data, seg_data)
        backend = self._backend(device, threads)
        imgsz = input_size(backend, imgsz or self._train_imgsz())
        batch = backend.batch or batch
        args = ultralytics_args({**overrides, "imgsz": imgsz, "batch": batch, "device": device, "plots": False}, "val")
        validator = DetSegValidator(args, det_data, seg_data, backend.stride, Path(save_dir or "."), backend.dynamic)
        metrics = validator.run(backend)
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
        semantic: str | None = None,
    ) -> list[DetSegResult] | Iterator[DetSegResult]:
        """Detect and segment an image, folder, glob, video, camera index or in-memory image(s).

        Returns one DetSegResult per image or frame (`.boxes`, `.semantic_mask`, `.plot()`), or a generator with
        `stream=True`. With any `save*` option the outputs go to a new `project/name` folder (`self.save_dir`).
        No source: an example image shipped with Ultralytics. `semantic`: for a PyTorch model, the semantic output
        kind to compute, as an export of that kind would (default: the export default; an ONNX file has its own).
        """
        from yoloseghw.engine.predictor import DetSegPredictor, PredictionWriter

        if not 0 <= conf <= 1 or not 0 <= iou <= 1 or not 0 <= alpha <= 1:
            raise UserInputError(f"--conf, --iou and --alpha must be between 0 and 1 (got {conf}, {iou}, {alpha})")
        if max_det < 1:
            raise UserInputError(f"--max-det must be at least 1, got {max_det}")
        backend = self._backend(device, threads)
        imgsz = imgsz or self._train_imgsz()
        predictor = DetSegPredictor(backend, imgsz, conf, iou, class_ids(classes, backend.det_names), max_det, semantic)
        writer = None
        saving = save or save_mask or save_txt or save_json
        if saving:
            check_output_folder(project, "--project")
        src = open_source(source)  # a bad source stops here, before any output folder exists
        if saving:
            self.save_dir = increment_path(Path(project) / name, exist_ok=False, mkdir=True)
            writer = PredictionWriter(self.save_dir, save, save_mask, save_txt, save_conf, save_json, alpha)
        self.predictor = predictor
        results = predictor.stream(src, writer, progress=verbose)
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
        semantic: str = DEFAULT_SEMANTIC_OUTPUT,
        device: str = "cpu",
    ) -> Path:
        """Export to ONNX beside the checkpoint (best.pt -> best.onnx): outputs `detections` and `semantic`.

        `semantic` is the semantic output kind (nn/semantic_output.py): `classmap4` (default) bakes the argmax into
        the graph at stride 4 (uint8 [B,H/4,W/4]); `classmap` at the input size; `logits8` gives the head's float
        logits [B,nc,H/8,W/8]; predict and val resize any of them to the image.
        """
        from yoloseghw.engine.exporter import export_onnx

        if format.lower() != "onnx":
            raise UserInputError(f"--format: only onnx is supported, got '{format}'")
        model = self._require_model()
        check_output_folder(self.weights.parent, "export (beside --weights)")
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

    def compress(
        self,
        method: str,
        *,
        det: str | Path | None = None,
        seg: str | Path | None = None,
        calib: int = 200,
        calib_method: str = "minmax",
        keep_float: tuple[str, ...] = (),
        imgsz: int | None = None,
        ratio: float = 0.3,
        criterion: str = "l2",
        steps: int = 1,
        finetune_epochs: int = 10,
        semantic: str = DEFAULT_SEMANTIC_OUTPUT,
        force: bool = False,
        **train_options: Any,
    ) -> Path:
        """A compressed variant, written beside the checkpoint (best.pt -> best-prune30.pt / best-int8.onnx /
        best-fp16.onnx); an existing output file is replaced only with `force`.

        `prune`: structured pruning removing the share `ratio` of GFLOPs in `steps` rounds (channel importance by
        `criterion`), each round fine-tuned for `finetune_epochs / steps` epochs on `det` + `seg` when given (with
        `train_options`, e.g. batch, schedule). `quantize`: INT8 (ONNX Runtime static QDQ), calibrated on `calib`
        training images of both datasets with `calib_method`; `keep_float` names more nodes kept in float. `fp16`: half
        the size. The ONNX variants are static-shape, batch 1, at `imgsz` (default: the training size), with the
        semantic output kind `semantic` (see `export`).
        """
        from yoloseghw.compress.quantize import calibration_images, check_calib_method, convert_fp16, quantize_int8
        from yoloseghw.engine.exporter import export_onnx

        if method not in COMPRESS_METHODS:
            raise UserInputError(f"--method: unknown method '{method}' (methods: {', '.join(COMPRESS_METHODS)})")
        model = self._require_model()
        suffix = f"prune{round(ratio * 100)}.pt" if method == "prune" else f"{COMPRESS_METHODS[method]}.onnx"
        out = self.weights.with_name(f"{self.weights.stem}-{suffix}")
        if out.exists() and not force:
            raise UserInputError(f"{out} exists; give --force to replace it")
        if method == "prune":
            return self._prune(out, det, seg, ratio, criterion, steps, finetune_epochs, imgsz, train_options)
        images = []
        if method == "quantize":
            if det is None or seg is None:
                raise UserInputError("--method quantize calibrates on both datasets: give --det and --seg")
            check_calib_method(calib_method)
            images = calibration_images(load_data_config(det, "det"), load_data_config(seg, "seg"), calib)
        imgsz = round_to_stride(imgsz or self._train_imgsz(), model.input_stride)
        with tempfile.TemporaryDirectory() as tmp:
            with ultralytics_log(logging.WARNING):  # the FP32 export is a temporary step: no export report
                fp32 = export_onnx(model, Path(tmp) / self.weights.name, imgsz=imgsz, semantic=semantic)
            if method == "quantize":
                return quantize_int8(fp32, out, images, calib_method, keep_float)
            return convert_fp16(fp32, out)

    def _prune(
        self,
        out: Path,
        det: Any,
        seg: Any,
        ratio: float,
        criterion: str,
        steps: int,
        finetune_epochs: int,
        imgsz: int | None,
        train_options: dict[str, Any],
    ) -> Path:
        """Prune in `steps` rounds to `ratio` of the GFLOPs removed, fine-tuning after each round when data is given;
        the result is a checkpoint of the pruned module itself (never rebuilt from yaml)."""
        from ultralytics.utils.torch_utils import get_flops

        from yoloseghw.compress.prune import check_options, prune

        check_options(ratio, criterion)
        if steps < 1 or finetune_epochs < 0:
            raise UserInputError(
                f"--steps must be at least 1 and --finetune-epochs at least 0 (got {steps}, {finetune_epochs})"
            )
        if (det is None) != (seg is None):
            raise UserInputError("give both --det and --seg to fine-tune the pruned model (or neither to prune only)")
        if det is not None:
            load_data_config(det, "det"), load_data_config(seg, "seg")
        imgsz = imgsz or self._train_imgsz()
        model = deepcopy(self._require_model())
        base = flops = get_flops(model, imgsz)
        params = sum(p.numel() for p in model.parameters())
        for k in range(1, steps + 1):
            target = base * (1 - ratio * k / steps)  # GFLOPs after round k
            if flops > target:
                flops = prune(model, 1 - target / flops, criterion, imgsz)
            ckpt = {**self.ckpt, "model": deepcopy(model).half(), "ema": None, "optimizer": None, "train_metrics": {}}
            ckpt.pop("train_results", None)
            write_checkpoint(out, {**ckpt, "pruning": {"ratio": ratio, "criterion": criterion, "round": k}})
            if det is not None and finetune_epochs:
                epochs = max(finetune_epochs // steps, 1)
                tuned = YOLOSeg(out)
                tuned.train(det, seg, project=out.parent, name=f"{out.stem}-finetune", epochs=epochs, **train_options)
                shutil.copyfile(tuned.weights, out)
                model = deepcopy(tuned.model)
        console.print(
            f"Pruned {self.weights.name}: GFLOPs@{imgsz} {base:.2f} -> {flops:.2f} ({1 - flops / base:.1%} "
            f"removed, asked {ratio:.0%}), parameters {params:,} -> {sum(p.numel() for p in model.parameters()):,}"
        )
        if det is None or not finetune_epochs:
            warn(
                f"{out.name} is not fine-tuned: its accuracy drops until it is "
                f"(yoloseg train --model {out} --det DET.yaml --seg SEG.yaml)"
            )
        return out

    def bench(
        self,
        det: str | Path,
        seg: str | Path,
        *,
        variants: tuple[str | Path, ...] = (),
        threads: int = 2,
        batch: int = 8,
        runs: int = 100,
        rounds: int = 10,
        baseline: bool = False,
        project: str | Path = "runs/yoloseg",
        name: str = "bench",
    ) -> dict[str, Any]:
        """Time and validate this checkpoint against its compressed variants (those beside it and `variants`), on
        both val sets; writes bench.json, bench.csv and bench.png to a new `project/name` folder (`self.save_dir`)."""
        from yoloseghw.compress.bench import run_bench

        self._require_model()
        check_output_folder(project, "--project")
        self.save_dir = increment_path(Path(project) / name, exist_ok=False, sep="-")
        kwargs = {"threads": threads, "batch": batch, "runs": runs, "rounds": rounds, "baseline": baseline}
        return run_bench(self.weights, Path(det), Path(seg), self.save_dir, given=tuple(map(Path, variants)), **kwargs)

    def compare_with(
        self, other: str | Path, source: Any, conf: float = 0.25, threads: int | None = None
    ) -> dict[str, Any]:
        """Predict `source` with this model and with `other` (e.g. its ONNX export) at the other's image size and
        report how well they agree (see `parity.compare_predictions`)."""
        from yoloseghw.engine.parity import compare_predictions

        twin = YOLOSeg(other)
        imgsz = twin._train_imgsz()
        kind = twin.onnx.semantic_output.name if twin.onnx else None  # PyTorch computes the ONNX file's output kind
        mine = self.predict(source, imgsz=imgsz, conf=conf, threads=threads, semantic=kind)
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
    """Ultralytics' args namespace (its defaults + `overrides`); an unknown key or bad value is a one-line error."""
    try:
        return get_cfg(DEFAULT_CFG, {**overrides, "mode": mode, "task": "detect"})
    except (TypeError, ValueError, SyntaxError, KeyError) as e:
        raise UserInputError(ultralytics_message(e)) from None


def ultralytics_message(error: BaseException) -> str:
    """Ultralytics' own error text on one line ("'x' is not a valid YOLO argument. Similar arguments are ...")."""
    text = " ".join(str(error).replace("❌", "").split())
    return text.split(" See ")[0].split(" Arguments received")[0].split(" Request support")[0]


def _new_trainer(cls: type, overrides: dict[str, Any], callbacks: dict, save_dir: Path | None = None):
    """Build the trainer; an option Ultralytics rejects there is a one-line error, and a new empty run is removed."""
    try:
        with ultralytics_log(logging.WARNING):  # its warnings (e.g. options a resume ignores), no setup chatter
            trainer = cls(overrides=overrides, _callbacks=callbacks)
        if trainer.args.amp == "bf16" and trainer.device.type != "cuda":  # Ultralytics' autocast would raise later
            raise UserInputError(f"amp=bf16 needs a CUDA device with bfloat16 support (training on {trainer.device})")
        return trainer
    except (UserInputError, TypeError, ValueError, SyntaxError, KeyError, FileNotFoundError, AssertionError) as e:
        if save_dir is not None and RANK in {-1, 0}:
            shutil.rmtree(save_dir, ignore_errors=True)
        if isinstance(e, UserInputError):
            raise
        raise UserInputError(ultralytics_message(e)) from None


def _train_or_clean_up(trainer) -> None:
    """Train; if bad input stops a new run before its first checkpoint, remove the (empty) run folder it made."""
    try:
        with ultralytics_log(logging.INFO):  # Ultralytics' epoch progress bars and log (setup stays quiet)
            trainer.train()
    except (UserInputError, AssertionError, ValueError, NotImplementedError) as e:  # NotImplemented: --optimizer
        if not trainer.resume and not trainer.last.exists() and RANK in {-1, 0}:
            shutil.rmtree(trainer.save_dir, ignore_errors=True)
        if isinstance(e, UserInputError):
            raise
        raise UserInputError(ultralytics_message(e)) from None
    except KeyboardInterrupt:
        if trainer.last.exists():
            console.print(f"Interrupted. Continue with: yoloseg train --resume {trainer.save_dir}")
        raise


def _new_run_folder(run: Path, options: dict[str, Any]) -> tuple[Path, Path]:
    """A new run folder (`run`, or run-2, run-3, ... when taken) holding the run's pair yaml."""
    save_dir = increment_path(run, exist_ok=False, sep="-", mkdir=True)
    return save_dir, write_pair(save_dir / PAIR_FILE, options["det"], options["seg"], options)


def make_demo_if_missing(root: Path) -> tuple[Path, Path]:
    """The demo pair under `root`, generated on first use."""
    det, seg = root / "demo-det" / "demo-det.yaml", root / "demo-seg" / "demo-seg.yaml"
    if not (det.is_file() and seg.is_file()):
        console.print(f"Generating the built-in demo datasets in {root} ...")
        det, seg = make_demo(root)
    return det, seg
