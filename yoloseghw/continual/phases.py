"""The control of a run that learns one task after the other: phase two of `phased`, distillation and EWC.

The trainer (engine/trainer.py) calls these at its hooks; they act on its public state (model, EMA, optimizer
schedule, early stopper) and never import the engine.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from ultralytics.utils import RANK
from ultralytics.utils.torch_utils import EarlyStopping, ModelEMA, unwrap_model

from yoloseghw.continual.distill import DISTILL_LOSS, Distillation, frozen_copy
from yoloseghw.continual.ewc import ElasticWeights, diagonal_fisher
from yoloseghw.nn.tasks import DetSegModel
from yoloseghw.utils.console import console
from yoloseghw.utils.options import TASKS

EWC_BATCHES = 32  # first-task train batches that estimate the Fisher information


class PartialEMA(ModelEMA):
    """Ultralytics' ModelEMA that leaves the tensors whose state-dict keys start with one of `fixed` as they are
    (frozen layers, a head that no longer trains): they stay exactly the model's."""

    def __init__(self, model: nn.Module, fixed: tuple[str, ...], updates: int = 0):
        super().__init__(model, updates=updates)
        self.fixed = fixed
        self.pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def update(self, model: nn.Module) -> None:
        """Average every floating-point tensor but the fixed ones (the tensors are updated in place, so the pairs are
        found once)."""
        if not self.enabled:
            return
        self.updates += 1
        d = self.decay(self.updates)
        if self.pairs is None:
            ema, state = self.ema.state_dict(), unwrap_model(model).state_dict()
            keys = [k for k, v in ema.items() if v.dtype.is_floating_point and not k.startswith(self.fixed)]
            self.pairs = [ema[k] for k in keys], [state[k] for k in keys]
        with torch.no_grad():
            for ema_v, model_v in zip(*self.pairs):
                ema_v.lerp_(model_v, 1 - d)


def phased_lr(lf: Callable[[float], float], scale: float, boundary: int) -> Callable[[float], float]:
    """The LR factor `lf` of Ultralytics' schedule, times `scale` from epoch `boundary` (phase two) on."""
    return lambda x: lf(x) * (scale if x >= boundary else 1.0)


def frozen_indices(freeze: Any) -> list[int]:
    """The layer indices that `freeze` (a count or a list of indices, as Ultralytics' `freeze`) names."""
    return list(freeze) if isinstance(freeze, list) else list(range(freeze or 0))


def freeze_layers(model: DetSegModel, freeze: Any) -> tuple[list[int], list[str]]:
    """Freeze the weights of layers `freeze` (a count or a list of indices) and the DFL, as Ultralytics freezes;
    returns the layer indices and the parameter-name prefixes (Ultralytics' `freeze_layer_names`, whose BatchNorm
    statistics its trainer keeps fixed)."""
    layers = frozen_indices(freeze)
    names = [f"model.{x}." for x in layers] + [".dfl"]
    for name, p in model.named_parameters():
        if any(f in name for f in names):
            p.requires_grad = False
    return layers, names


def enter_phase_two(trainer: Any) -> None:
    """Start phase two of `phased` from the EMA weights (the validated model): freeze `freeze` layers, keep them and
    the idle first-task head out of the EMA (the idle head trains, and is averaged, under `distill`, whose teacher is
    a frozen copy of the phase-one model unless `teacher` is given, under `--link`, whose terms teach it the linked
    classes, and under `replay`, whose first-task batches train it), and count early stopping from here."""
    model = unwrap_model(trainer.model)
    model.load_state_dict(trainer.ema.ema.state_dict())
    layers, trainer.freeze_layer_names = freeze_layers(model, trainer.args.freeze)
    options = trainer.options
    idle = f"model.{model.model[-1].i}." if trainer.plan.order[0] == "det" else "semantic."
    distill = options["distill"]
    # the first task's head still learns: from a teacher, from --link's terms, or from its own replayed batches
    taught = distill or bool(getattr(model, "link", None)) or bool(options["replay"])
    fixed = tuple(f for f in trainer.freeze_layer_names if f.startswith("model.")) + (() if taught else (idle,))
    trainer.ema = PartialEMA(trainer.model, fixed, updates=trainer.ema.updates)
    fix_statistics(trainer)
    trainer.stopper = EarlyStopping(patience=trainer.args.patience)
    trainer.stopper.best_epoch = trainer.epoch  # patience counts from the start of phase two
    trainer.phase_two_started = True
    if options["ewc"]:
        anchor_weights(trainer)
    if distill and not options["teacher"]:
        start_distillation(trainer, frozen_copy(trainer.ema.ema), "the phase-one model (a frozen copy of its EMA)")
    if RANK in {-1, 0}:
        bn = ", BatchNorm statistics of the shared layers and the first head fixed" if options["freeze_bn"] else ""
        replay = f", {options['replay']:g} {trainer.plan.order[0]} batches per {trainer.plan.order[1]} batch" * bool(
            options["replay"]
        )
        frozen = f"layers {layers[0]}-{layers[-1]} frozen" if layers else "no layer frozen"
        console.print(
            f"Phase two ({trainer.plan.order[1]}): from the EMA weights, {frozen}, LR x{options['lr_scale']:g}{bn}"
            f"{replay}"
        )


