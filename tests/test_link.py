"""Cross-task supervision (`--link`): boxes teach masks, masks teach boxes, for the linked classes only."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import yaml
from ultralytics.cfg import get_cfg
from ultralytics.utils.tal import make_anchors

from tests.helpers import assert_one_line_error, run
from yoloseghw import YOLOSeg
from yoloseghw.engine.checkpoint import load_model
from yoloseghw.nn import link as link_module
from yoloseghw.nn.boxinst import cells, pairwise_loss, projection_loss
from yoloseghw.nn.link import (
    BOX2MASK_LOSS,
    MASK2BOX_LOSS,
    BoxCover,
    BoxesTeachMasks,
    MasksTeachBoxes,
    components,
    feature_scores,
    likeliest,
    link_terms,
    parse_link,
    union_bce,
)
from yoloseghw.nn.tasks import DetSegModel
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.options import check_options

from .conftest import TINY

DET = {0: "car", 1: "person", 2: "sign"}  # the demo's class lists
SEG = {0: "sky", 1: "road", 2: "vegetation", 3: "car", 4: "person"}
CAR_DET, CAR_SEG = 0, 3
LINK = {CAR_DET: CAR_SEG}  # car=car: person and sign (det), sky, road, vegetation, person (seg) are unlinked


def tiny_model(cfg: str = "yolo26n.yaml") -> DetSegModel:
    torch.manual_seed(0)
    model = DetSegModel(cfg, nc=3, seg_nc=5, verbose=False)
    model.args = get_cfg()
    model.link = dict(LINK)
    model.loss_term_names = (BOX2MASK_LOSS, MASK2BOX_LOSS)
    model.loss_terms = {term.name: term for term in link_terms(LINK, (1.0, 1.0))}
    return model.train()


def det_batch() -> dict:
    """Two 64 x 64 box images: a car and a person in the first, a sign in the second."""
    g = torch.Generator().manual_seed(0)
    return {
        "task": "det",
        "img": torch.rand(2, 3, 64, 64, generator=g),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[0.0], [1.0], [2.0]]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.7, 0.7, 0.2, 0.3], [0.5, 0.5, 0.4, 0.4]]),
    }


def seg_batch() -> dict:
    """Two 64 x 64 mask images: road everywhere, a separable 20 x 16 car and a person in each, 255 in a corner."""
    mask = torch.ones(2, 64, 64, dtype=torch.long)
    mask[:, 10:26, 8:28] = CAR_SEG
    mask[:, 40:60, 40:50] = 4
    mask[:, :4, :4] = 255
    g = torch.Generator().manual_seed(1)
    return {"task": "seg", "img": torch.rand(2, 3, 64, 64, generator=g), "semantic_mask": mask}


def class_rows_grad(module: torch.nn.Module, nc: int) -> torch.Tensor:
    """[nc] the absolute gradient each output class received in the class convolutions of `module` (the layers
    whose output has one channel per class)."""
    total = torch.zeros(nc)
    for p in module.parameters():
        if p.shape[0] == nc and p.grad is not None:
            total += p.grad.abs().reshape(nc, -1).sum(1)
    return total


def test_parse_link_by_name_auto_and_unknown_names():
    assert parse_link("car=car, person=person", DET, SEG) == {0: 3, 1: 4}
    assert parse_link("auto", DET, SEG) == {0: 3, 1: 4}
    assert parse_link("Car=car,sign=car", DET, SEG) == {0: 3, 2: 3}  # several detection classes, one semantic
    assert parse_link(None, DET, SEG) == {}
    with pytest.raises(UserInputError, match="no detection class 'bus'"):
        parse_link("bus=car", DET, SEG)
    with pytest.raises(UserInputError, match="no semantic class 'pedestrian'"):
        parse_link("person=pedestrian", DET, SEG)
    with pytest.raises(UserInputError, match="det=seg pairs"):
        parse_link("car", DET, SEG)
    with pytest.raises(UserInputError, match="share no class name"):
        parse_link("auto", DET, {0: "sky"})


def test_link_weight_defaults_to_the_measured_pair_and_takes_one_or_two_weights():
    """Box-to-mask 0.1, mask-to-box 0.25 unless given (docs/benchmarks.md, "--link"); one weight sets both."""
    assert check_options({}, 10)["link_weight"] == (0.1, 0.25)
    assert check_options({"link_weight": "0.5"}, 10)["link_weight"] == (0.5, 0.5)
    assert check_options({"link_weight": "1,0"}, 10)["link_weight"] == (1.0, 0.0)
    with pytest.raises(UserInputError, match="--link-weight"):
        check_options({"link_weight": "-1"}, 10)


def test_projection_loss_is_zero_for_a_perfect_mask_inside_its_box():
    prob = torch.zeros(8, 8)
    prob[2:6, 1:5] = 1.0  # the class fills exactly the box's cells
    assert float(projection_loss(prob, (1, 2, 5, 6))) == pytest.approx(0.0, abs=1e-6)
    cross = torch.zeros(8, 8)  # a plus sign: every row and column of the box still holds the class
    cross[3, 1:5], cross[2:6, 2] = 1.0, 1.0
    assert float(projection_loss(cross, (1, 2, 5, 6))) == pytest.approx(0.0, abs=1e-6)
    missing = prob.clone()
    missing[:, 4] = 0.0  # a box column the mask never reaches
    assert float(projection_loss(missing, (1, 2, 5, 6))) > 1.0


def test_box_term_is_zero_for_logits_that_match_the_boxes_and_positive_otherwise():
    """The whole box-to-mask term: the linked class certain inside its box, absent outside, gives zero."""
    batch = det_batch()
    batch["img"][0] = 0.5
    batch["img"][0, 0, 8:32, 8:32] = 1.0  # a red car on grey: the box's cells 1..3, so that the colour edges agree
    logits = torch.zeros(2, 5, 8, 8)
    logits[:, CAR_SEG] = -30.0
    logits[0, CAR_SEG, 1:4, 1:4] = 30.0  # the car box 0.15-0.45 of the image covers cells 1..3 of 8
    term = BoxesTeachMasks(LINK, 1.0)
    assert float(term(None, (None, logits), batch)) == pytest.approx(0.0, abs=1e-5)
    logits[0, CAR_SEG, 6, 6] = 30.0  # a car where no car box is
    assert float(term(None, (None, logits), batch)) > 0.01


def test_box_cells_touched_and_held():
    box = torch.tensor([0.3, 0.3, 0.3, 0.3])  # 0.15-0.45 of 8 cells: 1.2-3.6
    assert cells(box, 8, 8) == (1, 1, 4, 4)  # the cells it touches
    assert cells(box, 8, 8, inner=True) == (1, 1, 4, 4)  # centres 1.5, 2.5, 3.5 are inside
    assert cells(torch.tensor([0.5, 0.5, 0.3, 0.3]), 8, 8) == (2, 2, 6, 6)  # 2.8-5.2
    assert cells(torch.tensor([0.5, 0.5, 0.3, 0.3]), 8, 8, inner=True) == (3, 3, 5, 5)  # centres 3.5, 4.5
    assert cells(torch.tensor([0.51, 0.51, 0.02, 0.02]), 8, 8, inner=True) == (4, 4, 5, 5)  # under a cell: its centre


def test_pairwise_loss_keeps_a_box_mask_off_the_background_the_box_holds():
    lab = torch.zeros(3, 8, 8)
    lab[0, 2:4, 2:6] = 60.0  # an object filling the box's top half; its bottom half is background, as outside
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[2:6, 2:6] = True
    follows = torch.zeros(8, 8)
    follows[2:4, 2:6] = 1.0
    assert float(pairwise_loss(follows, lab, inside)) == pytest.approx(0.0, abs=1e-5)
    fills = torch.zeros(8, 8)
    fills[2:6, 2:6] = 1.0  # the whole box: its background cells disagree with their like-coloured neighbours outside
    assert float(pairwise_loss(fills, lab, inside)) > 1.0
    assert float(projection_loss(fills, (2, 2, 6, 6))) == pytest.approx(0.0, abs=1e-6)  # projection alone is blind


def test_a_merged_component_is_not_a_pseudo_box():
    mask = np.zeros((64, 64), np.uint8)
    mask[5:25, 5:25] = 3  # one car
    mask[30:45, 30:45] = 3  # two cars touching at a corner: one component that fills half of its box
    mask[45:60, 45:60] = 3
    mask[2:6, 50:54] = 3  # too small to tell
    assert components(mask, 3) == [(5, 5, 25, 25)]


@pytest.mark.parametrize("cfg", ["yolo26n.yaml", "yolov8n.yaml"])
def test_unlinked_classes_get_exactly_zero_gradient_from_the_other_datasets_images(cfg):
    """A mask image trains Detect's score only for the linked detection class (car), a box image the semantic
    logit only for the linked semantic class (car); every other class gets exactly zero gradient there."""
    model = tiny_model(cfg)
    loss, items = model.loss(seg_batch())
    loss.backward()
    det_grad = class_rows_grad(model.model[-1], 3)
    assert items[MASK2BOX_LOSS] > 0 and items[BOX2MASK_LOSS] == 0
    assert det_grad[CAR_DET] > 0 and torch.equal(det_grad[1:], torch.zeros(2))

    model = tiny_model(cfg)
    loss, items = model.loss(det_batch())
    loss.backward()
    seg_grad = class_rows_grad(model.semantic, 5)
    assert items[BOX2MASK_LOSS] > 0 and items[MASK2BOX_LOSS] == 0
    assert seg_grad[CAR_SEG] > 0
    assert torch.equal(seg_grad[[0, 1, 2, 4]], torch.zeros(4))


def test_without_link_the_other_datasets_images_teach_neither_head():
    model = tiny_model()
    model.loss_terms, model.loss_term_names = {}, ()
    model.loss(seg_batch())[0].backward()
    assert torch.equal(class_rows_grad(model.model[-1], 3), torch.zeros(3))


def test_a_direction_of_weight_zero_has_no_term_and_runs_no_other_head():
    """--link-weight 1,0: box images teach masks; mask images run the semantic head alone, as without --link."""
    model = tiny_model()
    model.loss_terms = {term.name: term for term in link_terms(LINK, (1.0, 0.0))}
    assert list(model.loss_terms) == [BOX2MASK_LOSS]
    assert model.training_heads("seg") == ("seg",) and model.training_heads("det") == ("det", "seg")
    loss, items = model.loss(seg_batch())
    loss.backward()
    assert float(items[MASK2BOX_LOSS]) == 0.0
    assert torch.equal(class_rows_grad(model.model[-1], 3), torch.zeros(3))


def kept_feature_scores(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The logits the pseudo-boxes' class term is taken on (`feature_scores`), kept with their gradient."""
    kept = []

    def keeping(cls_head: torch.nn.Module, feats: list[torch.Tensor]) -> torch.Tensor:
        out = feature_scores(cls_head, feats)
        out.retain_grad()
        kept.append(out)
        return out

    monkeypatch.setattr(link_module, "feature_scores", keeping)
    return kept


