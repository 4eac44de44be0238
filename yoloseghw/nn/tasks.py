"""DetSegModel: an Ultralytics detection network with a semantic head on the same neck features."""

from __future__ import annotations

import math
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from ultralytics.nn.modules import Conv
from ultralytics.nn.modules.head import SemanticSegment
from ultralytics.nn.tasks import DetectionModel, yaml_model_load
from ultralytics.utils.torch_utils import fuse_conv_and_bn, initialize_weights

from yoloseghw.nn.loss import BATCH_TASKS, DetSegLoss, LossTerm
from yoloseghw.nn.semantic_head import DEFAULT_SEG_HEAD, seg_head_class
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.options import TASKS
from yoloseghw.utils.ultralytics import known_module


class DetSegModel(DetectionModel):
    """Ultralytics `DetectionModel` + `SemanticSegment` head reading the P3/P4 maps that feed `Detect`.

    `Detect` stays the last layer of `self.model`, so everything in Ultralytics that reads `model[-1]` (stride,
    losses, export flags) keeps working; the semantic head lives in `self.semantic`.
    Eval forward returns `(detections, semantic_logits)`; `model(batch)` returns the loss of the batch's task(s).
    `class_weights` (Ultralytics' cls_pw weights) belong to Detect, `seg_class_weights` to the semantic head.
    Extra loss terms (`loss_terms`, training only: distillation, EWC) are added to that loss; `loss_term_names` names
    the ones a run logs from its first step.
    """

    def __init__(
        self,
        cfg: str | dict = "yolo26n.yaml",
        ch: int = 3,
        nc: int | None = None,
        seg_nc: int = 2,
        verbose: bool = True,
    ):
        """Build the detector from `cfg` with `nc` detection classes, then attach a `seg_nc`-class semantic head."""
        super().__init__(cfg, ch=ch, nc=nc, verbose=False)
        self.semantic = self._semantic_head(seg_nc)
        self.seg_names = {i: f"class{i}" for i in range(seg_nc)}
        self.seg_class_weights: torch.Tensor | None = None  # cls_pw pixel-frequency weights (Ultralytics' semantic)
        self.step: tuple[tuple[str, ...], int | None] = (TASKS, None)
        self.loss_term_names: tuple[str, ...] = ()
        self.loss_terms: dict[str, LossTerm] = {}
        self.fixed_bn: tuple[str, ...] = ()  # module-name prefixes whose BatchNorm statistics stay as they are
        self.link: dict[int, int] = {}  # --link: {detection class: semantic class} the two datasets taught together
        if verbose:
            self.info()

    def _semantic_head(self, seg_nc: int) -> SemanticSegment:
        """A new `seg_nc`-class semantic head (the yaml's `seg_head` kind) reading the first two maps that feed Detect
        (P3, P4)."""
        detect = self.model[-1]
        channels = [detect.cv2[k][0].conv.in_channels for k in (0, 1)]
        head_class = seg_head_class(self.yaml.setdefault("seg_head", DEFAULT_SEG_HEAD), "seg_head (model yaml)")
        head = head_class(seg_nc, channels)
        head.f, head.i, head.type = list(detect.f[:2]), len(self.model), head_class.__name__
        head.np = sum(p.numel() for p in head.parameters())
        head.stride = self.stride[:2].clone()
        initialize_weights(head)
        self.yaml["seg_nc"] = seg_nc
        return head.to(self.stride.device)

    @property
    def input_stride(self) -> int:
        """The multiple that input sizes must have: the largest Detect stride, at least 32 (as Ultralytics uses)."""
        return max(int(self.stride.max()), 32)

    @property
    def det_names(self) -> dict[int, str]:
        """Detection class names (Ultralytics' `names`)."""
        return self.names

    def predict(self, x: torch.Tensor, profile: bool = False, augment: bool = False, embed: list | None = None) -> Any:
        """Run backbone + neck + the heads; in training, only the heads of `self.step` (set for torch.compile).

        Ultralytics' own pass serves the stride pass in `__init__` (no semantic head yet), profiling, embeddings and
        test-time augmentation (detection only)."""
        if getattr(self, "semantic", None) is None or profile or augment or embed:
            return super().predict(x, profile, augment, embed)
        tasks, n_det = getattr(self, "step", (TASKS, None)) if self.training else (TASKS, None)
        return self.forward_heads(x, tasks, n_det)

    def forward_heads(
        self, x: torch.Tensor, tasks: tuple[str, ...], n_det: int | None = None, quiet: tuple[str, ...] = ()
    ) -> tuple[Any, Any]:
        """(Detect output or None, semantic output or None), running only what the heads in `tasks` need.

        A segmentation-only step stops after the last layer the semantic head reads, so it neither spends compute on
        the P5-only neck layers and Detect nor moves their BatchNorm statistics. For a joint batch, the first `n_det`
        images are detection images and the rest segmentation images: the shared layers run once on all of them,
        each head then sees only its own images. The heads in `quiet` (run for a distillation term, on images not
        labelled for them) use their BatchNorm running statistics there instead of moving them: the layers only
        they read (for Detect: the layers after the semantic head's inputs, and Detect) run with BatchNorm in eval.
        """
        with frozen_statistics(self.head_only_modules(quiet) if self.training else []):
            return self._forward_heads(x, tasks, n_det)

    def head_only_modules(self, heads: tuple[str, ...]) -> list[nn.Module]:
        """The modules only the heads in `heads` read: the semantic head; Detect and the layers after the last one
        the semantic head reads."""
        seg_last = max(self.semantic.f)
        modules = [self.semantic] if "seg" in heads else []
        return modules + ([m for m in self.model if m.i > seg_last] if "det" in heads else [])

    def _forward_heads(self, x: torch.Tensor, tasks: tuple[str, ...], n_det: int | None) -> tuple[Any, Any]:
        detect, head = self.model[-1], self.semantic
        seg_last = max(head.f)
        y, seg = [], None
        for m in self.model:
            if m is detect or ("det" not in tasks and m.i > seg_last):
                break
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x if m.i in self.save else None)
            if m.i == seg_last and "seg" in tasks:
                seg = head([y[j] if n_det is None else y[j][n_det:] for j in head.f])
                if n_det is not None:  # the layers left serve only the detection images
                    x, y = x[:n_det], [t[:n_det] if t is not None else None for t in y]
        det = detect([y[j] for j in detect.f]) if "det" in tasks else None
        return det, seg

    def init_criterion(self) -> DetSegLoss:
        """Both tasks' Ultralytics losses, each applied only to the images labelled for it."""
        return DetSegLoss(self)

    def built_criterion(self) -> DetSegLoss:
        """The model's loss (`criterion`), built on first use as Ultralytics' BaseModel.loss builds it."""
        if getattr(self, "criterion", None) is None:
            self.criterion = self.init_criterion()
        return self.criterion

    def loss(self, batch: dict, preds: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of the task(s) the batch is labelled for (`batch['task']`: 'det', 'seg' or 'joint'), plus each extra
        term of `loss_term_names` that is active (in `loss_terms`, training only; zero otherwise), logged per image."""
        criterion = self.built_criterion()
        if preds is None:
            heads = self.training_heads(batch["task"])
            quiet = tuple(h for h in heads if h not in BATCH_TASKS[batch["task"]])
            preds = self.forward_heads(batch["img"], heads, batch.get("n_det"), quiet)
        loss, items = criterion(preds, batch)
        terms = self.active_terms()
        for name in getattr(self, "loss_term_names", ()):
            term = terms[name](self, preds, batch) if name in terms else torch.zeros((), device=loss.device)
            loss = loss + term
            items[name] = term.detach() / len(batch["img"])  # per image, as Ultralytics logs its items
        return loss, items

    def active_terms(self) -> dict[str, LossTerm]:
        """The extra loss terms at work: those set in `loss_terms`, in training only."""
        return getattr(self, "loss_terms", {}) if self.training else {}

    def training_heads(self, task: str) -> tuple[str, ...]:
        """The heads a training step runs: those the batch has labels for, and those an active loss term needs."""
        heads = set(BATCH_TASKS[task]).union(*(term.heads(task) for term in self.active_terms().values()))
        return tuple(t for t in TASKS if t in heads)

    def train(self, mode: bool = True) -> DetSegModel:
        """nn.Module's train/eval switch; in training, the BatchNorm layers under `fixed_bn` stay in eval mode (their
        running statistics fixed while their weights train)."""
        super().train(mode)
        prefixes = getattr(self, "fixed_bn", ())
        if mode and prefixes:
            for name, m in self.named_modules():
                if isinstance(m, nn.BatchNorm2d) and name.startswith(prefixes):
                    m.eval()
        return self

    def shared_prefixes(self) -> tuple[str, ...]:
        """Module-name prefixes of the shared layers: every layer before Detect (backbone and neck)."""
        return tuple(f"model.{m.i}." for m in self.model[:-1])

    def __getstate__(self) -> dict:
        """Pickles and copies leave out what belongs to one training run: its loss terms (a teacher, EWC anchors)
        and its fixed BatchNorm statistics."""
        state = self.__dict__.copy()
        state.pop("loss_terms", None)
        state.pop("fixed_bn", None)
        return state

    def adapt_heads(self, det_names: dict[int, str], seg_names: dict[int, str]) -> list[str]:
        """Give the model new class lists; re-make only what a changed list needs, and return what was re-made.

        A new detection class list replaces Detect's final class convolutions (its hidden layers stay); a new semantic
        class list replaces the small semantic head. Everything else, pruned layers included, stays the model's own.
        """
        remade = []
        if len(det_names) != self.model[-1].nc:
            self._remake_class_convs(len(det_names))
            remade.append("detection classes")
        if len(seg_names) != self.semantic.nc:
            self.semantic = self._semantic_head(len(seg_names))
            remade.append("semantic head")
        self.names, self.seg_names = dict(det_names), dict(seg_names)
        self.criterion = None
        return remade

    def _remake_class_convs(self, nc: int) -> None:
        """New `nc`-class output convolutions in Detect's class branches, with Ultralytics' prior bias."""
        detect = self.model[-1]
        for attr in ("cv3", "one2one_cv3"):
            for branch, stride in zip(getattr(detect, attr, None) or [], detect.stride):
                old = branch[-1]
                new = nn.Conv2d(old.in_channels, nc, 1).to(old.weight.device, old.weight.dtype)
                new.bias.data[:] = math.log(5 / nc / (640 / float(stride)) ** 2)  # as Detect.bias_init
                branch[-1] = new
        detect.nc, detect.no = nc, nc + detect.reg_max * 4
        self.nc = self.yaml["nc"] = nc

    def fuse(self, verbose: bool = True, imgsz: int | list[int] = 640) -> DetSegModel:
        """Fuse Conv+BN in the detector (Ultralytics) and in the semantic head."""
        super().fuse(verbose=False, imgsz=imgsz)
        for m in self.semantic.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                m.conv = fuse_conv_and_bn(m.conv, m.bn)
                delattr(m, "bn")
                m.forward = m.forward_fuse
        if verbose:
            self.info()
        return self

    def _apply(self, fn):
        """Keep the semantic head's stride buffer on the model's device/dtype."""
        super()._apply(fn)
        if getattr(self, "semantic", None) is not None:
            self.semantic.stride = fn(self.semantic.stride)
        return self


class frozen_statistics:
    """Context: the BatchNorm layers in `modules` run in eval mode (running statistics used, not moved)."""

    def __init__(self, modules: list[nn.Module]):
        self.norms = [m for module in modules for m in module.modules() if isinstance(m, nn.BatchNorm2d)]

    def __enter__(self) -> None:
        self.modes = [m.training for m in self.norms]
        for m in self.norms:
            m.eval()

    def __exit__(self, *exc: Any) -> None:
        for m, mode in zip(self.norms, self.modes):
            m.train(mode)


def load_model_cfg(name: str | Path | dict) -> dict:
    """Model yaml dict for a stock detection name ('yolo26n', 'yolov8s.yaml', any scale) or a user yaml path."""
    if isinstance(name, dict):
        return deepcopy(name)
    name = str(name)
    path = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    try:
        cfg = yaml_model_load(path)
    except (FileNotFoundError, OSError):
        raise UserInputError(
            f"--model: unknown model '{name}' (use a stock name like yolo26n, yolo11s, yolov8m, or a yaml path)"
        ) from None
    except (yaml.YAMLError, ValueError) as e:  # Ultralytics raises ValueError("YAML syntax error in ...")
        raise UserInputError(f"--model: {name} is not a valid yaml file ({str(e).splitlines()[0]})") from None
    layers = (cfg.get("backbone") or []) + (cfg.get("head") or [])
    if not layers or not all(isinstance(layer, list) and len(layer) == 4 for layer in layers):
        raise UserInputError(f"--model: {name} needs backbone and head lists of [from, repeats, module, args] rows")
    for layer in layers:
        if not known_module(str(layer[2])):
            raise UserInputError(f"--model: {name} names an unknown module '{layer[2]}'")
    if layers[-1][2] != "Detect":
        raise UserInputError(f"--model: {name} is not a detection model yaml (its last layer is {layers[-1][2]})")
    return cfg


def build_model(cfg: str | Path | dict, det_nc: int, seg_nc: int, verbose: bool = False) -> DetSegModel:
    """Build a DetSegModel from a stock detection name, a yaml path or a yaml dict."""
    return DetSegModel(load_model_cfg(cfg), nc=det_nc, seg_nc=seg_nc, verbose=verbose)
