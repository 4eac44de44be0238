"""YOLOSeg: the Python facade, mirroring Ultralytics' `YOLO` (train, val, predict, export, info, compress, bench)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ultralytics.utils import RANK, callbacks
from ultralytics.utils.files import increment_path

from yoloseghw.compress.lowrank import MAX_ERROR, MIN_GAIN, RANK_SHARE
from yoloseghw.data.dataset import load_data_config
from yoloseghw.data.inputs import sample_images
from yoloseghw.data.pair import PAIR_FILE
from yoloseghw.data.sources import open_source
from yoloseghw.engine import runs
from yoloseghw.engine.checkpoint import (
    checkpoint_metrics,
    checkpoint_model,
    load_model,
    read_checkpoint,
    trained_epochs,
)
from yoloseghw.engine.distributed import join_process_group, on_rank_zero
from yoloseghw.nn.backends import ExportedBackend, OnnxBackend, TorchBackend, torch_device
from yoloseghw.nn.link import link_entry, parse_link
from yoloseghw.nn.openvino import float_parts_entry, is_openvino
from yoloseghw.nn.semantic_head import seg_head_class, seg_head_name
from yoloseghw.nn.tasks import DetSegModel, load_model_cfg
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import check_output_folder, check_run_name, write_errors
from yoloseghw.utils.options import DEFAULTS as OPTION_DEFAULTS
from yoloseghw.utils.options import (
    PROJECT,
    SINGLE_FREEZE,
    check_imgsz,
    check_options,
    check_training_args,
    freeze_layers,
    layer_count,
    round_to_stride,
    ultralytics_args,
)
from yoloseghw.utils.report import print_val_report
from yoloseghw.utils.ultralytics import ultralytics_log

if TYPE_CHECKING:
    from yoloseghw.compress.openvino_int8 import AccuracyControl
    from yoloseghw.engine.results import DetSegResult

METRIC_PREFIXES = ("metrics/", "fitness")
DEFAULT_MODEL = "yolo26n"  # the model a YOLOSeg builds when none is named


class YOLOSeg:
    """One YOLO network for detection + semantic segmentation, as Ultralytics' `YOLO` is for one task.

    Attributes:
        model: the DetSegModel of a checkpoint (None for an ONNX file or a model not trained yet).
        onnx: the ONNX Runtime backend of an exported file (None otherwise).
        ckpt: the checkpoint dict the model came from ({} for a new model).
        weights: the file the model came from (None for a new model).
        cfg: the model yaml dict a new run builds from.
        trainer: the trainer of the last `train` call.
        save_dir: the output folder of the last `predict` (with saving) or `bench` call.
    """

    def __init__(self, model: str | Path | None = None):
        """Build an untrained model from a stock detection name or yaml, or load a checkpoint or an ONNX export.

        Args:
            model: a stock Ultralytics detection model name (any family and scale n/s/m/l/x: `yolo26n`, `yolo11s`,
                ...), a detection model yaml, a yoloseg checkpoint (`.pt`) or a yoloseg ONNX export (`.onnx`).
                None: `yolo26n`, or for `train(weights=...)` the architecture of those weights.

        Raises:
            UserInputError: an unknown model name, a yaml that is not a detection model, or a file that is not a
                yoloseg checkpoint or export.
        """
        self.model: DetSegModel | None = None
        self.exported: ExportedBackend | None = None  # an ONNX Runtime or OpenVINO backend of an exported file
        self.ckpt: dict[str, Any] = {}
        self.weights: Path | None = None
        self._fused: tuple[DetSegModel, str, TorchBackend] | None = None
        self.callbacks = callbacks.get_default_callbacks()
        self.trainer = None
        if model is None:  # built from the weights given to `train`, or the default model
            self.cfg = None
        elif str(model).endswith((".pt", ".pth")):
            self.model, self.ckpt = load_model(model)
            self.cfg, self.weights = self.model.yaml, Path(model)
        elif isinstance(model, (str, Path)) and (str(model).endswith(".onnx") or is_openvino(model)):
            self.exported, self.weights, self.cfg = exported_backend(model), Path(model), None
        else:
            self.cfg = load_model_cfg(model)

    # ------------------------------------------------------------------ info
    @property
    def det_names(self) -> dict[int, str]:
        """Detection class names by id."""
        return self.exported.det_names if self.exported else self._require_model().det_names

    @property
    def seg_names(self) -> dict[int, str]:
        """Semantic class names by id."""
        return self.exported.seg_names if self.exported else self._require_model().seg_names

    def _train_imgsz(self) -> int:
        """The image size the checkpoint was trained at, or the exported model was exported at (640 when unknown)."""
        if self.exported:
            return int(self.exported.metadata["imgsz"][0])
        return int(self.ckpt.get("train_args", {}).get("imgsz", 640))

    def _require_model(self) -> DetSegModel:
        if self.exported is not None:
            raise UserInputError(
                f"--weights: {self.weights} is an exported model; this needs the PyTorch checkpoint (.pt)"
            )
        if self.model is None:
            raise UserInputError("this YOLOSeg has no trained weights yet; train it or load a .pt checkpoint")
        return self.model

    def backend(self, device: str = "", threads: int | None = None) -> TorchBackend | ExportedBackend:
        """The inference backend predict and val run: a fused copy of the PyTorch model, or the ONNX Runtime session
        or OpenVINO model of an exported file.

        Args:
            device: Ultralytics' device string (`cpu`, `0`, ...; empty: the best available); OpenVINO: cpu, gpu, npu.
            threads: ONNX Runtime intra-op / OpenVINO inference threads (None: the runtime's choice).

        Returns:
            A backend that maps a letterboxed float batch [B,3,H,W] to (detections, semantic output); one is kept per
            model and device (PyTorch) or per thread count and device (exported files).
        """
        if self.exported is None:
            model = self._require_model()
            if self._fused is None or self._fused[:2] != (model, str(device)):
                self._fused = (model, str(device), TorchBackend(model, device, fuse=True))
            return self._fused[2]
        if (threads, str(device)) != (self.exported.threads, self.exported.device_request):
            self.exported = exported_backend(self.weights, device, threads)
        return self.exported

    def info(self) -> dict[str, Any]:
        """A summary of the model.

        Returns:
            For a checkpoint: architecture, semantic head, both class lists, parameters, GFLOPs at the training size,
            epochs trained, validation metrics, version and date. For an ONNX file: architecture, semantic head, both
            class lists, input shape, detection and semantic output kinds, precision and providers. Both show the
            class link (`--link`) of a model trained with one.
        """
        from ultralytics.utils.torch_utils import get_flops, get_num_params

        if self.exported:
            meta = self.exported.metadata
            return {
                "architecture": meta["family"],
                "semantic head": meta["seg_head"],
                "det_names": self.exported.det_names,
                "seg_names": self.exported.seg_names,
                "input": "dynamic" if self.exported.dynamic else f"{(self.exported.batch, 3, *self.exported.imgsz)}",
                "detections": "end-to-end (no NMS)" if self.exported.end2end else "raw (NMS after the network)",
                "semantic output": meta["semantic_output"].name,
                "precision": meta["precision"],
                **float_parts_entry(self.exported),
                **({"calibration": meta["calibration"]} if meta["calibration"] else {}),
                **({"link": meta["link"]} if meta["link"] else {}),
                "providers": ", ".join(self.exported.providers),
            }
        model = self._require_model()
        imgsz = self._train_imgsz()
        return {
            "architecture": Path(str(model.yaml.get("yaml_file", "custom"))).stem,
            "semantic head": seg_head_name(model.semantic),
            "det_names": dict(model.det_names),
            "seg_names": dict(model.seg_names),
            **link_entry(model),
            "parameters": get_num_params(model),
            f"GFLOPs@{imgsz}": round(get_flops(model, imgsz), 2),
            "epochs trained": trained_epochs(self.ckpt),
            "metrics": {k: v for k, v in checkpoint_metrics(self.ckpt).items() if k.startswith(METRIC_PREFIXES)},
            "version": self.ckpt.get("version"),
            "date": self.ckpt.get("date"),
        }

    # ------------------------------------------------------------------ callbacks
    def add_callback(self, event: str, fn: Callable) -> None:
        """Add `fn(trainer)` to an Ultralytics callback event, as `YOLO.add_callback` does.

        Args:
            event: an Ultralytics event ('on_train_epoch_end', 'on_fit_epoch_end', ...).
            fn: called with the trainer (or validator) at that event.

        Raises:
            UserInputError: an unknown event.
        """
        if event not in self.callbacks:
            raise UserInputError(f"unknown callback event '{event}' (events: {', '.join(self.callbacks)})")
        self.callbacks[event].append(fn)

    def clear_callback(self, event: str) -> None:
        """Remove every callback of `event`."""
        self.callbacks[event] = []

    # ------------------------------------------------------------------ train
    def train(
        self,
        det: str | Path | None = None,
        seg: str | Path | None = None,
        *,
        data: str | Path | None = None,
        weights: str | Path | None = None,
        val_det: str | Path | None = None,
        val_seg: str | Path | None = None,
        resume: bool | str | Path = False,
        project: str | Path = PROJECT,
        name: str = "train",
        trainer: type | None = None,
        seg_head: str | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Train on a box-only dataset and a mask-only dataset on Ultralytics' trainer.

        With no data at all, a built-in synthetic demo pair is generated and used. Training runs on
        `DetSegTrainer` (or the subclass `trainer`, as in Ultralytics' `YOLO.train`) with the callbacks added by
        `add_callback`, into a new run folder `project/name` (`name-2`, ... when taken).

        Args:
            det: the detection dataset yaml (boxes only).
            seg: the semantic dataset yaml (masks only). Only one of `det`/`seg` with a yoloseg checkpoint
                fine-tunes that task alone (schedule `single`).
            data: a pair yaml (det, seg and yoloseg's options) instead of `det` and `seg`.
            weights: a detection or yoloseg `.pt` whose tensors initialise the matching layers of a model built
                from this model's yaml (a YOLOSeg made without a model: the weights' own architecture). With only
                `seg`, a stock Ultralytics detector learns segmentation (schedule `single`).
            val_det: with only `seg`: the detection dataset yaml whose val split measures what detection keeps
                (default: the checkpoint's own, from its run's pair.yaml).
            val_seg: with only `det`: the semantic dataset yaml whose val split measures what segmentation keeps.
            resume: an interrupted run's folder or `weights/last.pt`, continued where it stopped.
            project: the parent folder of the run.
            name: the run's folder name.
            trainer: a DetSegTrainer subclass to train with.
            seg_head: the semantic head of a model built from its yaml (`conv` or `separable`).
            **overrides: yoloseg's options (schedule, ratio, det_epochs, order, lr_scale, seg_weight, ... as
                `yoloseg train --help` lists them) and any Ultralytics training option (epochs, imgsz, batch,
                device, lr0, cos_lr, freeze, amp, patience, ...).

        Returns:
            best.pt's validation: {"metrics": {...}, "classes": {"det": [...], "seg": [...]}}; {} on DDP ranks
            other than 0.

        Raises:
            UserInputError: bad input (data, options, weights, a run folder that cannot be written); nothing is left
                behind.
        """
        from yoloseghw.engine.trainer import DetSegTrainer

        trainer_class = trainer or DetSegTrainer
        if self.exported:
            raise UserInputError(f"{self.weights} is an ONNX model and cannot be trained; train from the .pt file")
        options = {k: overrides.pop(k) for k in list(overrides) if k in OPTION_DEFAULTS}
        ckpt = read_checkpoint(weights) if weights and not resume else self.ckpt
        cfg = self.cfg
        if cfg is None:  # no model named: the weights' own architecture, else the default
            cfg = deepcopy(checkpoint_model(ckpt).yaml) if weights else load_model_cfg(DEFAULT_MODEL)
        if seg_head is not None:
            cfg = {**cfg, "seg_head": seg_head}
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
            overrides["freeze"] = freeze_layers(overrides["freeze"], None if resume else cfg)
        held = ExitStack()  # the run folder's lock, held until training ends
        if not resume and not Path(project).exists():  # a project folder this run makes goes if the run fails
            held.callback(_remove_if_empty, Path(project))
        with _released_on_error(held):  # a failed set-up releases the lock and removes a new project folder
            if resume:
                if options:
                    raise UserInputError(
                        f"--resume keeps the run's own {', '.join(sorted(options))}; start a new run to change them"
                    )
                held.enter_context(runs.RunLock(runs.resume_folder(resume)[0]))  # before anything is written
                trainer = runs.resume_trainer(trainer_class, resume, det, seg, overrides, self.callbacks)
            else:
                check_run_name(name)
                pair, overrides = runs.training_pair(det, seg, data, ckpt, options, overrides, val_det, val_seg)
                if pair.get("schedule") == "single" and "freeze" not in overrides:
                    overrides["freeze"] = freeze_layers(SINGLE_FREEZE, cfg)
                if (
                    self.ckpt and "imgsz" not in overrides
                ):  # fine-tuning keeps the checkpoint's size, as Ultralytics does
                    overrides["imgsz"] = self._train_imgsz()
                args = ultralytics_args({**overrides, "data": PAIR_FILE}, "train")
                opts = check_options(pair, args.epochs)
                overrides["imgsz"] = check_training_args(args, layer_count(cfg))
                check_output_folder(project, "--project")
                if args.rect and opts["schedule"] == "joint":
                    raise UserInputError(
                        "rect=True cannot train the joint schedule (a joint step needs one image size)"
                    )
                # the trainer loads both again from pair.yaml; checking here first means bad data stops the run before a
                # run folder exists and before Ultralytics' integrations (TensorBoard, MLflow, ...) start a run
                det_data, seg_data = load_data_config(opts["det"], "det"), load_data_config(opts["seg"], "seg")
                parse_link(opts["link"], det_data["names"], seg_data["names"])  # an unknown name: one line, now
                source = self._source_model(weights, ckpt)
                save_dir, pair_yaml = on_rank_zero(lambda: runs.new_run_folder(Path(project) / name, opts))
                held.enter_context(runs.RunLock(save_dir))
                model_name = str(self.weights or cfg.get("yaml_file", "custom.yaml"))  # as Ultralytics' `model` arg
                overrides = {**overrides, "data": str(pair_yaml), "save_dir": str(save_dir), "model": model_name}
                trainer = runs.new_trainer(trainer_class, overrides, self.callbacks, save_dir)
                # --weights: a model built from --model takes what fits (Ultralytics' BaseModel.load); else this
                # checkpoint's own module is fine-tuned, or a new model starts from scratch
                trainer.model = trainer.get_model(cfg=cfg, weights=source, transfer=bool(weights))
        self.trainer = trainer
        with held:
            runs.train_or_clean_up(trainer)
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

    def _source_model(self, weights: str | Path | None, ckpt: dict[str, Any]) -> Any:
        """What the new run starts from: the model of `weights` (any Ultralytics detection or yoloseg .pt, read
        already as `ckpt`), this model, or None."""
        if weights:
            model = checkpoint_model(ckpt).float()
            model.pt_path = str(weights)
            return model
        return self.model

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
        """Evaluate on a detection val set and/or a semantic val set.

        Args:
            det: a detection dataset yaml; its val split gives mAP50-95, mAP50, precision and recall.
            seg: a semantic dataset yaml; its val split gives mIoU and pixel accuracy.
            imgsz: the image size (default: the training size; a static ONNX export's own size).
            batch: the batch size (a static ONNX export: its own).
            device: Ultralytics' device string.
            threads: ONNX Runtime intra-op threads.
            save_dir: where Ultralytics' validators may write.
            verbose: print the per-class tables.
            **overrides: Ultralytics validation options (conf, iou, ...).

        Returns:
            {"metrics": {metric key: value, "fitness": ...}, "classes": {"det": [per-class rows], "seg": [...]}}.

        Raises:
            UserInputError: no val set, a bad dataset, or class counts that differ from the model's.
        """
        from yoloseghw.engine.predictor import input_size
        from yoloseghw.engine.validator import DetSegValidator

        if det is None and seg is None:
            raise UserInputError("give --det and/or --seg to validate on")
        if batch < 1:
            raise UserInputError(f"--batch must be at least 1, got {batch}")
        check_imgsz(imgsz)
        det_data = load_data_config(det, "det") if det else None
        seg_data = load_data_config(seg, "seg") if seg else None
        self._check_names(det_data, seg_data)
        backend = self.backend(device, threads)
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
        project: str | Path = PROJECT,
        name: str = "predict",
        verbose: bool = False,
        semantic: str | None = None,
    ) -> list[DetSegResult] | Iterator[DetSegResult]:
        """Detect and segment an image, folder, glob, video, camera index or in-memory image(s).

        Args:
            source: what to predict (None: an example image shipped with Ultralytics).
            imgsz: the inference size (default: the training or export size).
            conf: the detection confidence threshold.
            iou: the NMS IoU threshold.
            classes: keep only these detection classes (names or ids, 'car,2').
            max_det: the most boxes per image.
            device: Ultralytics' device string (ONNX: CPU, or CUDA/TensorRT where onnxruntime has them).
            threads: ONNX Runtime intra-op threads.
            stream: return a generator instead of a list.
            save: save annotated images (videos as .mp4) to a new `project/name` folder (`self.save_dir`).
            save_mask: save PNG class maps at the original size (255 = ignore).
            save_txt: save YOLO txt boxes; `save_conf` adds the confidence.
            save_conf: see `save_txt`.
            save_json: write predictions.jsonl.
            alpha: the opacity of the semantic overlay.
            project: the parent folder of prediction runs.
            name: the prediction run's folder name.
            verbose: a progress bar (folders, videos) or a line per image.
            semantic: for a PyTorch model, the semantic output kind to compute, as an export of that kind would
                (default: the export default; an ONNX file has its own).

        Returns:
            One DetSegResult per image or frame (`.boxes`, `.semantic_mask`, `.plot()`), as a list or a generator.

        Raises:
            UserInputError: a bad source or option, or an output folder that cannot be written.
        """
        from yoloseghw.engine.predictor import DetSegPredictor, PredictionWriter

        if not 0 <= conf <= 1 or not 0 <= iou <= 1 or not 0 <= alpha <= 1:
            raise UserInputError(f"--conf, --iou and --alpha must be between 0 and 1 (got {conf}, {iou}, {alpha})")
        if max_det < 1:
            raise UserInputError(f"--max-det must be at least 1, got {max_det}")
        check_imgsz(imgsz)
        backend = self.backend(device, threads)
        imgsz = imgsz or self._train_imgsz()
        predictor = DetSegPredictor(backend, imgsz, conf, iou, class_ids(classes, backend.det_names), max_det, semantic)
        writer = None
        saving = save or save_mask or save_txt or save_json
        if saving:
            check_run_name(name)
            check_output_folder(project, "--project")
        src = open_source(source)  # a bad source stops here, before any output folder exists
        if saving:
            made = () if Path(project).exists() else (Path(project),)
            with write_errors(project):
                self.save_dir = increment_path(Path(project) / name, exist_ok=False, mkdir=True)
            writer = PredictionWriter(self.save_dir, save, save_mask, save_txt, save_conf, save_json, alpha, made)
        self.predictor = predictor
        results = predictor.stream(src, writer, progress=verbose)
        return results if stream else list(results)

    # ------------------------------------------------------------------ export
    def export(self, format: str = "onnx", force: bool = False, **options: Any) -> Path:
        """Export beside the checkpoint (best.pt -> best.onnx or best_openvino_model/), with outputs `detections` and
        `semantic` and both class lists in its metadata.

        Args:
            format: `onnx` (best.onnx) or `openvino` (best_openvino_model/, made from the ONNX graph).
            force: replace an existing export of the same name.
            **options: the fields of `ExportOptions` (engine/exporter.py): imgsz, dynamic, simplify, opset, batch,
                semantic (the output kind: `classmap4` by default, the argmax in the graph at stride 4), device.

        Returns:
            The exported file's path.

        Raises:
            UserInputError: an unknown format or option, a folder that cannot be written, or an existing export
                without `force`.
        """
        from yoloseghw.engine.exporter import FORMATS, ExportOptions, export_onnx, export_openvino, export_path

        fmt = format.lower()
        if fmt not in FORMATS:
            raise UserInputError(f"--format: expected {' or '.join(FORMATS)}, got '{format}'")
        model = self._require_model()
        check_output_folder(self.weights.parent, "export (beside --weights)")
        settings = ExportOptions.of(options)  # bad options first: they are what the user must fix
        out = export_path(self.weights, fmt)
        if out.exists() and not force:
            raise UserInputError(f"{out} exists; give --force to replace it")
        imgsz = round_to_stride(settings.imgsz or self._train_imgsz(), model.input_stride)
        write = export_openvino if fmt == "openvino" else export_onnx
        return write(model, self.weights, ExportOptions.of({**options, "imgsz": imgsz}))

    # ------------------------------------------------------------------ compress
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
        semantic: str | None = None,
        runtime: str = "onnxruntime",
        accuracy_aware: bool = False,
        max_drop: float = 0.02,
        float_precision: str = "f32",
        rank: float = RANK_SHARE,
        max_error: float = MAX_ERROR,
        min_gain: float = MIN_GAIN,
        force: bool = False,
        **train_options: Any,
    ) -> Path:
        """Write a compressed variant beside the checkpoint: best-prune30.pt, best-lowrank50.pt, best-int8.onnx,
        best-int8_openvino_model/ (best-int8-bf16_openvino_model/ with `float_precision` bf16) or best-fp16.onnx.

        Args:
            method: `prune` (structured pruning), `lowrank` (low-rank factorization), `quantize` (INT8: ONNX
                Runtime static QDQ, or NNCF for OpenVINO) or `fp16`.
            det: the detection dataset yaml (prune, lowrank: fine-tuning; quantize: calibration).
            seg: the semantic dataset yaml (prune, lowrank: fine-tuning; quantize: calibration).
            calib: quantize: calibration images, half from each dataset's train split.
            calib_method: quantize: `minmax`, `entropy` or `percentile`.
            keep_float: quantize: more node names kept in float besides the stem and the tails.
            imgsz: the ONNX input size (static, batch 1; default: the training size); prune: the GFLOPs size;
                lowrank: the size its layers are timed at.
            ratio: prune: the share of GFLOPs to remove (the nearest achievable one).
            criterion: prune: channel importance, `l1`, `l2` or `bn`.
            steps: prune: rounds, each followed by `finetune_epochs / steps` epochs of fine-tuning.
            finetune_epochs: prune, lowrank: fine-tuning epochs in all (with `det` and `seg`).
            semantic: quantize, fp16: the semantic output kind (see `export`).
            runtime: quantize: `onnxruntime` (an INT8 ONNX file) or `openvino` (an NNCF INT8 OpenVINO model).
            accuracy_aware: quantize for OpenVINO: NNCF's accuracy-controlled mode, which returns layers to float
                until the INT8 model keeps at least 1 - `max_drop` of FP32's mAP50-95 and of its mIoU (val sets).
            max_drop: accuracy_aware: the largest share of each task's FP32 metric the INT8 model may lose.
            float_precision: quantize for OpenVINO: what the INT8 model's float parts (tails, attention) run in,
                `f32` or `bf16` (on a CPU with bfloat16; f32 on others). Stored in the model's metadata.
            rank: lowrank: the share of each layer's rank to keep.
            max_error: lowrank: the largest relative weight error (truncated SVD) of a factorized layer.
            min_gain: lowrank: the smallest measured speed-up for which a layer is factorized.
            force: replace an existing output file.
            **train_options: prune, lowrank: options of the fine-tuning runs (batch, schedule, ...).

        Returns:
            The output file's path.

        Raises:
            UserInputError: an unknown method, bad data or options, or an existing output without `force`.
        """
        from yoloseghw.compress.pipeline import lowrank_checkpoint, onnx_variant, output_path, prune_checkpoint
        from yoloseghw.compress.prune import check_options as check_prune_options
        from yoloseghw.engine.exporter import ExportOptions, export_onnx

        model = self._require_model()
        check_output_folder(self.weights.parent, "compress (beside --weights)")
        if method == "prune":
            check_prune_options(ratio, criterion)
        out = output_path(self.weights, method, rank if method == "lowrank" else ratio, force, runtime, float_precision)
        if method in ("prune", "lowrank"):
            if (det is None) != (seg is None):
                raise UserInputError(
                    f"give both --det and --seg to fine-tune the {method} model (or neither to {method} only)"
                )
            if det is not None:
                load_data_config(det, "det"), load_data_config(seg, "seg")

            def finetune(path: Path, epochs: int) -> tuple[Path, DetSegModel]:
                tuned = YOLOSeg(path)
                tuned.train(det, seg, project=out.parent, name=f"{out.stem}-finetune", epochs=epochs, **train_options)
                return tuned.weights, tuned.model

        if method == "lowrank":
            return lowrank_checkpoint(
                model,
                self.ckpt,
                out,
                rank=rank,
                max_error=max_error,
                min_gain=min_gain,
                imgsz=imgsz or self._train_imgsz(),
                finetune_epochs=finetune_epochs,
                finetune=finetune if det is not None else None,
                source=self.weights.name,
            )
        if method == "prune":
            return prune_checkpoint(
                model,
                self.ckpt,
                out,
                ratio=ratio,
                criterion=criterion,
                steps=steps,
                finetune_epochs=finetune_epochs,
                imgsz=imgsz or self._train_imgsz(),
                finetune=finetune if det is not None else None,
                source=self.weights.name,
            )
        imgsz = round_to_stride(imgsz or self._train_imgsz(), model.input_stride)
        settings = ExportOptions.of({"imgsz": imgsz, **({"semantic": semantic} if semantic else {})})

        def export(path: Path) -> Path:
            with ultralytics_log(logging.WARNING):  # the FP32 export is a temporary step: no export report
                return export_onnx(model, path, settings)

        if accuracy_aware and runtime != "openvino":
            raise UserInputError("--accuracy-aware is NNCF's mode: give --runtime openvino")
        control = self._accuracy_control(det, seg, imgsz, max_drop) if accuracy_aware else None
        return onnx_variant(
            method,
            out,
            export,
            self.weights.name,
            det,
            seg,
            calib,
            calib_method,
            keep_float,
            runtime,
            control,
            float_precision,
        )

    def _accuracy_control(self, det: Any, seg: Any, imgsz: int, max_drop: float) -> AccuracyControl:
        """For NNCF's accuracy-aware mode: both val sets' metrics of an OpenVINO compiled model, and val images of
        both sets to rank its layers on."""
        from types import SimpleNamespace

        import torch

        from yoloseghw.compress.openvino_int8 import RANKING_IMAGES, AccuracyControl, metrics_of_compiled
        from yoloseghw.engine.validator import DetSegValidator

        if det is None or seg is None:
            raise UserInputError("--accuracy-aware validates on both datasets: give --det and --seg")
        if not 0 < max_drop < 1:
            raise UserInputError(f"--max-drop must be between 0 and 1 (a share of FP32's metric), got {max_drop}")
        model = self._require_model()
        det_data, seg_data = load_data_config(det, "det"), load_data_config(seg, "seg")
        args = ultralytics_args({"imgsz": imgsz, "batch": 1, "plots": False}, "val")
        validator = DetSegValidator(args, det_data, seg_data, model.input_stride, Path("."), rect=False)
        reference = SimpleNamespace(
            kind="OpenVINO",
            device=torch.device("cpu"),
            det_names=model.det_names,
            seg_names=model.seg_names,
            end2end=bool(model.end2end),
        )
        return AccuracyControl(
            metrics=lambda compiled: metrics_of_compiled(compiled, validator, reference),
            images=sample_images(det_data, seg_data, RANKING_IMAGES, split="val"),
            max_drop=max_drop,
        )

    # ------------------------------------------------------------------ bench
    def bench(
        self,
        det: str | Path,
        seg: str | Path,
        *,
        variants: tuple[str | Path, ...] = (),
        project: str | Path = PROJECT,
        name: str = "bench",
        **options: Any,
    ) -> dict[str, Any]:
        """Time and validate this checkpoint against its compressed variants, on both val sets.

        Args:
            det: the detection dataset yaml (its val split).
            seg: the semantic dataset yaml (its val split).
            variants: more variant files (.pt or .onnx) besides those found beside the checkpoint.
            project: the parent folder of the results.
            name: the results folder's name (`bench`, `bench-2`, ...); it is `self.save_dir` afterwards.
            **options: the fields of `BenchOptions` (compress/benchmark.py): threads, batch, runs, rounds, baseline.

        Returns:
            The results as written to bench.json: machine, image size, one row per variant and the stock models.

        Raises:
            UserInputError: bad data, variants or options.
        """
        from yoloseghw.compress.benchmark import BenchOptions, run_bench

        self._require_model()
        unknown = set(options) - set(BenchOptions.__dataclass_fields__)
        if unknown:
            raise UserInputError(f"bench: unknown option(s) {', '.join(sorted(unknown))}")
        check_run_name(name)
        check_output_folder(project, "--project")
        self.save_dir = increment_path(Path(project) / name, exist_ok=False, sep="-")
        given = tuple(map(Path, variants))
        return run_bench(self.weights, Path(det), Path(seg), self.save_dir, YOLOSeg, BenchOptions(**options), given)

    def compare_with(
        self, other: str | Path, source: Any, conf: float = 0.25, threads: int | None = None
    ) -> dict[str, Any]:
        """Predict `source` with this model and with `other` (e.g. its ONNX export) at the other's image size.

        Args:
            other: the other model file.
            source: the images (file, folder, glob).
            conf: the confidence threshold of the boxes compared.
            threads: ONNX Runtime intra-op threads.

        Returns:
            How well they agree (`parity.compare_predictions`): box match rate, class agreement, mask agreement.
        """
        from yoloseghw.engine.parity import compare_predictions

        twin = YOLOSeg(other)
        imgsz = twin._train_imgsz()
        kind = twin.exported.semantic_output.name if twin.exported else None  # PyTorch computes the export's kind
        mine = self.predict(source, imgsz=imgsz, conf=conf, threads=threads, semantic=kind)
        theirs = twin.predict(source, imgsz=imgsz, conf=conf, threads=threads)
        return compare_predictions(mine, theirs, conf)


def exported_backend(path: str | Path, device: str = "", threads: int | None = None) -> ExportedBackend:
    """The backend of an exported file: ONNX Runtime for an .onnx file, OpenVINO for an OpenVINO model."""
    if is_openvino(path):
        from yoloseghw.nn.openvino import OpenVinoBackend

        return OpenVinoBackend(path, device, threads)
    return OnnxBackend(path, device, threads)


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


@contextmanager
def _released_on_error(held: ExitStack) -> Iterator[None]:
    """Release what `held` holds (a run folder's lock) if the block fails; keep it held otherwise."""
    try:
        yield
    except BaseException:
        held.close()
        raise


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