def test_mask_term_rewards_the_anchors_the_assigner_gives_a_separable_component_only(monkeypatch):
    """A pseudo-box goes through Ultralytics' task-aligned assigner, branch by branch: the term pulls the car score
    up (and only the car score) at anchors whose centres lie in the car, on the one-to-many branch, through the
    features only (the class branch's own scores get no pull), and teaches both branches' boxes; the anchors centred
    on labelled pixels outside the car's box are pushed down on the class branch's own scores, as the detection
    loss's negatives are, and no others. A mask of two touching cars gives no pseudo-box: only the negatives outside
    both cars' boxes are taught."""
    kept = kept_feature_scores(monkeypatch)
    model = tiny_model()
    batch = seg_batch()
    det, _ = model.forward_heads(batch["img"], ("det", "seg"))
    for branch in ("one2many", "one2one"):
        det[branch]["scores"].retain_grad()
        det[branch]["boxes"].retain_grad()
    term = MasksTeachBoxes(LINK, 1.0)
    with_box = term(model, (det, None), batch)
    with_box.backward()
    centres = anchor_centres(det["one2many"]["feats"], model.model[-1].stride)
    x, y = centres.long().unbind(1)
    inside = (centres[:, 0] > 8) & (centres[:, 0] < 28) & (centres[:, 1] > 10) & (centres[:, 1] < 26)
    background = (batch["semantic_mask"][0, y, x] != 255) & ~((x >= 8) & (x < 28) & (y >= 10) & (y < 26))
    assert len(kept) == 1  # the one-to-many branch's; the one-to-one branch learns the box only
    grad = kept[0].grad  # [B, nc, anchors]
    pulled = grad[:, CAR_DET] < 0
    assert bool(inside[pulled.nonzero()[:, 1]].all()) and min(pulled.sum(1).tolist()) > 1
    assert not (grad[:, CAR_DET] > 0).any() and torch.equal(grad[:, 1:], torch.zeros_like(grad[:, 1:]))
    for branch in ("one2many", "one2one"):
        grad = det[branch]["scores"].grad
        assert torch.equal(grad[:, CAR_DET] > 0, background.expand(2, -1)), branch  # the negatives, all of them
        assert not (grad < 0).any() and torch.equal(grad[:, 1:], torch.zeros_like(grad[:, 1:])), branch
        assert det[branch]["boxes"].grad.abs().sum() > 0  # the assigned anchors learn the box
    merged = dict(batch, semantic_mask=batch["semantic_mask"].clone())
    merged["semantic_mask"][:, 26:42, 28:48] = CAR_SEG  # a second car touching the first one's corner
    assert term.pseudo_boxes(batch["semantic_mask"][0].numpy()) == [((CAR_DET,), (8, 10, 28, 26))]
    assert term.pseudo_boxes(merged["semantic_mask"][0].numpy()) == []
    det, _ = model.forward_heads(batch["img"], ("det", "seg"))
    det["one2many"]["scores"].retain_grad()
    term(model, (det, None), merged).backward()
    assert len(kept) == 1  # no pseudo-box: the class term is neither taken nor computed
    grad = det["one2many"]["scores"].grad[:, CAR_DET]
    in_either = ((x >= 8) & (x < 28) & (y >= 10) & (y < 26)) | ((x >= 28) & (x < 48) & (y >= 26) & (y < 42))
    assert not (grad < 0).any() and (grad > 0).any() and not (grad[:, in_either] != 0).any()


