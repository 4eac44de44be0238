"""DetSegValidator: mAP (Ultralytics DetMetrics) on the box val set and mIoU (SemanticMetrics) on the mask val set."""

from __future__ import annotations

from copy import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.models.yolo.semantic import SemanticSegmentationValidator
from ultralytics.utils import callbacks as ultralytics_callbacks

from yoloseghw.data.dataset import build_dataset, build_loader
from yoloseghw.data.multitask import task_args
from yoloseghw.nn.backends import OnnxBackend, TorchBackend
from yoloseghw.utils.console import make_progress
from yoloseghw.utils.metrics import DET_KEYS, SEG_KEYS, combined_fitness
from yoloseghw.utils.ultralytics import prepare_validator


def val_loader(args: Any, data: dict, task: str, stride: int, rect: bool = True) -> Any:
    """One task's val loader: rectangular batches unless `rect=False`; detection at twice the batch (Ultralytics)."""
    batch = max(args.batch, 1) * (2 if task == "det" and rect else 1)
    dataset = build_dataset(args, data, "val", task, stride, batch, rect=rect)
    return build_loader(dataset, batch, 0, shuffle=False)


class DetSegValidator:
    """Evaluates a DetSegModel on a detection val set and/or a semantic val set, reusing Ultralytics' validators."""

    def __init__(
        self,
        args: Any,
        det_data: dict | None,
        seg_data: dict | None,
        stride: int,
        save_dir: Path,
        rect: bool = True,
        _callbacks: dict | None = None,
        loaders: dict[str, Any] | None = None,
    ):
        """Build the val loaders once; `args` is an Ultralytics args namespace (imgsz, batch, conf, iou, ...).

        `rect=False` letterboxes every image to the same square (what a static-shape ONNX model needs); `loaders`
        are val loaders built already (by the trainer).
        """
        self.args, self.save_dir = args, Path(save_dir)
        self.callbacks = _callbacks or ultralytics_callbacks.get_default_callbacks()
        self.metrics = SimpleNamespace(keys=[*(DET_KEYS if det_data else ()), *(SEG_KEYS if seg_data else ())])
        self.results: dict[str, float] = {}
        self.validators: dict[str, DetectionValidator] = {}
        for task, data, cls in (
            ("det", det_data, DetectionValidator),
            ("seg", seg_data, SemanticSegmentationValidator),
        ):
            if data is None:
                continue
            loader = loaders[task] if loaders else val_loader(args, data, task, stride, rect)
            vargs = task_args(args, task)
            vargs.plots = vargs.save_json = vargs.save_txt = False
            validator = cls(dataloader=loader, save_dir=self.save_dir, args=copy(vargs))
            validator.data = data
            self.validators[task] = validator

    def __call__(self, trainer: Any = None, model: Any = None) -> dict[str, float] | None:
        """As Ultralytics' validators are called by its trainer: the trainer's EMA model, or a checkpoint path. No
        metrics (None) without val sets: a DDP rank other than 0."""
        from yoloseghw.engine.checkpoint import load_model

        if not self.validators:
            return None
        if trainer is not None:
            backend = TorchBackend(trainer.ema.ema, trainer.device)
        else:
            backend = TorchBackend(load_model(model)[0], self.args.device)
        metrics = self.run(backend)
        return {k: round(v, 5) for k, v in metrics.items()}

    def run(self, backend: TorchBackend | OnnxBackend, label: str = "val") -> dict[str, float]:
        """Run every configured val set through `backend`; return metrics plus a combined 'fitness'."""
        self.run_callbacks("on_val_start")
        metrics: dict[str, float] = {}
        with make_progress(transient=True) as progress:
            for task, validator in self.validators.items():
                metrics.update(self._run(task, validator, backend, progress, label))
        metrics["fitness"] = combined_fitness(metrics)
        self.results = metrics
        self.run_callbacks("on_val_end")
        return metrics

    def run_callbacks(self, event: str) -> None:
        """Ultralytics' validation callbacks (on_val_start, on_val_batch_start/end, on_val_end)."""
        for callback in self.callbacks.get(event, []):
            callback(self)

    def _run(self, task, validator, backend, progress, label) -> dict[str, float]:
        names = backend.det_names if task == "det" else backend.seg_names
        prepare_validator(validator, validator.data, backend.device, names, backend.end2end)
        loader = validator.dataloader
        bar = progress.add_task(f"{label} [{task}]", total=len(loader), info="")
        for batch in loader:
            self.run_callbacks("on_val_batch_start")
            batch = validator.preprocess(batch)
            det_out, seg_out = backend(batch["img"])
            preds = validator.postprocess(det_out if task == "det" else seg_out)
            validator.update_metrics(preds, batch)
            self.run_callbacks("on_val_batch_end")
            progress.advance(bar)
        stats = validator.get_stats()
        keys = DET_KEYS if task == "det" else SEG_KEYS
        return {k: float(stats[k]) for k in keys}

    def class_tables(self) -> dict[str, list[dict[str, Any]]]:
        """Per-class results of the last run: detection (P, R, mAP50, mAP50-95) and semantic (IoU, pixel acc)."""
        tables: dict[str, list[dict[str, Any]]] = {}
        if "det" in self.validators:
            v = self.validators["det"]
            m = v.metrics
            rows = []
            for i, c in enumerate(m.ap_class_index):
                p, r, m50, m5095 = (float(x) for x in m.class_result(i))
                rows.append(
                    {
                        "class": v.names[c],
                        "images": int(m.nt_per_image[c]),
                        "instances": int(m.nt_per_class[c]),
                        "precision": p,
                        "recall": r,
                        "mAP50": m50,
                        "mAP50-95": m5095,
                    }
                )
            tables["det"] = rows
        if "seg" in self.validators:
            v = self.validators["seg"]
            m = v.metrics
            tables["seg"] = [
                {
                    "class": name,
                    "images": int(m.nt_per_image[i]),
                    "pixels": int(m.nt_per_class[i]),
                    "IoU": float(m.per_class_iou[i]),
                    "pixel_acc": float(m.per_class_pixel_accuracy[i]),
                }
                for i, name in v.names.items()
            ]
        return tables
