"""Every Ultralytics touch point of yoloseghw/utils/ultralytics.py, checked against the installed Ultralytics.

Run `python -m pytest -k ultralytics` after installing a newer Ultralytics: a failure names the touch point that
moved, and the version these were written for.
"""

from __future__ import annotations

import ast
import inspect
import logging
from pathlib import Path

import pytest
import ultralytics
from ultralytics.data.dataset import SemanticDataset, YOLODataset
from ultralytics.engine import trainer as ultralytics_trainer
from ultralytics.engine.trainer import BaseTrainer
from ultralytics.models.yolo.detect import DetectionTrainer, DetectionValidator
from ultralytics.nn import tasks as ultralytics_tasks

from yoloseghw.utils import ultralytics as touch

MOVED = f"(written for Ultralytics {touch.TESTED_VERSION}, installed {ultralytics.__version__})"


def source(obj) -> str:
    return inspect.getsource(obj)


def test_ultralytics_version_is_in_the_declared_range():
    """pyproject.toml declares the range these touch points were tested on."""
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert f"ultralytics>={touch.TESTED_VERSION},<8.5" in pyproject
    major, minor, *_ = (int(x) for x in ultralytics.__version__.split("."))
    assert (major, minor) == (8, 4), f"yoloseg supports Ultralytics 8.4 {MOVED}"


def test_ultralytics_log_sets_verbose_and_levels():
    """Ultralytics' progress bars read the module global VERBOSE; the levels of its LOGGER and handlers follow."""
    import ultralytics.utils as ultralytics_utils

    assert hasattr(ultralytics_utils, "VERBOSE"), f"ultralytics.utils.VERBOSE is gone {MOVED}"
    before = ultralytics_utils.VERBOSE
    with touch.ultralytics_log(logging.INFO):
        assert ultralytics_utils.VERBOSE is True and ultralytics_utils.LOGGER.level == logging.INFO
    with touch.ultralytics_log(logging.ERROR):
        assert ultralytics_utils.VERBOSE is False
    assert ultralytics_utils.VERBOSE == before


def test_no_labels_warning_text():
    """YOLODataset still says a split has no labels in the words caught_warnings waits for."""
    from ultralytics.data import dataset

    assert touch.NO_LABELS in source(dataset), f"YOLODataset's no-labels warning changed {MOVED}"
    with touch.ultralytics_log(logging.ERROR), touch.caught_warnings(touch.NO_LABELS) as caught:
        ultralytics.utils.LOGGER.warning(f"x: {touch.NO_LABELS} in y")
    assert caught == [f"x: {touch.NO_LABELS} in y"]


def test_error_text_of_get_cfg():
    """get_cfg's error for an unknown key, on one line without its usage dump."""
    from ultralytics.cfg import get_cfg

    with pytest.raises(SyntaxError) as e:
        get_cfg(overrides={"not_a_key": 1})
    text = touch.error_text(e.value)
    assert text.startswith("'not_a_key' is not a valid YOLO argument") and "\n" not in text, f"{text} {MOVED}"


def test_dataset_error_text(tmp_path):
    """check_det_dataset's error for missing images, without its download advice."""
    from ultralytics.data.utils import check_det_dataset

    yaml = tmp_path / "d.yaml"
    yaml.write_text(f"path: {tmp_path}\ntrain: images/train\nval: images/val\nnames: {{0: a}}\n")
    with pytest.raises(Exception) as e:
        check_det_dataset(str(yaml), autodownload=False)
    text = touch.dataset_error_text(e.value)
    assert "images" in text and " Note " not in text and "\n" not in text, f"{text} {MOVED}"