def test_feature_scores_are_the_class_branchs_logits_and_train_only_its_inputs():
    """The class branch's own logits, with the gradient going to the features and none to the branch's parameters
    or BatchNorm statistics."""
    model = tiny_model()
    detect = model.model[-1]
    det, _ = model.forward_heads(seg_batch()["img"], ("det",))
    feats = [f.detach().requires_grad_() for f in det["one2many"]["feats"]]
    head = detect.one2many["cls_head"]
    stats = {n: b.clone() for n, b in head.named_buffers()}
    scores = feature_scores(head, feats)
    assert all(torch.equal(b, stats[n]) for n, b in head.named_buffers())
    assert torch.allclose(scores, detect.forward_head(feats, **detect.one2many)["scores"], atol=1e-5)
    model.zero_grad()
    scores[:, CAR_DET].sum().backward()
    assert all(p.grad is None for p in head.parameters())
    assert all(f.grad.abs().sum() > 0 for f in feats)


def test_the_class_branch_learns_nothing_from_a_pseudo_box(monkeypatch):
    """A mask image whose only labelled pixels are one separable car, and a detector that finds nothing: no
    negatives and no push, so the term is the pseudo-box's alone, and Detect's class branches get exactly zero
    gradient from it while the features (the neck) do learn."""
    kept = kept_feature_scores(monkeypatch)
    model = tiny_model()
    batch = seg_batch()
    batch["semantic_mask"] = torch.where(batch["semantic_mask"] == CAR_SEG, CAR_SEG, 255)
    det, _ = model.forward_heads(batch["img"], ("det", "seg"))
    MasksTeachBoxes(LINK, 1.0)(model, (det, None), batch).backward()
    detect = model.model[-1]
    assert kept[0].grad[:, CAR_DET].min() < 0
    for seq in [*detect.cv3, *detect.one2one_cv3]:
        assert all(p.grad is None or not p.grad.any() for p in seq.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.model[-2].parameters())


