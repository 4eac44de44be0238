"""DetSegTrainer: trains one DetSegModel from a box-only and a mask-only dataset under a task schedule."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from ultralytics.engine.trainer import BaseTrainer
from ultralytics.utils.checks import check_imgsz
from ultralytics.utils.torch_utils import EarlyStopping, ModelEMA, init_seeds

from .backend import TorchBackend, torch_device
from .checkpoint import make_checkpoint, write_checkpoint
from .console import console, make_progress
from .data import build_dataset, build_loader, task_args
from .errors import UserInputError
from .nn import DetSegModel
from .plots import plot_results
from .schedule import Schedule
from .val import DetSegValidator

TASK_NAMES = {"det": "detection", "seg": "segmentation"}


class DetSegTrainer:
    """Schedules det/seg steps, routes each loss to its own batches, validates both tasks every epoch.

    `args` is an Ultralytics args namespace (epochs, imgsz, batch, lr0, ...); `options` holds the yoloseg ones:
    schedule, ratio, det_epochs, order, freeze, lr_scale, seg_weight and the dataset yaml paths.
    """

    def __init__(self, model: DetSegModel, args: Any, det_data: dict, seg_data: dict, options: dict, save_dir: Path):
        self.model, self.args, self.options, self.save_dir = model, args, options, Path(save_dir)
        self.data = {"det": det_data, "seg": seg_data}
        self.schedule = Schedule(
            kind=options["schedule"],
            ratio=tuple(options["ratio"]),
            det_epochs=options["det_epochs"],
            order=tuple(options["order"]),
        )
        self.weights_dir = self.save_dir / "weights"
        self.rows: list[dict[str, Any]] = []
        self.start_epoch, self.best_fitness = 0, None
        self.resume_state: dict | None = None
        self.frozen_layers: list[torch.nn.Module] = []
        self.mosaic_closed = False

    # ---------------------------------------------------------------- setup
    def _setup(self) -> None:
        args = self.args
        init_seeds(args.seed, deterministic=args.deterministic)
        self.device = torch_device(args.device)
        self.model.to(self.device)
        self.model.args = args
        self.stride = self.model.input_stride
        args.imgsz = check_imgsz(args.imgsz, stride=self.stride, floor=self.stride, max_dim=1)
        self.loaders = {
            task: build_loader(
                build_dataset(args, data, "train", task, self.stride, args.batch),
                args.batch,
                args.workers,
                shuffle=True,
                device=self.device,
            )
            for task, data in self.data.items()
        }
        self.iterators = {task: iter(loader) for task, loader in self.loaders.items()}
        self.validator = DetSegValidator(args, self.data["det"], self.data["seg"], self.stride, self.save_dir)
        shim = SimpleNamespace(args=args, data={"nc": len(self.model.det_names)})
        iterations = args.epochs * sum(len(loader) for loader in self.loaders.values())
        self.accumulate = max(round(args.nbs / args.batch), 1)  # Ultralytics: one optimizer step per ~nbs images
        decay = args.weight_decay * args.batch * self.accumulate / args.nbs
        self.optimizer = BaseTrainer.build_optimizer(
            shim, self.model, args.optimizer, args.lr0, args.momentum, decay, iterations
        )
        for group in self.optimizer.param_groups:
            group["initial_lr"] = group["lr"]
        self.amp = self.device.type == "cuda" and args.amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.ema = ModelEMA(self.model)
        self.stopper = EarlyStopping(patience=args.patience)
        if self.resume_state:
            self._restore(self.resume_state)

    def _restore(self, state: dict) -> None:
        """Continue an interrupted run from the state saved in last.pt."""
        self.model.load_state_dict(state["model"])
        self.ema.ema.load_state_dict(state["ema"])
        self.ema.updates = state["ema_updates"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.rows, self.best_fitness = state["rows"], state["best_fitness"]
        self.start_epoch = state["epoch"] + 1
        self.stopper.best_fitness, self.stopper.best_epoch = state["best_fitness"], state.get("best_epoch", 0)
        criterion = self.model.det_criterion = self.model.init_criterion()
        if hasattr(criterion, "update"):  # YOLO26 one-to-many decay continues where it stopped
            criterion.updates = self.start_epoch - 1
            criterion.update()

    # ---------------------------------------------------------------- schedule helpers
    def _lr_factor(self, epoch: int) -> float:
        """Ultralytics' linear decay from lr0 to lr0*lrf over the run."""
        return (1 - epoch / self.args.epochs) * (1.0 - self.args.lrf) + self.args.lrf

    def _set_phase(self, epoch: int) -> float:
        """Freeze layers and scale the LR in the second phase of `phased` (or freeze throughout if asked)."""
        boundary = self.schedule.boundary(self.args.epochs)
        second = boundary is not None and epoch >= boundary
        n = self.options["freeze"] if (second or self.schedule.kind != "phased") else 0
        n = n or 0
        frozen = {f"model.{i}." for i in range(n)}
        for name, p in self.model.named_parameters():
            p.requires_grad = not any(name.startswith(f) for f in frozen) and ".dfl" not in name
        self.frozen_layers = [self.model.model[i] for i in range(min(n, len(self.model.model)))]
        return self.options["lr_scale"] if second else 1.0

    def _train_mode(self) -> None:
        """Training mode, with frozen layers' BatchNorm statistics kept fixed (what protects the frozen task)."""
        self.model.train()
        for m in self.frozen_layers:
            m.eval()

    def _next_batch(self, task: str) -> dict:
        try:
            batch = next(self.iterators[task])
        except StopIteration:
            self.iterators[task] = iter(self.loaders[task])
            batch = next(self.iterators[task])
        batch = {
            k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
        }
        batch["img"] = batch["img"].float() / 255
        batch["task"] = task
        return batch

    # ---------------------------------------------------------------- training
    def train(self) -> dict[str, float]:
        """Run the schedule; returns the metrics of the last epoch trained."""
        self._setup()
        args = self.args
        epochs = args.epochs
        batches = {task: len(loader) for task, loader in self.loaders.items()}
        nw = (
            max(round(args.warmup_epochs * len(self.schedule.steps(0, epochs, batches))), 100)
            if args.warmup_epochs > 0
            else 0
        )
        ni = sum(len(self.schedule.steps(e, epochs, batches)) for e in range(self.start_epoch))
        self.last_opt_step = ni - 1
        console.print(
            f"[bold]yoloseg[/] {self.schedule.kind} schedule, {epochs} epochs, imgsz {args.imgsz}, batch {args.batch}, "
            f"device {self.device}. det: {len(self.loaders['det'].dataset)} train images ({batches['det']} batches), "
            f"seg: {len(self.loaders['seg'].dataset)} train images ({batches['seg']} batches)."
        )
        console.print(f"An epoch = {self._epoch_meaning(batches)}. Results to {self.save_dir}")
        metrics: dict[str, float] = {}
        for epoch in range(self.start_epoch, epochs):
            t0 = time.time()
            means, ni = self._train_epoch(epoch, batches, ni, nw)
            metrics = self.validator(TorchBackend(self.ema.ema, self.device))
            row = {
                "epoch": epoch + 1,
                "phase": "+".join(self.schedule.phase(epoch, epochs)),
                "time": round(time.time() - t0, 2),
                "lr": self.optimizer.param_groups[0]["lr"],
                **{f"train/{k}": round(v, 5) for k, v in means.items()},
                **{k: round(v, 5) for k, v in metrics.items()},
            }
            self.rows.append(row)
            improved = self.best_fitness is None or metrics["fitness"] >= self.best_fitness
            if improved:
                self.best_fitness = metrics["fitness"]
            stop = self.stopper(epoch + 1, metrics["fitness"])
            self._save(epoch, improved, final=stop or epoch + 1 == epochs)
            self._print_epoch(row, improved)
            if stop:
                console.print(f"Early stop: no improvement for {args.patience} epochs.")
                break
        return metrics

    def _train_epoch(self, epoch: int, batches: dict[str, int], ni: int, nw: int) -> tuple[dict[str, float], int]:
        """One epoch of the schedule; returns the mean loss items per task ('det/box_loss', ...) and the step count."""
        epochs = self.args.epochs
        lr_scale = self._set_phase(epoch)
        self._close_mosaic_if_due(epoch)
        self._train_mode()
        steps = self.schedule.steps(epoch, epochs, batches)
        sums: dict[str, float] = {}
        counts = {"det": 0, "seg": 0}
        means: dict[str, float] = {}
        with make_progress() as progress:
            bar = progress.add_task(f"Epoch {epoch + 1}/{epochs}", total=len(steps), info="")
            for step in steps:
                self._set_lr(epoch, ni, nw, lr_scale)
                for task, items in self._forward_backward(step, epoch).items():
                    counts[task] += 1
                    for k, v in items.items():
                        sums[f"{task}/{k}"] = sums.get(f"{task}/{k}", 0.0) + float(v)
                if ni - self.last_opt_step >= self._accumulate_now(ni, nw):
                    self._optimizer_step()
                    self.last_opt_step = ni
                ni += 1
                means = {k: v / counts[k.split("/")[0]] for k, v in sums.items()}
                progress.update(
                    bar,
                    advance=1,
                    description=f"Epoch {epoch + 1}/{epochs} [{'+'.join(step)}]",
                    info=self._loss_text(means),
                )
        if ni - 1 > self.last_opt_step:  # apply the epoch's remaining gradients inside the epoch (and its phase)
            self._optimizer_step()
            self.last_opt_step = ni - 1
        if hasattr(self.model.det_criterion, "update"):  # YOLO26: one-to-many loss weight decays per epoch
            self.model.det_criterion.update()
        return means, ni

    def _forward_backward(self, step: tuple[str, ...], epoch: int) -> dict[str, dict[str, torch.Tensor]]:
        """Forward each task of the step on its own batch and backpropagate the sum of the weighted losses."""
        loss = torch.zeros((), device=self.device)
        items_per_task = {}
        for task in step:
            batch = self._next_batch(task)
            with torch.autocast(self.device.type, enabled=self.amp):
                task_loss, items_per_task[task] = self.model.loss(batch)
            loss = loss + (self.options["seg_weight"] if task == "seg" else 1.0) * task_loss.sum()
        if not torch.isfinite(loss):
            raise UserInputError(f"non-finite loss at epoch {epoch + 1}; lower --lr0 or check the labels")
        self.scaler.scale(loss).backward()
        return items_per_task

    def _accumulate_now(self, ni: int, nw: int) -> int:
        """Steps per optimizer update: ramps from 1 to nbs/batch during warmup, as in Ultralytics."""
        if nw and ni <= nw:
            return max(1, round(1 + (self.accumulate - 1) * ni / nw))
        return self.accumulate

    def _optimizer_step(self) -> None:
        """Unscale, clip gradients to norm 10, step, zero the gradients and update the EMA (as Ultralytics)."""
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=10.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model)

    def _close_mosaic_if_due(self, epoch: int) -> None:
        """Ultralytics' close_mosaic: no mosaic/mixup in the last N epochs (also after a resume past that point)."""
        n = self.args.close_mosaic
        if not n or epoch < self.args.epochs - n or self.mosaic_closed:
            return
        for task, loader in self.loaders.items():
            loader.dataset.close_mosaic(hyp=task_args(self.args, task))
            loader.reset()
        self.iterators = {task: iter(loader) for task, loader in self.loaders.items()}
        self.mosaic_closed = True

    def _epoch_meaning(self, batches: dict[str, int]) -> str:
        if self.schedule.kind == "phased":
            return "one pass over the dataset of the current phase"
        if self.schedule.kind == "joint":
            return f"{max(batches.values())} steps, each one det batch + one seg batch (one pass over the larger set)"
        a, b = self.schedule.ratio
        steps = len(self.schedule.steps(0, self.args.epochs, batches))
        return f"{steps} steps alternating det:seg = {a}:{b} (each dataset drawn at least once in full)"

    def _set_lr(self, epoch: int, ni: int, nw: int, scale: float) -> None:
        factor = self._lr_factor(epoch) * scale
        warm = min(1.0, (ni + 1) / nw) if nw and ni < nw else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor * warm

    @staticmethod
    def _loss_text(means: dict[str, float]) -> str:
        """'det box 4.33 cls 4.21 dfl 1.10 · seg ce 1.54 dice 0.81 aux 0.62' (running means of the epoch)."""
        groups = {}
        for key, value in means.items():
            task, name = key.split("/")
            groups.setdefault(task, []).append(f"{name.replace('_loss', '')} {value:.2f}")
        return " · ".join(f"{task} {' '.join(items)}" for task, items in groups.items())

    def _print_epoch(self, row: dict, improved: bool) -> None:
        parts = [f"epoch {row['epoch']}/{self.args.epochs} [{row['phase']}] {row['time']:.0f}s"]
        if "metrics/mAP50(B)" in row:
            parts.append(f"mAP50 {row['metrics/mAP50(B)']:.3f} mAP50-95 {row['metrics/mAP50-95(B)']:.3f}")
        if "metrics/mIoU" in row:
            parts.append(f"mIoU {row['metrics/mIoU']:.3f} pixel acc {row['metrics/pixel_acc']:.3f}")
        parts.append(f"fitness {row['fitness']:.3f}{' (best)' if improved else ''}")
        console.print(" | ".join(parts))

    # ---------------------------------------------------------------- outputs
    def _save(self, epoch: int, improved: bool, final: bool) -> None:
        """results.csv + results.png every epoch; last.pt (resumable) and best.pt, all written atomically."""
        self._write_csv()
        plot_results(self.rows, self.save_dir / "results.png", boundary=self.schedule.boundary(self.args.epochs))
        ckpt = make_checkpoint(
            self.ema.ema,
            epoch=epoch,
            train_args=vars(self.args),
            options=self.options,
            metrics=self.rows[-1],
            best_fitness=self.best_fitness,
        )
        if improved:
            write_checkpoint(self.weights_dir / "best.pt", ckpt)
        if not final:  # last.pt of an unfinished run can be resumed
            ckpt["train_state"] = {
                "model": {k: v.float() for k, v in self.model.state_dict().items()},
                "ema": self.ema.ema.state_dict(),
                "ema_updates": self.ema.updates,
                "optimizer": self.optimizer.state_dict(),
                "rows": self.rows,
                "epoch": epoch,
                "best_fitness": self.best_fitness,
                "best_epoch": self.stopper.best_epoch,
            }
        write_checkpoint(self.weights_dir / "last.pt", ckpt)

    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns += [k for k in row if k not in columns]
        path = self.save_dir / "results.csv"
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, path)