def test_device_and_source_error_texts():
    """select_device and load_inference_source still lead their errors with the sentence yoloseg shows."""
    from ultralytics.data.build import load_inference_source
    from ultralytics.utils.torch_utils import select_device

    with pytest.raises(ValueError) as e:
        select_device("99", verbose=False)
    assert "99" in touch.device_error_text(e.value), f"select_device's error changed {MOVED}"
    with pytest.raises(FileNotFoundError) as f:
        load_inference_source("/nonexistent/x.jpg")
    assert "nonexistent" in touch.source_error_text(f.value), f"load_inference_source's error changed {MOVED}"


def test_resumable_args_are_check_resumes_allowed_set():
    """RESUMABLE_ARGS is BaseTrainer.check_resume's `allowed` set, and RESUME_PASSED what it sets itself."""
    tree = ast.parse(inspect.cleandoc("\n" + source(BaseTrainer.check_resume)))
    sets = {
        node.targets[0].id: {elt.value for elt in node.value.elts}
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Set) and isinstance(node.targets[0], ast.Name)
    }
    assert sets.get("allowed") == set(touch.RESUMABLE_ARGS), f"check_resume's allowed arguments changed {MOVED}"
    passed = [n for n in ast.walk(tree) if isinstance(n, ast.Set) and {"model", "data"} <= {e.value for e in n.elts}]
    assert passed and {e.value for e in passed[0].elts} == set(touch.RESUME_PASSED), f"check_resume changed {MOVED}"
    assert touch.refused_resume_args({"imgsz": 64, "lr0": 0.5, "epochs": 3}, {"lr0": 0.01, "epochs": 3}) == ["lr0"]


def test_scan_cache_hook_and_messages(pair_copy):
    """`_load_or_scan_cache` still returns (cache, exists) with the scan's messages; an out-of-range class id is
    among them in the words fatal_scan_message looks for."""
    from yoloseghw.data.dataset import DetDataset, load_data_config
    from yoloseghw.utils.options import ultralytics_args

    for cls in (YOLODataset, SemanticDataset):
        assert hasattr(cls, "_load_or_scan_cache"), f"{cls.__name__}._load_or_scan_cache is gone {MOVED}"
    det_yaml = pair_copy[0]
    label = next((det_yaml.parent / "labels" / "train").glob("*.txt"))
    label.write_text("99 0.5 0.5 0.2 0.2\n")
    data = load_data_config(det_yaml, "det")
    args = ultralytics_args({"imgsz": 64}, "train")
    dataset = DetDataset(img_path=data["train"], imgsz=64, augment=False, hyp=args, data=data, task="detect")
    found = touch.fatal_scan_message(dataset.scan_messages)
    assert found and label.stem in found[0] and "exceeds dataset class count" in found[1], f"{found} {MOVED}"


def test_semantic_class_counts_and_weights(tiny_pair):
    """SemanticSegmentationTrainer's class counting and cls_pw weights, run on one dataset through stand-ins."""
    import numpy as np

    from yoloseghw.data.dataset import build_dataset, load_data_config
    from yoloseghw.utils.options import ultralytics_args

    args = ultralytics_args({"imgsz": 64, "cls_pw": 0.5}, "train")
    data = load_data_config(tiny_pair[1], "seg")
    dataset = build_dataset(args, data, "train", "seg", 32, 4)
    counts = touch.semantic_class_counts(args, dataset, len(data["names"]))
    assert counts.shape == (len(data["names"]),) and counts.sum() > 0, f"get_class_counts changed {MOVED}"
    weights = touch.semantic_class_weights(type("T", (), {"args": args})(), counts)
    assert np.all(np.isfinite(weights)) and len(weights) == len(counts), f"compute_class_weights changed {MOVED}"


def test_plot_training_labels_reads_the_loaders_dataset():
    """loader_of works because DetectionTrainer.plot_training_labels reads `train_loader.dataset.labels`."""
    assert "self.train_loader.dataset.labels" in source(DetectionTrainer.plot_training_labels), MOVED