def anchor_centres(feats: list[torch.Tensor], strides: torch.Tensor) -> torch.Tensor:
    """[anchors, 2] Detect's anchor centres in pixels, level after level."""
    points, steps = make_anchors(feats, strides, 0.5)
    return points * steps


def test_a_component_of_a_class_several_detection_classes_link_to_teaches_their_union(monkeypatch):
    """car=car,sign=car: the car component is a pseudo-box of (car, sign). The assigner takes the one the detector
    scores higher inside it (sign, made e times likelier by its bias), and the class term raises both channels at the
    assigned anchors (the union's probability), the likelier one more; person (unlinked) gets nothing."""
    kept = kept_feature_scores(monkeypatch)
    link = {CAR_DET: CAR_SEG, 2: CAR_SEG}
    model = tiny_model()
    detect = model.model[-1]
    for seq in [*detect.cv3, *getattr(detect, "one2one_cv3", [])]:
        seq[-1].bias.data[2] += 1.0
    batch = seg_batch()
    term = MasksTeachBoxes(link, 1.0)
    assert term.pseudo_boxes(batch["semantic_mask"][0].numpy()) == [((CAR_DET, 2), (8, 10, 28, 26))]
    det, _ = model.forward_heads(batch["img"], ("det", "seg"))
    centres = anchor_centres(det["one2many"]["feats"], detect.stride)
    scores = det["one2many"]["scores"][0]
    assert likeliest(scores, centres, (CAR_DET, 2), (8, 10, 28, 26)) == 2
    assert likeliest(scores, centres, (CAR_DET,), (8, 10, 28, 26)) == CAR_DET
    term(model, (det, None), batch).backward()
    grad = kept[0].grad
    x, y = centres.long().unbind(1)
    inside = (x >= 8) & (x < 28) & (y >= 10) & (y < 26)
    pulled = (grad[:, 2] < 0) & inside
    assert pulled.any() and bool((grad[:, CAR_DET][pulled] < 0).all())
    assert grad[:, 2][pulled].sum() < grad[:, CAR_DET][pulled].sum()  # each in proportion to its probability
    assert torch.equal(grad[:, 1], torch.zeros_like(grad[:, 1]))


