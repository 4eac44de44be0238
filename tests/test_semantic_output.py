"""Semantic output kinds: each exports, runs in ONNX Runtime and the predictor, and agrees with PyTorch run alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from ultralytics.data.augment import LetterBox

from tests.helpers import assert_one_line_error, run
from yoloseghw import YOLOSeg
from yoloseghw.engine.predictor import semantic_to_image
from yoloseghw.nn.backends import OnnxBackend
from yoloseghw.nn.semantic_output import DEFAULT_SEMANTIC_OUTPUT, KINDS, SemanticOutput
from yoloseghw.utils.errors import UserInputError

KINDS_TESTED = ("classmap", "classmap4", "classmap8", "logits", "logits8")  # classmap2: classmap4's code path


@pytest.fixture(scope="module")
def folder(trained, tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kinds")


def _export(trained: Path, folder: Path, kind: str) -> tuple[Path, Path]:
    """The checkpoint copy and ONNX file of `kind`, exported once per module (a second export would need --force)."""
    pt = folder / f"{kind}.pt"
    if not pt.is_file():
        shutil.copy(trained, pt)
        YOLOSeg(pt).export(semantic=kind)
    return pt, pt.with_suffix(".onnx")


def test_kinds_parse_and_unknown_is_an_error():
    assert DEFAULT_SEMANTIC_OUTPUT in KINDS
    assert SemanticOutput.parse("classmap4") == SemanticOutput("classmap4", 4, True)
    assert SemanticOutput.parse("logits") == SemanticOutput("logits", 1, False)
    with pytest.raises(UserInputError, match="--semantic: expected one of classmap, classmap2"):
        SemanticOutput.parse("classmap16")


@pytest.mark.parametrize("kind", KINDS_TESTED)
def test_kind_exports_runs_and_agrees_with_pytorch(kind, trained, folder, tiny_pair):
    """The ONNX output has the kind's shape and type; predictions at the original size agree with PyTorch's."""
    pt, path = _export(trained, folder, kind)
    spec = SemanticOutput.parse(kind)
    output = onnx.load(str(path)).graph.output[1].type.tensor_type
    size = 64 // spec.stride
    if spec.classmap:
        assert output.elem_type == onnx.TensorProto.UINT8
        assert [d.dim_value for d in output.shape.dim] == [1, size, size]
    else:
        assert output.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_value for d in output.shape.dim] == [1, 5, size, size]
    assert OnnxBackend(path, "cpu", threads=1).semantic_output == spec  # read from the metadata
    assert YOLOSeg(path).info()["semantic output"] == kind

    images = tiny_pair[1].parent / "images" / "val"
    odd = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)  # letterboxed with padding
    (r,) = YOLOSeg(path).predict(odd, threads=1)
    assert r.semantic_mask.shape == (70, 90) and r.semantic_mask.dtype == np.uint8
    report = YOLOSeg(pt).compare_with(path, images, conf=0.001, threads=1)  # PyTorch computes the same kind
    assert report["mask_agreement"] >= 0.995 and report["box_match_rate"] == 1.0, report


def test_raw_logits_export_reproduces_pytorch_val(trained, folder, tiny_pair):
    """logits8 is the head's own output: ONNX Runtime val equals PyTorch val; every kind's val runs on its output."""
    det, seg = tiny_pair
    pt, path = _export(trained, folder, "logits8")
    reference = YOLOSeg(pt).val(seg=seg, batch=1, verbose=False)["metrics"]
    metrics = YOLOSeg(path).val(seg=seg, threads=1, verbose=False)["metrics"]
    assert metrics["metrics/mIoU"] == pytest.approx(reference["metrics/mIoU"], abs=1e-3)
    _, coarse = _export(trained, folder, "classmap8")
    coarse_metrics = YOLOSeg(coarse).val(seg=seg, threads=1, verbose=False)["metrics"]
    assert 0 < coarse_metrics["metrics/mIoU"] and abs(coarse_metrics["metrics/mIoU"] - reference["metrics/mIoU"]) < 0.1


@pytest.mark.parametrize("stride", [1, 2, 4, 8])
def test_class_map_is_resized_once_and_exactly_to_the_image(stride):
    """A 64 x 32 image in a 64 x 64 letterbox (16 rows of padding above and below): the stride-s class map's content
    rows come back at the image size, each output pixel the class of the map pixel it falls in."""
    image = np.zeros((32, 64, 3), np.uint8)
    box = LetterBox((64, 64), auto=False).get_params({"img": image})
    n = 64 // stride
    cmap = torch.arange(n * n, dtype=torch.int32).reshape(n, n).remainder(251).to(torch.uint8)
    mask = semantic_to_image(cmap, box, 64)
    content = cmap[16 // stride : 48 // stride].numpy()
    assert mask.shape == (32, 64)
    assert (mask == content.repeat(stride, 0).repeat(stride, 1)).all()
    centres = (torch.arange(n) + 0.5) * stride  # logits linear in x: bilinear resizing reproduces them exactly
    logits = torch.stack([torch.zeros(n, n), (centres - 20.3).expand(n, n)])
    assert (semantic_to_image(logits, box, 64) == (np.arange(64) >= 20)[None].repeat(32, 0)).all()


def test_pytorch_semantic_choice_and_onnx_mismatch(trained, folder, tiny_pair, tmp_path):
    image = np.zeros((64, 64, 3), np.uint8)
    (r,) = YOLOSeg(trained).predict(image, semantic="logits")
    assert r.semantic_mask.shape == (64, 64)
    _, path = _export(trained, folder, "classmap8")
    source = tiny_pair[1].parent / "images" / "val"
    result = run("predict", source, "--weights", path, "--semantic", "logits", "--project", tmp_path)
    assert_one_line_error(result, "exported with semantic output 'classmap8'")
    assert not list(tmp_path.iterdir())  # no predict folder left behind
    assert_one_line_error(run("export", "--weights", trained, "--semantic", "classmap3"), "--semantic")


def test_speed_benchmark_pairs_each_rounds_medians_and_labels_runs():
    from yoloseghw.experiments.onnx_speed import joint_labels, round_ratios

    blocks = {
        "joint": [[10.0, 12.0, 11.0], [20.0, 22.0, 21.0], [10.0, 10.0, 10.0]],
        "detect": [[10.0] * 3, [20.0] * 3, [10.0] * 3],
        "semantic": [[10.0] * 3, [20.0] * 3, [30.0] * 3],
    }  # rounds: 11/20, 21/40 (a slow spell for all three), 10/40
    assert round_ratios(blocks, "joint")["median"] == 0.525
    assert joint_labels([Path("a/weights/best.pt")]) == ["joint"]
    assert joint_labels([Path("runs/e20/weights/best.pt"), Path("x/sep.pt")]) == ["joint-e20", "joint-sep"]
    with pytest.raises(SystemExit, match="distinct run folder names"):
        joint_labels([Path("a/weights/best.pt"), Path("a/weights/best.pt")])
