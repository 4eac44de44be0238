"""DetSegTrainer: Ultralytics' DetectionTrainer, training one DetSegModel from a box-only and a mask-only dataset.

Everything Ultralytics' trainer does is kept: its epoch loop, callbacks and integrations, warmup, LR schedules,
gradient accumulation, AMP, EMA, early stopping, NaN recovery, `time`, `save_period`, `freeze`, `multi_scale`,
`compile`, resume and checkpoints. What differs is what feeds it: `args.data` names a *pair yaml* (the two dataset
yamls and yoloseg's options, see `yoloseghw.data.pair`), the train loader is a `MultiTaskLoader` whose batches are
tagged with their task, and `model(batch)` applies each loss only to the images labelled for it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from copy import deepcopy
from typing import Any

import numpy as np
import torch
from torch import nn, optim
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import DEFAULT_CFG, RANK
from ultralytics.utils.torch_utils import intersect_dicts, torch_distributed_zero_first, unwrap_model

from yoloseghw.continual import phases
from yoloseghw.continual.distill import DISTILL_ANCHORS, DISTILL_LOSS, frozen_copy
from yoloseghw.continual.ewc import EWC_LOSS
from yoloseghw.continual.forgetting import TASK_METRIC, forgetting_report, write_report
from yoloseghw.continual.forgetting import print_report as print_forgetting
from yoloseghw.data.dataset import build_dataset, build_loader
from yoloseghw.data.gain_mix import gain_shares
from yoloseghw.data.multitask import MultiTaskLoader, TaskPlan, ValLoaders
from yoloseghw.data.pair import load_pair
from yoloseghw.engine import distributed
from yoloseghw.engine.checkpoint import load_model, strip_in_place
from yoloseghw.engine.distributed import HostDDP, launched_by_torchrun, local_rank, world_size
from yoloseghw.engine.validator import DetSegValidator, val_loader
from yoloseghw.nn.link import LINK_TERM_TASKS, describe, link_terms, parse_link
from yoloseghw.nn.loss import BATCH_TASKS
from yoloseghw.nn.tasks import DetSegModel
from yoloseghw.utils.console import console, warn
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import atomic_path, remove_stale_temporaries
from yoloseghw.utils.metrics import MAP50, MAP50_95, MIOU, PIXEL_ACC
from yoloseghw.utils.options import TASKS
from yoloseghw.utils.plots import plot_results, read_rows
from yoloseghw.utils.ultralytics import (
    TrainerHooks,
    ddp_wrapper,
    loader_of,
    semantic_class_counts,
    semantic_class_weights,
    ultralytics_log,
)

START_FILE = "start_metrics.json"  # schedule `single`: the starting weights' val metrics


class TaskLossMeter:
    """Exact running mean of each loss group's items (det, seg, distill, ewc) over the steps of the epoch that had
    it."""

    def __init__(self, names: dict[str, tuple[str, ...]]):
        self.names = names
        self.sums = {k: 0.0 for group in names.values() for k in group}
        self.counts = dict.fromkeys(names, 0)

    def add(self, groups: tuple[str, ...], items: dict[str, torch.Tensor]) -> None:
        for group in groups:
            if group in self.names:
                self.counts[group] += 1
                for k in self.names[group]:
                    self.sums[k] += float(items[k])

    def means(self, current: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The means as tensors keyed like Ultralytics' `tloss`; a group not trained yet keeps its `current` value."""
        out = dict(current)
        for group, names in self.names.items():
            if self.counts[group]:
                for k in names:
                    out[k] = torch.tensor(self.sums[k] / self.counts[group], device=current[k].device)
        return out