def test_the_union_loss_is_bce_for_one_class_and_the_union_probability_for_several():
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-4.0, -4.0]])
    target = torch.tensor([0.8, 0.1, 0.5])
    one = union_bce(logits[:, :1], torch.ones(3, 1, dtype=torch.bool), target)
    assert torch.allclose(
        one, torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target, reduction="sum")
    )
    held = torch.tensor([[True, True], [True, False], [True, True]])
    p = 1 - ((1 - logits.sigmoid()) * held + ~held).prod(1)
    expected = torch.nn.functional.binary_cross_entropy(p, target, reduction="sum")
    assert torch.allclose(union_bce(logits, held, target), expected, atol=1e-5)


def test_only_confident_boxes_over_other_classes_pixels_are_pushed_down():
    """A confident car box on road is wrong; one over the car, one over mostly ignored pixels, and an unconfident
    one on road are not."""
    labels = seg_batch()["semantic_mask"][0]
    labels[40:64, 0:30] = 255  # a large ignored corner
    boxes = torch.tensor(
        [
            [8.0, 10.0, 28.0, 26.0],  # the car
            [30.0, 0.0, 60.0, 30.0],  # road (and no car pixel)
            [0.0, 40.0, 30.0, 64.0],  # ignored pixels
            [30.0, 0.0, 60.0, 30.0],  # road again, unconfident
        ]
    )
    probs = torch.tensor([[0.9, 0.9, 0.9, 0.1]])
    assert BoxCover(labels, boxes).wrong(probs, CAR_SEG).tolist() == [[False, True, False, False]]
    assert not BoxCover(labels, boxes).wrong(torch.full((1, 4), 0.1), CAR_SEG).any()


def test_a_confident_detector_on_a_mask_image_is_pushed_down_off_the_car():
    """Car scores made confident everywhere: the term is positive and its gradient lowers the car score (and only
    the car score)."""
    model = tiny_model()
    detect = model.model[-1]
    for seq in [*detect.cv3, *getattr(detect, "one2one_cv3", [])]:
        seq[-1].bias.data[CAR_DET] = 5.0
    batch = seg_batch()
    batch["semantic_mask"][:, 26:42, 28:48] = CAR_SEG  # no pseudo-box: only the push
    det, _ = model.forward_heads(batch["img"], ("det", "seg"))
    loss = MasksTeachBoxes(LINK, 1.0)(model, (det, None), batch)
    loss.backward()
    grads = sum(seq[-1].bias.grad for seq in detect.cv3)
    assert float(loss) > 0 and grads[CAR_DET] > 0 and torch.equal(grads[1:], torch.zeros(2))