def test_prepare_validator_sets_the_metrics_up():
    """DetectionValidator.init_metrics takes the names and end2end off what it is given."""
    import torch

    validator = DetectionValidator()
    touch.prepare_validator(validator, {"names": {0: "a", 1: "b"}}, torch.device("cpu"), {0: "a", 1: "b"}, False)
    assert validator.names == {0: "a", 1: "b"} and validator.training, f"init_metrics changed {MOVED}"


def test_trainer_set_up_steps_exist_and_are_called():
    """The private set-up steps TrainerHooks routes to public hooks exist, and the loop still calls them."""
    for name in ("_setup_train", "_setup_ddp", "_setup_scheduler"):
        assert callable(getattr(BaseTrainer, name, None)), f"BaseTrainer.{name} is gone {MOVED}"
    assert "self._setup_train()" in source(BaseTrainer._do_train), MOVED
    assert "self._setup_scheduler()" in source(BaseTrainer), MOVED


def test_ddp_patch_points():
    """The DDP launcher calls `subprocess.run` of ultralytics.engine.trainer; the set-up wraps with
    nn.parallel.DistributedDataParallel."""
    assert hasattr(ultralytics_trainer, "subprocess"), MOVED
    assert "subprocess.run(" in source(BaseTrainer.train), f"the DDP launcher changed {MOVED}"
    assert "nn.parallel.DistributedDataParallel(" in source(BaseTrainer._setup_train), MOVED
    seen = []
    with touch.ddp_launcher(lambda *a, **k: seen.append(a)):
        ultralytics_trainer.subprocess.run(["x"])
    assert seen == [(["x"],)]


def test_parse_model_resolution_and_layer_attributes():
    """parse_model resolves module names from ultralytics.nn.tasks' globals and keeps i, f, type, np on layers."""
    parse = source(ultralytics_tasks.parse_model)
    assert "globals()[m]" in parse and "m_.i, m_.f, m_.type = i, f, t" in parse and "m_.np =" in parse, MOVED
    assert touch.known_module("Detect") and touch.known_module("nn.Upsample") and not touch.known_module("Nope")


def test_detection_model_forward_goes_through_predict():
    """DetSegModel overrides the public `predict`: BaseModel.forward still calls it for an image tensor."""
    assert "self.predict(" in source(ultralytics_tasks.BaseModel.forward), MOVED


@pytest.mark.parametrize("cfg", ["yolo26n.yaml", "yolo11n.yaml"])
def test_detection_loss_branches_and_their_assignment(cfg):
    """E2ELoss keeps its branch losses and gains as attributes (one2many, one2one, o2m, o2o); each branch's
    v8DetectionLoss returns its task-aligned assignment from get_assigned_targets_and_loss."""
    import torch
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.loss import v8DetectionLoss

    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=2, verbose=False)
    model.args = get_cfg()
    loss = model.init_criterion()
    preds = model.train()(torch.rand(2, 3, 64, 64))
    preds = preds if isinstance(preds, dict) and "one2one" in preds else loss.parse_output(preds)
    branches = touch.detection_loss_branches(loss, preds)
    assert len(branches) == (2 if "one2one" in preds else 1), MOVED
    assert abs(sum(gain for gain, _, _ in branches) - 1.0) < 1e-6, MOVED
    batch = {"batch_idx": torch.tensor([0.0]), "cls": torch.tensor([[1.0]]), "bboxes": torch.tensor([[0.5] * 4])}
    for _, branch, out in branches:
        assert isinstance(branch, v8DetectionLoss), MOVED
        fg, gt_index, boxes, box_loss, cls_gain = touch.assigned_box_loss(branch, out, batch)
        assert fg.shape == gt_index.shape == boxes.shape[:2] and fg[0].any() and not fg[1].any(), MOVED
        assert torch.allclose(boxes[0][fg[0]], torch.tensor([16.0, 16.0, 48.0, 48.0])), MOVED  # pixels, xyxy
        assert box_loss.requires_grad and cls_gain == get_cfg().cls, MOVED