def fix_statistics(trainer: Any) -> None:
    """With `freeze_bn`, from now on the BatchNorm running statistics of the shared layers and of the first task's
    head stay as they are while their weights train (phase two of `phased`, and `single`)."""
    if not trainer.options["freeze_bn"]:
        return
    model = unwrap_model(trainer.model)
    first = f"model.{model.model[-1].i}." if trainer.plan.order[0] == "det" else "semantic."
    model.fixed_bn = (*model.shared_prefixes(), first)
    model.train(model.training)


def end_epoch(trainer: Any) -> None:
    """on_train_epoch_end: after the last epoch, re-estimate the shared layers' BatchNorm statistics of the EMA model
    (what is validated and saved) on `bn_recalibrate` train batches of each dataset, with no gradient step."""
    n = trainer.options["bn_recalibrate"]
    if n and trainer.epoch + 1 == trainer.epochs:
        recalibrate(trainer.ema.ema, trainer.train_loader.loaders, trainer.preprocess_batch, int(n))


def recalibrate(model: DetSegModel, loaders: dict[str, Any], preprocess: Callable[[dict], dict], n: int) -> None:
    """Reset the running statistics of the shared layers' BatchNorm and estimate them afresh (a cumulative mean) on
    `n` batches of each loader, with no gradient; every other layer and weight stays as it is."""
    prefixes = model.shared_prefixes()
    norms = [m for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and name.startswith(prefixes)]
    momenta = [m.momentum for m in norms]
    was_training = model.training
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # the cumulative mean of every batch seen
        m.train()
    seen = {}
    try:
        with torch.no_grad():
            for task in (t for t in TASKS if t in loaders):
                seen[task] = 0
                for batch in itertools.islice(iter(loaders[task]), n):
                    batch = preprocess({**batch, "task": task})
                    model.forward_heads(batch["img"].float(), (task,))
                    seen[task] += 1
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    if RANK in {-1, 0}:
        batches = " + ".join(f"{k} {t}" for t, k in seen.items())
        console.print(f"BatchNorm statistics of the shared layers re-estimated on {batches} train batches")


def start_epoch(trainer: Any) -> None:
    """At the start of each epoch: the distillation's anchor count starts afresh; in `phased`, phase one never stops
    the run early (the second task must train), and the first epoch of phase two enters it."""
    term = getattr(unwrap_model(trainer.model), "loss_terms", {}).get(DISTILL_LOSS)
    if term is not None:
        term.reset()
    if trainer.boundary is None:
        return
    if trainer.epoch < trainer.boundary:
        trainer.stopper.patience = math.inf
    elif not trainer.phase_two_started:
        enter_phase_two(trainer)


def anchor_weights(trainer: Any) -> None:
    """EWC: the first task's Fisher information (its train batches, at most EWC_BATCHES) at the current weights,
    which from now on anchor every parameter it reached."""
    task = trainer.plan.order[0]
    loader = trainer.train_loader.loaders[task]
    n = min(len(loader), EWC_BATCHES)
    model = unwrap_model(trainer.model)
    batches = ({**b, "task": task} for b in itertools.islice(iter(loader), n))
    no_sync = trainer.model.no_sync() if hasattr(trainer.model, "no_sync") else contextlib.nullcontext()
    with no_sync:  # gradients of this rank only, averaged over ranks afterwards
        fisher = diagonal_fisher(model, batches, trainer.preprocess_batch)
    term = ElasticWeights(model, fisher, trainer.options["ewc"])
    model.loss_terms = {**getattr(model, "loss_terms", {}), term.name: term}
    if RANK in {-1, 0}:
        console.print(f"EWC: Fisher information of the {task} loss from {n} batches; strength {trainer.options['ewc']}")


def start_distillation(trainer: Any, teacher: DetSegModel | None, source: str) -> None:
    """From this step on, `teacher` (None: the EMA model of each step) supervises the head each batch has no labels
    for (Learning without Forgetting)."""
    o = trainer.options
    current = (lambda: trainer.ema.ema) if teacher is None else (lambda: teacher)  # a resume replaces the EMA
    # after one task (phased, single) the teacher knows that task's head only; in `alternate` it knows both
    taught = TASKS if trainer.plan.kind == "alternate" else (trainer.plan.order[0],)
    term = Distillation(current, o["distill_t"], o["distill_weight"], taught)
    model = unwrap_model(trainer.model)
    model.loss_terms = {**getattr(model, "loss_terms", {}), term.name: term}
    if RANK in {-1, 0}:
        lessons = {
            "seg": f"on det batches the semantic head learns its soft class maps (KL, T={o['distill_t']})",
            "det": "on seg batches Detect learns its scores at every anchor and its boxes at the anchors its scores "
            "single out",
        }
        console.print(
            f"Distillation from {source}: {'; '.join(lessons[h] for h in taught)}; weight {o['distill_weight']}"
        )


def distilled_anchors(trainer: Any) -> float | None:
    """Anchors whose boxes the distillation used per segmentation image this epoch (None without distillation),
    counted afresh each epoch."""
    term = getattr(unwrap_model(trainer.model), "loss_terms", {}).get(DISTILL_LOSS)
    return term.anchors_per_image() if term is not None else None