def test_link_needs_a_schedule_that_runs_both_heads_and_names_that_exist(tiny_pair, tmp_path):
    unknown = run("train", "--det", tiny_pair[0], "--seg", tiny_pair[1], "--link", "bus=car", "--project", tmp_path)
    assert_one_line_error(unknown, "--link: no detection class 'bus'", "car, person, sign")
    joint = run(
        "train", "--det", tiny_pair[0], "--seg", tiny_pair[1], "--link", "auto", "--schedule", "joint",
        "--project", tmp_path,
    )  # fmt: skip
    assert_one_line_error(joint, "--link", "joint")
    weight = run("train", "--det", tiny_pair[0], "--seg", tiny_pair[1], "--link-weight", "1,x", "--project", tmp_path)
    assert_one_line_error(weight, "--link-weight")
    assert not any(tmp_path.iterdir())  # no run folder


def test_link_is_logged_stored_and_survives_resume_and_export(tiny_pair, tmp_path):
    """Its loss items are results.csv columns (b2m_loss on det steps, m2b_loss on seg steps); pair.yaml, the
    checkpoint, info and the export metadata keep the link; a resume keeps it and its terms."""

    def stop_after_first(trainer):
        if trainer.epoch == 0:
            raise KeyboardInterrupt

    m = YOLOSeg("yolo26n")
    m.add_callback("on_fit_epoch_end", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        m.train(det=tiny_pair[0], seg=tiny_pair[1], project=tmp_path, link="car=car,person=person",
                link_weight="1,0.5", **{**TINY, "epochs": 2})  # fmt: skip
    run_dir = tmp_path / "train"
    pair = yaml.safe_load((run_dir / "pair.yaml").read_text())
    assert pair["link"] == "car=car,person=person" and pair["link_weight"] == "1,0.5"
    seen = {}
    resumed = YOLOSeg()
    resumed.add_callback("on_train_start", lambda t: seen.update(terms=sorted(t.model.loss_terms)))
    resumed.train(resume=run_dir, workers=0)
    assert seen["terms"] == [BOX2MASK_LOSS, MASK2BOX_LOSS]
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    assert len(rows) == 2
    for row in rows:
        values = {k.strip(): float(v) for k, v in row.items()}
        assert values["train/b2m_loss"] > 0 and values["train/m2b_loss"] > 0
    model, _ = load_model(run_dir / "weights" / "best.pt")
    assert model.link == {0: 3, 1: 4}
    assert YOLOSeg(run_dir / "weights" / "best.pt").info()["link"] == "car=car, person=person"
    onnx = YOLOSeg(run_dir / "weights" / "best.pt").export(imgsz=64)
    assert YOLOSeg(onnx).info()["link"] == "car=car, person=person"
    info = run("info", onnx)
    assert info.exit_code == 0 and "car=car, person=person" in info.output


def test_a_pair_built_from_one_mask_set_splits_its_train_images_and_boxes_its_components(tiny_pair, tmp_path):
    """benchmarks/link.py --from-masks: the train images alternate between the mask half and the box half, the val
    split gets both, and the boxes are the components that pass the test (here: the demo's cars and people)."""
    from yoloseghw.data.dataset import load_data_config
    from yoloseghw.experiments.link import pair_from_masks

    det_yaml, seg_yaml = pair_from_masks(tiny_pair[1], ["car", "person"], tmp_path / "pair", imgsz=64)
    det, seg = load_data_config(det_yaml, "det"), load_data_config(seg_yaml, "seg")
    assert det["names"] == {0: "car", 1: "person"} and seg["names"] == dict(enumerate(SEG.values()))
    source = sorted(p.name for p in (tiny_pair[1].parent / "images" / "train").iterdir())
    boxed = sorted(p.name for p in (det_yaml.parent / "images" / "train").iterdir())
    masked = sorted(p.name for p in (seg_yaml.parent / "images" / "train").iterdir())
    assert boxed == source[1::2] and masked == source[0::2]
    assert len(list((det_yaml.parent / "images" / "val").iterdir())) == len(
        list((seg_yaml.parent / "images" / "val").iterdir())
    )
    labels = [
        line.split()
        for f in (det_yaml.parent / "labels" / "train").glob("*.txt")
        for line in f.read_text().splitlines()
    ]
    assert (
        labels
        and {row[0] for row in labels} <= {"0", "1"}
        and all(0 < float(v) <= 1 for row in labels for v in row[3:])
    )
