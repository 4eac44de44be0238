"""DetSegModel: forward in train / eval / export modes, fuse, loss routing, names."""

from __future__ import annotations

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.nn.modules import Detect
from ultralytics.nn.modules.head import SemanticSegment
from ultralytics.utils import DEFAULT_CFG

from yoloseghw.nn.semantic_head import SEG_HEADS
from yoloseghw.nn.tasks import build_model, load_model_cfg

FAMILIES = ["yolov8n", "yolo11n", "yolo26n"]


@pytest.mark.parametrize("name, seg_head", [*((f, "conv") for f in FAMILIES), ("yolo26n", "separable")])
def test_forward_all_modes(name, seg_head):
    cfg = {**load_model_cfg(name), "seg_head": seg_head}
    model = build_model(cfg, det_nc=3, seg_nc=5)
    assert type(model.semantic) is SEG_HEADS[seg_head] and model.yaml["seg_head"] == seg_head
    x = torch.rand(2, 3, 64, 96)
    model.train()
    det, (logits, aux) = model(x)
    assert isinstance(det, dict) and logits.shape == (2, 5, 8, 12) and aux.shape == (2, 5, 4, 6)
    model.eval()
    with torch.no_grad():
        det, logits = model(x)
        assert logits.shape == (2, 5, 8, 12)
        y = det[0] if isinstance(det, tuple) else det
        assert y.shape[0] == 2
        model.fuse(verbose=False)
        det_fused, logits_fused = model(x)
        assert torch.allclose(logits, logits_fused, atol=1e-3)
        for m in model.modules():
            if isinstance(m, (Detect, SemanticSegment)):
                m.export, m.format = True, "onnx"
        det_exp, class_map = model(x)
        assert class_map.shape == (2, 64, 96) and class_map.dtype == torch.uint8
        assert isinstance(det_exp, torch.Tensor)


def test_separable_head_is_a_sixth_of_the_classifier_and_keeps_the_rest():
    """Same inputs, outputs and aux head as Ultralytics' head; its classifier has under a sixth of the weights."""
    conv, separable = (build_model({**load_model_cfg("yolo26n"), "seg_head": h}, 3, 11).semantic for h in SEG_HEADS)
    weights = [sum(p.numel() for p in h.classifier.parameters()) for h in (conv, separable)]
    assert weights[1] < weights[0] / 6
    assert [p.shape for p in conv.aux_head.parameters()] == [p.shape for p in separable.aux_head.parameters()]
    assert type(separable).forward is SemanticSegment.forward


def test_unknown_seg_head_is_a_user_error():
    from yoloseghw.utils.errors import UserInputError

    with pytest.raises(UserInputError, match="expected one of conv, separable, got 'wide'"):
        build_model({**load_model_cfg("yolo26n"), "seg_head": "wide"}, 3, 5)


@pytest.mark.parametrize("name", ["yolo11s", "yolo26m.yaml"])
def test_scales_build(name):
    model = build_model(name, det_nc=2, seg_nc=4)
    assert model.semantic.nc == 4 and model.model[-1].nc == 2


def _loss_batch(task: str) -> dict:
    batch = {"img": torch.rand(2, 3, 64, 64), "task": task}
    if task == "det":
        batch.update(
            batch_idx=torch.tensor([0.0, 1.0]),
            cls=torch.tensor([[0.0], [1.0]]),
            bboxes=torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.4, 0.6, 0.2, 0.4]]),
        )
    else:
        batch["semantic_mask"] = torch.randint(0, 4, (2, 64, 64))
    return batch


@pytest.mark.parametrize("task", ["det", "seg"])
def test_loss_routing(task):
    """A seg-only batch gives the detection head no gradient, and a det-only batch none to the semantic head."""
    model = build_model("yolo26n", det_nc=2, seg_nc=4)
    model.args = get_cfg(DEFAULT_CFG)
    model.train()
    loss, items = model.loss(_loss_batch(task))
    loss.backward()
    other = model.model[-1] if task == "seg" else model.semantic
    own = model.semantic if task == "seg" else model.model[-1]
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in other.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in own.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.model[0].parameters())
    assert set(items) == {"box_loss", "cls_loss", "l1_loss", "ce_loss", "dice_loss", "aux_loss"}  # both tasks' names
    assert loss.ndim == 0 and loss > 0


def test_one_task_step_leaves_other_head_statistics():
    """A seg training step must not move Detect's BatchNorm running statistics (and vice versa)."""
    model = build_model("yolo26n", det_nc=2, seg_nc=4)
    model.args = get_cfg(DEFAULT_CFG)
    model.train()
    for task, other in (("seg", model.model[-1]), ("det", model.semantic)):
        before = {k: v.clone() for k, v in other.state_dict().items()}
        model.loss(_loss_batch(task))
        assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())


def test_user_yaml(tmp_path):
    """A user's own detection yaml (here: YOLO11 with a custom width and the separable head) builds like a stock
    name."""
    from ultralytics.utils import YAML

    cfg = load_model_cfg("yolo11n")
    cfg.pop("yaml_file"), cfg.pop("scale")
    cfg["scales"], cfg["seg_head"] = {"t": [0.33, 0.125, 1024]}, "separable"
    YAML.save(tmp_path / "tiny-yolo.yaml", cfg)
    model = build_model(tmp_path / "tiny-yolo.yaml", det_nc=2, seg_nc=3)
    assert model.semantic.nc == 3 and model.model[-1].nc == 2 and type(model.semantic) is SEG_HEADS["separable"]
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64))[1].shape == (1, 3, 8, 8)


def test_seg_step_skips_the_p5_only_layers():
    """A segmentation step stops after the last layer the semantic head reads: later neck layers neither run nor
    move their BatchNorm statistics."""
    model = build_model("yolo26n", det_nc=2, seg_nc=4)
    model.args = get_cfg(DEFAULT_CFG)
    model.train()
    after = [m for m in model.model if m.i > max(model.semantic.f)]
    ran = []
    for m in after:
        m.register_forward_hook(lambda module, i, o: ran.append(module.i))
    before = {k: v.clone() for m in after for k, v in m.state_dict().items()}
    model.loss(_loss_batch("seg"))
    assert after and not ran
    assert all(torch.equal(before[k], v) for m in after for k, v in m.state_dict().items())


def test_joint_batch_routes_images_to_their_heads():
    """A joint batch: one forward of the shared layers, Detect sees the det images, the semantic head the rest."""
    model = build_model("yolo26n", det_nc=2, seg_nc=4)
    model.args = get_cfg(DEFAULT_CFG)
    model.train()
    det, seg = _loss_batch("det"), _loss_batch("seg")
    seg["img"] = seg["img"][:1]
    seg["semantic_mask"] = seg["semantic_mask"][:1]
    batch = {**det, **seg, "img": torch.cat([det["img"], seg["img"]]), "task": "joint", "n_det": 2}
    det_out, (logits, aux) = model.forward_heads(batch["img"], ("det", "seg"), 2)
    assert logits.shape[0] == 1 and det_out["one2many"]["scores"].shape[0] == 2
    loss, items = model.loss(batch)
    assert loss > 0 and items["box_loss"] > 0 and items["ce_loss"] > 0