class DetSegTrainer(TrainerHooks):
    """Trains a DetSegModel with Ultralytics' own loop; yoloseg's options travel in the pair yaml (`args.data`).

    Schedules (`alternate`, `phased`, `joint`) decide which dataset each step draws (`TaskPlan`). In `phased`, phase
    two starts from the EMA weights, freezes `args.freeze` layers (weights and BatchNorm statistics), keeps the idle
    first-task head and the frozen layers out of the EMA, scales the LR by `lr_scale`, and early stopping only
    counts from there.

    Under DDP (`device=0,1`, or torchrun) each rank trains on its own shard of both datasets, running the same task
    sequence; only rank 0 validates, logs and saves (Ultralytics' rules), and the CPU trains over gloo.
    """

    def __init__(self, cfg: Any = DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None):
        super().__init__(cfg, overrides, _callbacks)
        if launched_by_torchrun():  # every process over all nodes; Ultralytics counts this node's --device list
            self.world_size = world_size()
        if self.args.rect and (self.ddp or self.world_size > 1):  # as Ultralytics' launcher: shards need shuffling
            warn("rect=True is incompatible with DDP training; training with rect=False")
            self.args.rect = False
        if self.device.type == "cpu" and (overrides or {}).get("workers") is not None:
            self.args.workers = overrides["workers"]  # Ultralytics sets 0 on the CPU; a value the user gave is kept
        self.options = self.data["options"]
        self.plan = TaskPlan(
            kind=self.options["schedule"],
            ratio=self.options["ratio"],
            det_epochs=self.options["det_epochs"],
            order=self.options["order"],
            replay=self.options["replay"],
            epoch_steps=self.options["epoch_steps"],
        )
        self.boundary = self.plan.boundary(self.epochs)
        self.phase_two_started = False
        self.start_metrics: dict[str, float] | None = None  # `single`: the starting weights' val metrics
        self.step_tasks: tuple[str, ...] = TASKS
        self.meter: TaskLossMeter | None = None
        self.add_callback("on_train_epoch_start", DetSegTrainer._start_epoch)
        self.add_callback("on_train_batch_end", DetSegTrainer._track_losses)
        self.add_callback("on_train_epoch_end", phases.end_epoch)

    # ------------------------------------------------------------------ data
    def get_dataset(self) -> dict:
        """Both datasets and the options from the pair yaml; `names`/`nc` are the detection ones (Ultralytics')."""
        return load_pair(self.args.data, self.args.epochs)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None, task: str = "det"):
        """One task's Ultralytics dataset (YOLODataset or SemanticDataset) for the train or val split."""
        data = self.data[task]
        return build_dataset(self.args, data, mode, task, self.stride, batch or self.batch_size, rect=self.args.rect)

    def get_dataloader(self, dataset_path: Any, batch_size: int = 16, rank: int = 0, mode: str = "train"):
        """Train: the MultiTaskLoader over both train sets. Val: both val loaders (det at twice the batch, as
        Ultralytics validates detection)."""
        if mode != "train":  # only rank 0 validates
            tasks = TASKS if RANK in {-1, 0} else ()
            return ValLoaders({task: val_loader(self.args, self.data[task], task, self.stride) for task in tasks})
        if launched_by_torchrun():  # also one process: Ultralytics passes rank -1 when WORLD_SIZE is 1
            rank = local_rank()
        loaders = {}
        for task in self.train_tasks():
            with torch_distributed_zero_first(rank):  # build label caches once under DDP
                dataset = build_dataset(self.args, self.data[task], "train", task, self.stride, batch_size)
            loaders[task] = build_loader(dataset, batch_size, self.args.workers, shuffle=not self.args.rect, rank=rank)
        return MultiTaskLoader(loaders, self.plan, self.epochs)

    def train_tasks(self) -> tuple[str, ...]:
        """The tasks whose train sets the run loads: those the plan draws from, and the first task for EWC's Fisher
        information (a `single` run without replay or EWC needs only the new task's)."""
        return TASKS if self.options["ewc"] else self.plan.train_tasks()

    def preprocess_batch(self, batch: dict) -> dict:
        """Ultralytics' preprocessing (device, 0-1 scaling, multi_scale), remembering the step's task(s)."""
        batch = super().preprocess_batch(batch)
        self.step_tasks = BATCH_TASKS[batch["task"]]
        if self.args.compile:  # the compiled forward cannot read the batch: tell the model which heads to run
            model = unwrap_model(self.model)
            model.step = (model.training_heads(batch["task"]), batch.get("n_det"))
        return batch

    # ------------------------------------------------------------------ model
    def get_model(
        self, cfg: Any = None, weights: Any = None, verbose: bool = True, transfer: bool = False
    ) -> DetSegModel:
        """The checkpoint's own module when `weights` is a DetSegModel (fine-tuning or resuming: pruned layers stay),
        re-making a head only if its class list changed. With `transfer` (`--weights`), or weights of a plain
        detector, a new model from `cfg` takes what fits from them through Ultralytics' `BaseModel.load`."""
        det_names, seg_names = self.data["names"], self.data["seg_names"]
        if isinstance(weights, DetSegModel) and not transfer:
            model = deepcopy(weights).float()  # the caller's model is not trained in place
            remade = model.adapt_heads(det_names, seg_names)
            if remade and RANK in {-1, 0}:
                console.print(f"New class list(s): re-made the {' and '.join(remade)}; every other layer is kept.")
            return model
        model = DetSegModel(cfg, nc=len(det_names), seg_nc=len(seg_names), verbose=verbose and RANK == -1)
        model.names, model.seg_names = dict(det_names), dict(seg_names)
        if weights is not None:
            fits = len(intersect_dicts(weights.float().state_dict(), model.state_dict()))
            model.load(weights, verbose=False)
            if RANK in {-1, 0}:
                source = getattr(weights, "pt_path", None) or "the given weights"
                console.print(f"Transferred {fits}/{len(model.state_dict())} tensors from {source}")
        return model

    def set_model_attributes(self) -> None:
        """Ultralytics' attributes (nc, names, args) plus the semantic class list and the loss options."""
        super().set_model_attributes()
        model = unwrap_model(self.model)
        model.seg_names = self.data["seg_names"]
        model.seg_weight = self.options["seg_weight"]
        model.link = parse_link(self.options["link"], self.data["names"], self.data["seg_names"])
        # the loss terms a run logs from its first step (each zero until it starts)
        remedies = tuple(n for n, on in ((DISTILL_LOSS, "distill"), (EWC_LOSS, "ewc")) if self.options[on])
        model.loss_term_names = remedies + (tuple(LINK_TERM_TASKS) if model.link else ())
        model.seg_data_yaml = self.data["seg"]["yaml_path"]

    def set_class_weights(self) -> None:
        """Ultralytics' cls_pw class weights for each head: box counts (detection), pixel counts (semantic)."""
        if not self.args.cls_pw:
            return
        assert 0 <= self.args.cls_pw <= 1.0, "cls_pw must be in the range [0, 1]"
        model = unwrap_model(self.model)
        datasets = self.train_loader.dataset.by_task
        counts = {}
        if "det" in datasets:
            labels = [lb["cls"].flatten() for lb in datasets["det"].labels]
            counts["det"] = np.bincount(np.concatenate(labels, 0).astype(int), minlength=len(self.data["names"]))
        if "seg" in datasets:
            counts["seg"] = semantic_class_counts(self.args, datasets["seg"], len(self.data["seg_names"]))
        for attr, task, compute in (
            ("class_weights", "det", DetectionTrainer.compute_class_weights),
            ("seg_class_weights", "seg", semantic_class_weights),
        ):
            found = counts.get(task)
            if found is not None and found.any():
                weights = compute(self, found.astype(np.float32))
                setattr(model, attr, torch.from_numpy(weights / weights.mean()).float().to(self.device))
        model.criterion = None  # rebuilt with the weights

    def get_validator(self) -> DetSegValidator:
        """Both val sets: mAP on the box val set, mIoU on the mask val set, and the combined fitness. Ranks other than
        0 get a validator without val sets, which returns no metrics (as Ultralytics' trainer expects)."""
        loaders = self.test_loader.loaders
        return DetSegValidator(
            self.args,
            self.data["det"] if loaders else None,
            self.data["seg"] if loaders else None,
            self.stride,
            self.save_dir,
            _callbacks=self.callbacks,
            loaders=loaders,
        )

    def label_loss_items(self, loss_items: dict | None = None, prefix: str = "train") -> list | dict:
        """Training loss names/values as Ultralytics labels them (NaN for a task the epoch did not train); no
        validation losses are computed."""
        if prefix == "val":
            return [] if loss_items is None else {}
        if loss_items is not None and self.meter is not None:
            idle = {k for group, names in self.meter.names.items() if not self.meter.counts[group] for k in names}
            loss_items = {k: math.nan if k in idle else v for k, v in loss_items.items()}
        return super().label_loss_items(loss_items, prefix)

    # ------------------------------------------------------------------ schedule
    def train(self) -> None:
        """Ultralytics' train: with several GPUs its launcher starts one worker per GPU; under torchrun a rank stopped
        by bad input prints one line and exits with code 2."""
        if self.ddp:
            return distributed.launch_workers(self, super().train)
        if launched_by_torchrun():
            return distributed.train_as_rank(super().train)
        return super().train()

    def setup_ddp(self, base) -> None:
        """Ultralytics' DDP set-up, or gloo on the CPU, or this rank's GPU of a torchrun launch."""
        distributed.setup_ddp(self, base)

    def setup_scheduler(self, base) -> None:
        """Ultralytics' linear or cosine LR schedule, times `lr_scale` from phase two of `phased` on."""
        base()
        if self.boundary is not None:
            self.lf = phases.phased_lr(self.lf, self.options["lr_scale"], self.boundary)
            self.scheduler = optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=self.lf)

    def setup_train(self, base) -> None:
        """Ultralytics' setup; in `phased`, `freeze` waits for phase two (phase one trains every layer). A torchrun
        launch trains through DDP whatever its size: one process too, and CPU processes."""
        freeze = self.args.freeze
        if self.boundary is not None:
            self.args.freeze = None
        one_process = distributed.one_process_ddp(self)
        if one_process:
            self._setup_ddp()
        try:
            # bad input found while building datasets stays one line; Ultralytics wraps the model as
            # DistributedDataParallel(model, device_ids=[device.index]), which HostDDP also takes for a CPU model
            with ultralytics_log(logging.ERROR), ddp_wrapper(HostDDP):
                base()
        finally:
            self.args.freeze = freeze
        if one_process:
            distributed.wrap_model(self)
        if RANK in {-1, 0}:
            self._print_plan()
        self._start_link()
        if self.plan.kind == "single":
            self.start_metrics = self._start_metrics()
            phases.fix_statistics(self)
            if self.options["ewc"]:
                phases.anchor_weights(self)
        if self.options["distill"]:
            if self.options["teacher"]:
                teacher = self._teacher_from(self.options["teacher"])
                phases.start_distillation(self, teacher, self.options["teacher"])
            elif self.plan.kind == "single":
                phases.start_distillation(self, frozen_copy(self.ema.ema), "the starting weights (a frozen copy)")
            elif self.boundary is None:
                phases.start_distillation(self, None, "the EMA model")

    def _start_link(self) -> None:
        """--link: the two cross-task loss terms (boxes teach masks, masks teach boxes) for the linked classes."""
        model = unwrap_model(self.model)
        if not model.link:
            return
        weights = self.options["link_weight"]
        terms = link_terms(model.link, weights)
        model.loss_terms = {**getattr(model, "loss_terms", {}), **{term.name: term for term in terms}}
        if RANK in {-1, 0}:
            shown = ", ".join(f"{name} {w:g}" if w else f"{name} off" for name, w in zip(LINK_TERM_TASKS, weights))
            console.print(
                f"Link: {describe(model.link, self.data['names'], self.data['seg_names'])}; box images teach the "
                f"semantic head and mask images teach Detect, for these classes only ({shown})"
            )

    def _print_plan(self) -> None:
        """The start-of-run lines: the schedule, the datasets, what an epoch is, the optimizer."""
        loader, group = self.train_loader, self.optimizer.param_groups[0]
        sizes = ", ".join(
            f"{t}: {len(d)} images ({loader.batches[t]} batches)" for t, d in loader.dataset.by_task.items()
        )
        console.print(
            f"[bold]yoloseg[/] {self.plan.kind} schedule. {sizes}. An epoch = {self.plan.describe(loader.batches)}."
        )
        console.print(
            f"Optimizer {type(self.optimizer).__name__} lr0={group['initial_lr']:.6g} "
            f"(optimizer={self.args.optimizer}), {self.plan.optimizer_cadence(self.accumulate)} (nbs "
            f"{self.args.nbs}), {self.epochs} epochs, imgsz {self.args.imgsz}, results to {self.save_dir}"
        )
        if self.plan.kind == "single":
            layers = phases.frozen_indices(self.args.freeze)
            frozen = f"layers {min(layers)}-{max(layers)} frozen" if layers else "no layer frozen"
            console.print(f"single: {frozen} (--freeze; --freeze 0 trains every layer)")
        if (self.options["lr_shared"], self.options["lr_head"]) != (1.0, 1.0):
            console.print(
                f"LR x{self.options['lr_shared']} for the shared layers, x{self.options['lr_head']} for the heads"
            )

    def _start_metrics(self) -> dict[str, float] | None:
        """`single`: both val sets' metrics of the starting weights (what the old task knew), measured once and kept
        in the run folder, so a resumed run reports against the same start."""
        path = self.save_dir / START_FILE
        if RANK not in {-1, 0}:
            return None
        if path.is_file():
            return json.loads(path.read_text())
        console.print(f"[bold]Validating the starting weights[/] ({self.plan.order[0]} is not trained in this run)")
        metrics = self.validator(self)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(metrics, indent=2))
        return metrics

    def build_optimizer(
        self,
        model: nn.Module,
        name: str = "auto",
        lr: float = 0.001,
        momentum: float = 0.9,
        decay: float = 1e-5,
        iterations: float = 1e5,
    ) -> optim.Optimizer:
        """Ultralytics' optimizer; with `lr_shared`/`lr_head` each of its parameter groups is split in two: the shared
        layers (LR x lr_shared) and the two heads, Detect and the semantic head (LR x lr_head)."""
        optimizer = super().build_optimizer(model, name, lr, momentum, decay, iterations)
        scales = self.options["lr_shared"], self.options["lr_head"]
        if scales == (1.0, 1.0):
            return optimizer
        model = unwrap_model(model)
        heads = {id(p) for m in (model.model[-1], model.semantic) for p in m.parameters()}
        groups, optimizer.param_groups = optimizer.param_groups, []
        for group in groups:
            params = group.pop("params")
            for scale, in_head in zip(scales, (False, True)):
                part = [p for p in params if (id(p) in heads) == in_head]
                optimizer.add_param_group({**group, "params": part, "lr": group["lr"] * scale})
        return optimizer

    def _teacher_from(self, path: str) -> DetSegModel:
        """A frozen teacher from a yoloseg checkpoint with this run's class counts."""
        model = load_model(path, "--teacher")[0]
        names = self.data["names"], self.data["seg_names"]
        counts = model.model[-1].nc, model.semantic.nc
        if counts != (len(names[0]), len(names[1])):
            raise UserInputError(
                f"--teacher: {path} has {counts[0]} detection and {counts[1]} semantic classes, the data "
                f"{len(names[0])} and {len(names[1])}"
            )
        return frozen_copy(model).to(self.device)

    def _start_epoch(self) -> None:
        """on_train_epoch_start: tell the loader the epoch, reset the loss meter, apply the phase of `phased`, and
        set the shares of `--ratio gain` (computed on rank 0, which holds the validation metrics, for every rank)."""
        self.train_loader.set_epoch(self.epoch)
        self.meter = None
        phases.start_epoch(self)
        if self.plan.kind == "alternate" and self.plan.ratio.kind == "gain":
            self.plan.gain_shares = distributed.on_rank_zero(self._gain_shares)
            if RANK in {-1, 0} and self.epoch >= self._warmup_epochs():
                counts = self.plan.counts(self.epoch, self.epochs, self.train_loader.batches)
                console.print(
                    f"epoch {self.epoch + 1}/{self.epochs} mix gain: {counts['det']} det + {counts['seg']} seg"
                )

    def _gain_shares(self) -> dict[str, float]:
        """`--ratio gain`: this epoch's shares, replayed from the validation metrics of the epochs before it."""
        steps = self.plan.steps_per_epoch(self.train_loader.batches)
        return gain_shares(self._finished_metrics(), steps, self._warmup_epochs())[-1]

    def _finished_metrics(self) -> list[dict[str, float]]:
        """Each finished epoch's validation metric per task, from results.csv (NaN where an epoch was not validated)."""
        rows = read_rows(self.csv)[: self.epoch] if self.csv.is_file() else []
        return [{task: row.get(key, math.nan) for task, key in TASK_METRIC.items()} for row in rows]

    def _warmup_epochs(self) -> int:
        """The epochs Ultralytics' warm-up spans (its `max(round(warmup_epochs * batches), 100)` iterations)."""
        if self.args.warmup_epochs <= 0:
            return 0
        steps = len(self.train_loader)
        return math.ceil(max(round(self.args.warmup_epochs * steps), 100) / steps)

    def _track_losses(self) -> None:
        """on_train_batch_end: make `tloss` the exact mean of each task's losses over the steps that trained it."""
        if self.meter is None:
            self.meter = TaskLossMeter(unwrap_model(self.model).criterion.names)
        terms = unwrap_model(self.model).loss_term_names  # a term that serves one task's batches averages over those
        terms = tuple(n for n in terms if LINK_TERM_TASKS.get(n, self.step_tasks[0]) in self.step_tasks)
        self.meter.add((*self.step_tasks, *terms), self.loss_items)
        self.tloss = self.meter.means(self.loss_items)
        if self.options["distill"]:  # a column from the first epoch on (0 before a teacher is set)
            anchors = phases.distilled_anchors(self)
            self.tloss[DISTILL_ANCHORS] = torch.tensor(anchors or 0.0)

    def validate(self) -> tuple[dict | None, float | None]:
        """Ultralytics' validation step (the EMA model on both val sets), with a one-line summary of the epoch."""
        metrics, fitness = super().validate()
        if metrics is not None and RANK in {-1, 0}:
            best = " (best)" if fitness == self.best_fitness else ""
            console.print(
                f"epoch {self.epoch + 1}/{self.epochs} val: mAP50 {metrics[MAP50]:.3f} mAP50-95 {metrics[MAP50_95]:.3f}"
                f" | mIoU {metrics[MIOU]:.3f} pixel acc {metrics[PIXEL_ACC]:.3f} | fitness {fitness:.4f}{best}"
            )
        return metrics, fitness

    # ------------------------------------------------------------------ outputs
    def save_model(self) -> bool:
        """Ultralytics' checkpoint, written atomically: temporary files in weights/, then renamed over the old ones."""
        final = {"last": self.last, "best": self.best}
        for path in final.values():
            remove_stale_temporaries(path)  # what a killed save left
        self.last, self.best = (self.wdir / f".{p.name}.{os.getpid()}.tmp" for p in final.values())
        try:
            saved = super().save_model()
            for temp, path in ((self.last, final["last"]), (self.best, final["best"])):
                if temp.exists():
                    os.replace(temp, path)
            return saved
        finally:
            for temp in (self.last, self.best):
                temp.unlink(missing_ok=True)
            self.last, self.best = final["last"], final["best"]

    def final_eval(self) -> None:
        """Strip the optimizer from last.pt and best.pt (atomically), write and print the forgetting report, then
        validate best.pt on both val sets."""
        if RANK not in {-1, 0}:
            return
        results = self.read_results_csv()
        for path in (self.last, self.best):
            if path.exists():
                strip_in_place(path, updates={"train_results": results})
        report = forgetting_report(results, self.plan.kind, self.boundary, self.plan.order, self.start_metrics)
        write_report(report, self.save_dir)
        print_forgetting(report)
        if self.best.exists():
            console.print(f"[bold]Validating {self.best}[/]")
            self.metrics = self.validator(model=self.best)
            self.metrics.pop("fitness", None)
            self.epoch += 1  # log best metrics at step epochs+1, as Ultralytics does
            self.run_callbacks("on_fit_epoch_end")
            self.epoch -= 1

    def plot_metrics(self) -> None:
        """results.png: both tasks' losses and metrics per epoch, the phase change of `phased` marked."""
        plot_results(self.csv, self.save_dir / "results.png", boundary=self.boundary, on_plot=self.on_plot)

    def plot_training_labels(self) -> None:
        """labels.jpg of the detection set (Ultralytics' plot); the semantic set's class pixels are in `data check`."""
        if "det" in self.train_loader.dataset.by_task:
            with loader_of(self, self.train_loader.dataset.by_task["det"]):
                super().plot_training_labels()

    def plot_training_samples(self, batch: dict, ni: int) -> None:
        """Ultralytics' mosaic of training images with their boxes (detection batches only)."""
        if batch["task"] == "det":
            super().plot_training_samples(batch, ni)
