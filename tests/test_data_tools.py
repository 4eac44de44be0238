"""`yoloseg data convert | check | show` on tiny synthetic VOC, COCO, Cityscapes, ADE20K, CamVid and mask datasets."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from yoloseghw.data.tools.convert_seg import CAMVID32, SEGNET_PAVEMENT, _voc_palette

from .helpers import assert_one_line_error, run

W, H = 64, 48  # synthetic image size


def convert(src: Path, fmt: str, dst: Path, *extra: object) -> dict:
    result = run("data", "convert", src, "--from", fmt, "--to", dst, *extra)
    assert result.exit_code == 0, result.output
    return yaml_of(dst)


def yaml_of(dst: Path) -> dict:
    from ultralytics.utils import YAML

    return YAML.load(next(dst.glob("*.yaml")))


def write_image(path: Path, seed: int, size: tuple[int, int] = (W, H)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def write_png(path: Path, array: np.ndarray, palette: list[int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(array)
    if palette:
        im = im.convert("P")
        im.putpalette(palette)
    im.save(path)


def labels(dst: Path, split: str, stem: str) -> list[list[float]]:
    text = (dst / "labels" / split / f"{stem}.txt").read_text()
    return [[float(v) for v in line.split()] for line in text.splitlines()]


def mask(dst: Path, split: str, stem: str) -> np.ndarray:
    return cv2.imread(str(dst / "masks" / split / f"{stem}.png"), cv2.IMREAD_UNCHANGED)


# --------------------------------------------------------------------------------------------- synthetic sources
def voc_object(name: str, box: tuple[int, int, int, int], difficult: int = 0) -> str:
    x0, y0, x1, y1 = box
    return (
        f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
    )


VOC_OBJECTS = "".join(
    [
        voc_object("car", (11, 11, 31, 41)),
        voc_object("person", (41, 5, 51, 45)),
        voc_object("dog", (1, 1, 9, 9), difficult=1),
    ]
)


def make_voc(root: Path, n: int = 8) -> Path:
    """VOCdevkit/VOC2007 with Annotations, JPEGImages, ImageSets/Main/{train,val}.txt and one broken XML."""
    voc = root / "VOCdevkit" / "VOC2007"
    ids = [f"{i:06d}" for i in range(n)]
    for i, name in enumerate(ids):
        write_image(voc / "JPEGImages" / f"{name}.jpg", i)
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><filename>{name}.jpg</filename><size><width>{W}</width><height>{H}</height></size>"
            f"{VOC_OBJECTS}</annotation>"
        )
    (voc / "Annotations" / "broken.xml").write_text("<annotation><object>")
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids[: n * 3 // 4]))
    (voc / "ImageSets" / "Main" / "val.txt").write_text("\n".join(ids[n * 3 // 4 :]))
    return root / "VOCdevkit"


def make_coco(root: Path, annotations: bool = True) -> Path:
    """annotations/instances_{train,val}2017.json with images in train2017/ and val2017/; category ids 3 and 7."""
    (root / "annotations").mkdir(parents=True)
    for split, n in (("train2017", 4), ("val2017", 2)):
        images, anns = [], []
        for i in range(n):
            write_image(root / split / f"{split}_{i}.jpg", 10 * len(split) + i)
            images.append({"id": i, "file_name": f"{split}_{i}.jpg", "width": W, "height": H})
            anns.append({"id": 2 * i, "image_id": i, "category_id": 7, "bbox": [8, 12, 16, 24], "iscrowd": 0})
            anns.append({"id": 2 * i + 1, "image_id": i, "category_id": 3, "bbox": [0, 0, 10, 10], "iscrowd": 1})
        data = {"images": images, "categories": [{"id": 3, "name": "car"}, {"id": 7, "name": "person"}]}
        if annotations:
            data["annotations"] = anns
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


def make_cityscapes(root: Path) -> Path:
    """leftImg8bit/ + gtFine/ with *_gtFine_labelIds.png (road 7, sky 23, car 26, unlabeled 0) and colour decoys."""
    raw = np.zeros((H, W), np.uint8)
    raw[:16], raw[16:32], raw[32:, :32] = 23, 7, 26
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            stem = f"aachen_{i:06d}_000019"
            write_image(root / "leftImg8bit" / split / "aachen" / f"{stem}_leftImg8bit.png", 100 + i + 10 * len(split))
            write_png(root / "gtFine" / split / "aachen" / f"{stem}_gtFine_labelIds.png", raw)
            write_png(root / "gtFine" / split / "aachen" / f"{stem}_gtFine_color.png", np.zeros((H, W, 3), np.uint8))
    return root


def make_ade20k(root: Path) -> Path:
    """ADEChallengeData2016: images/ and annotations/ with training/ and validation/ (0 = other, 1..150)."""
    raw = np.zeros((H, W), np.uint8)
    raw[:16], raw[16:32] = 1, 3
    raw[32:, :8] = 150
    for split, n in (("training", 3), ("validation", 2)):
        for i in range(n):
            write_image(root / "images" / split / f"ADE_{split}_{i:08d}.jpg", 200 + i + 10 * len(split))
            write_png(root / "annotations" / split / f"ADE_{split}_{i:08d}.png", raw)
    return root


def camvid_colour_mask() -> np.ndarray:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:12] = CAMVID32["Sky"]
    rgb[12:30] = CAMVID32["Road"]
    rgb[30:, :20] = CAMVID32["SUVPickupTruck"]
    rgb[30:, 20:40] = CAMVID32["Sidewalk"]
    rgb[30:, 40:] = (0, 0, 0)  # Void
    return rgb


def make_camvid_colour(root: Path, n: int = 6) -> Path:
    """Original CamVid: 701_StillsRaw_full/<id>.png and LabeledApproved_full/<id>_L.png (32-class colours)."""
    for i in range(n):
        write_image(root / "701_StillsRaw_full" / f"0001TP_{i:06d}.png", 300 + i)
        write_png(root / "LabeledApproved_full" / f"0001TP_{i:06d}_L.png", camvid_colour_mask())
    return root


def make_segnet_camvid(root: Path) -> Path:
    """SegNet CamVid: train/, trainannot/, val/, valannot/ with index masks 0-10 and 11 = void."""
    raw = np.minimum(np.arange(W)[None].repeat(H, 0) // 5, 11).astype(np.uint8)  # 0..10, then 11 = void
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            write_image(root / split / f"0006R0_{i:05d}.png", 400 + i + 10 * len(split))
            write_png(root / f"{split}annot" / f"0006R0_{i:05d}.png", raw)
    return root


def make_voc_seg(root: Path, colour: bool = False) -> Path:
    """VOC2012 SegmentationClass palette PNGs (background 0, person 15, border 255) + JPEGImages + ImageSets."""
    voc = root / "VOC2012"
    ids = [f"2007_{i:06d}" for i in range(4)]
    index = np.zeros((H, W), np.uint8)
    index[10:40, 20:40], index[9, 19:41] = 15, 255
    palette = [c for rgb, _ in sorted(_voc_palette(256).items(), key=lambda kv: kv[1]) for c in rgb]
    for i, name in enumerate(ids):
        write_image(voc / "JPEGImages" / f"{name}.jpg", 500 + i)
        file = voc / "SegmentationClass" / f"{name}.png"
        if colour:
            lookup = {v: k for k, v in _voc_palette(21).items()}
            write_png(file, np.array([[lookup[v] for v in row] for row in index], np.uint8))
        else:
            write_png(file, index, palette)
        write_png(voc / "SegmentationObject" / f"{name}.png", np.full((H, W), 1, np.uint8))  # instance ids: not used
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids[:3]))
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text(ids[3])
    return root


# ----------------------------------------------------------------------------------------------------- detection
def test_convert_voc(tmp_path):
    dst = tmp_path / "voc-yolo"
    result = run("data", "convert", make_voc(tmp_path / "src"), "--from", "voc", "--to", dst)
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable VOC XML" in result.output and "difficult" in result.output
    data = yaml_of(dst)
    assert data["names"] == {0: "car", 1: "person"} and "path" not in data
    assert (data["train"], data["val"]) == ("images/train", "images/val")
    assert len(list((dst / "images/train").glob("*.jpg"))) == 6 and len(list((dst / "labels/val").glob("*.txt"))) == 2
    car, person = labels(dst, "train", "000000")
    assert car == pytest.approx([0, 20 / 64, 25 / 48, 20 / 64, 30 / 48], abs=1e-5)
    assert person[0] == 1
    assert (tmp_path / "src/VOCdevkit/VOC2007/JPEGImages/000000.jpg").is_file()  # copied, not moved


def test_convert_voc_classes_and_random_split(tmp_path):
    src = make_voc(tmp_path / "src")
    shutil.rmtree(src / "VOC2007/ImageSets")
    dst = tmp_path / "out"
    data = convert(src, "voc", dst, "--classes", "person=pedestrian", "--val", "0.25", "--seed", "3")
    assert data["names"] == {0: "pedestrian"}
    assert len(list((dst / "images/val").iterdir())) == 2 and len(list((dst / "images/train").iterdir())) == 6
    stem = next((dst / "labels/train").glob("*.txt")).stem
    assert [row[0] for row in labels(dst, "train", stem)] == [0]  # car dropped, person renamed
    assert_one_line_error(
        run("data", "convert", src, "--from", "voc", "--to", tmp_path / "o2", "--classes", "cat"),
        "--classes",
        "'cat'",
        "car, person",
    )


def test_convert_coco(tmp_path):
    dst = tmp_path / "coco-yolo"
    data = convert(make_coco(tmp_path / "coco"), "coco", dst, "--classes", "person,car")
    assert data["names"] == {0: "person", 1: "car"}
    assert len(list((dst / "images/train").glob("*.jpg"))) == 4 and len(list((dst / "images/val").glob("*.jpg"))) == 2
    rows = labels(dst, "val", "val2017_1")
    assert rows == [pytest.approx([0, 16 / 64, 24 / 48, 16 / 64, 24 / 48], abs=1e-5)]  # crowd box left out


def test_convert_yolo_resplit_link_and_force(tiny_pair, tmp_path):
    dst = tmp_path / "resplit"
    data = convert(tiny_pair[0], "yolo", dst, "--classes", "car,sign", "--link")
    assert data["names"] == {0: "car", 1: "sign"}
    assert len(list((dst / "images/train").iterdir())) == 8 and len(list((dst / "images/val").iterdir())) == 4
    assert (dst / "images/train/0000.jpg").stat().st_nlink == 2  # hard link to the source image
    assert_one_line_error(run("data", "convert", tiny_pair[0], "--from", "yolo", "--to", dst), "not empty", "--force")
    convert(tiny_pair[0], "yolo", dst, "--force", "--name", "demo")
    from ultralytics.utils import YAML

    assert YAML.load(dst / "demo.yaml")["names"] == {0: "car", 1: "person", 2: "sign"}
    assert (dst / "images/train/0000.jpg").stat().st_nlink == 1 and not (dst / ".yoloseg-convert").exists()


@pytest.mark.parametrize("case", ["missing", "no-annotations", "bad-format", "overlap", "bad-xml-only"])
def test_convert_bad_input(tmp_path, case):
    dst = tmp_path / "out"
    if case == "missing":
        assert_one_line_error(run("data", "convert", tmp_path / "nope", "--from", "voc", "--to", dst), "not found")
    elif case == "no-annotations":
        src = make_coco(tmp_path / "coco", annotations=False)
        assert_one_line_error(run("data", "convert", src, "--from", "coco", "--to", dst), "'annotations'", ".json")
    elif case == "bad-format":
        assert_one_line_error(run("data", "convert", tmp_path, "--from", "kitti", "--to", dst), "--from", "kitti")
    elif case == "overlap":
        src = make_voc(tmp_path / "src")
        assert_one_line_error(run("data", "convert", src, "--from", "voc", "--to", src / "out"), "overlaps")
    else:
        (tmp_path / "src").mkdir()
        (tmp_path / "src/a.xml").write_text("<annotation")
        assert_one_line_error(run("data", "convert", tmp_path / "src", "--from", "voc", "--to", dst), "no usable")
    assert not dst.exists()


# ------------------------------------------------------------------------------------------------------ semantic
def test_convert_cityscapes(tmp_path):
    dst = tmp_path / "cs"
    data = convert(make_cityscapes(tmp_path / "src"), "cityscapes", dst)
    assert len(data["names"]) == 19 and data["names"][13] == "car" and data["masks_dir"] == "masks"
    assert sorted(p.name for p in (dst / "images/val").iterdir()) == [f"aachen_00000{i}_000019.png" for i in (0, 1)]
    m = mask(dst, "train", "aachen_000000_000019")
    assert m.ndim == 2 and m.dtype == np.uint8
    assert (m[0, 0], m[20, 0], m[40, 0], m[40, 40]) == (10, 0, 13, 255)  # sky, road, car, unlabeled -> ignore


def test_convert_ade20k(tmp_path):
    dst = tmp_path / "ade"
    data = convert(make_ade20k(tmp_path / "ADEChallengeData2016"), "ade20k", dst)
    assert len(data["names"]) == 150 and data["names"][0] == "wall"
    assert len(list((dst / "masks/train").iterdir())) == 3 and len(list((dst / "masks/val").iterdir())) == 2
    m = mask(dst, "val", "ADE_validation_00000000")
    assert (m[0, 0], m[20, 0], m[40, 0], m[40, 40]) == (0, 2, 149, 255)


def test_convert_camvid_colour_and_index(tmp_path):
    src = make_camvid_colour(tmp_path / "CamVid")
    data = convert(src, "camvid", tmp_path / "cv11", "--val", "0.34")
    assert list(data["names"].values())[:5] == ["sky", "building", "pole", "road", "pavement"]
    m = mask(tmp_path / "cv11", "train", next((tmp_path / "cv11/masks/train").iterdir()).stem)
    assert (m[0, 0], m[20, 0], m[40, 0], m[40, 30], m[40, 50]) == (0, 3, 8, 4, 255)  # SUV->car, Sidewalk->pavement
    data = convert(src, "camvid32", tmp_path / "cv32")
    assert len(data["names"]) == 31 and data["names"][22] == "SUVPickupTruck"
    m = mask(tmp_path / "cv32", "val", next((tmp_path / "cv32/masks/val").iterdir()).stem)
    assert (m[0, 0], m[40, 0], m[40, 50]) == (21, 22, 255)
    data = convert(make_segnet_camvid(tmp_path / "segnet"), "camvid", tmp_path / "segnet-out")
    m = mask(tmp_path / "segnet-out", "val", "0006R0_00000")
    assert m[0, 0] == 0 and m[0, 52] == 10 and m[0, 63] == 255  # 11 = void -> ignore
    assert_one_line_error(
        run("data", "convert", tmp_path / "segnet", "--from", "camvid32", "--to", tmp_path / "x"),
        "index mask",
        "--from camvid",
    )


def test_camvid_unknown_colour(tmp_path):
    src = make_camvid_colour(tmp_path / "CamVid", n=3)
    bad = camvid_colour_mask()
    bad[0, 0] = (1, 2, 3)
    write_png(src / "LabeledApproved_full/0001TP_000001_L.png", bad)
    result = run("data", "convert", src, "--from", "camvid", "--to", tmp_path / "out")
    assert_one_line_error(result, "0001TP_000001_L.png", "RGB(1, 2, 3)", "palette")
    assert not (tmp_path / "out").exists()
    good = camvid_colour_mask()
    good[:2, :2] = SEGNET_PAVEMENT  # SegNet's own pavement colour is accepted too
    write_png(src / "LabeledApproved_full/0001TP_000001_L.png", good)
    convert(src, "camvid", tmp_path / "out", "--val", "0.34")


@pytest.mark.parametrize("colour", [False, True])
def test_convert_voc_seg(tmp_path, colour):
    dst = tmp_path / "vocseg"
    data = convert(make_voc_seg(tmp_path / "VOCdevkit", colour), "voc-seg", dst)
    assert len(data["names"]) == 21 and data["names"][0] == "background" and data["names"][15] == "person"
    assert len(list((dst / "images/train").iterdir())) == 3 and len(list((dst / "images/val").iterdir())) == 1
    m = mask(dst, "val", "2007_000003")
    assert (m[0, 0], m[20, 30], m[9, 30]) == (0, 15, 255)


def test_convert_plain_masks(tmp_path):
    src = tmp_path / "mine"
    raw = np.zeros((H, W), np.uint8)
    raw[20:], raw[:4] = 2, 255
    for i in range(5):
        write_image(src / "images" / f"{i}.jpg", 600 + i)
        write_png(src / "masks" / f"{i}.png", raw)
    data = convert(src, "masks", tmp_path / "a", "--val", "0.4")
    assert data["names"] == {0: "class0", 1: "class1", 2: "class2"}
    data = convert(src, "masks", tmp_path / "b", "--classes", "2=road,0=sky")
    assert data["names"] == {0: "road", 1: "sky"}
    m = mask(tmp_path / "b", "train", next((tmp_path / "b/masks/train").iterdir()).stem)
    assert (m[10, 0], m[30, 0], m[0, 0]) == (1, 0, 255)


# ----------------------------------------------------------------------------------- train, check, show for real
def test_train_on_converted_pair(tmp_path):
    from yoloseghw import YOLOSeg

    det = tmp_path / "det"
    seg = tmp_path / "seg"
    convert(make_voc(tmp_path / "voc"), "voc", det)
    convert(make_camvid_colour(tmp_path / "camvid"), "camvid", seg, "--val", "0.34")
    result = run("data", "check", det / "det.yaml", seg / "seg.yaml")
    assert result.exit_code == 0, result.output
    assert "Class overlap" in result.output and "car" in result.output
    YOLOSeg("yolo26n").train(
        det=det / "det.yaml",
        seg=seg / "seg.yaml",
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        project=tmp_path / "runs",
        name="t",
    )
    assert (tmp_path / "runs/t/weights/best.pt").is_file()


def test_check_clean(tiny_pair):
    result = run("data", "check", tiny_pair[1])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps the heading at the runner's 80 columns, where the path is long
    assert "semantic (masks)" in text and "vegetation" in text and "No errors" in text


def test_check_broken(pair_copy):
    det, seg = pair_copy
    images = sorted((det.parent / "images/train").glob("*.jpg"))
    images[0].write_bytes(b"not an image")
    (det.parent / "labels/train" / f"{images[1].stem}.txt").write_text("7 0.5 0.5 0.2 0.2\n")
    (det.parent / "labels/train" / f"{images[2].stem}.txt").unlink()
    shutil.copy(images[3], det.parent / "images/val/leak.jpg")
    result = run("data", "check", det)
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "1 unreadable or malformed" in out and images[0].name in out
    assert "class ids outside 0-2" in out and "[7]" in out
    assert "1 images without a label file" in out
    assert "appear in more than one split" in out and "val/leak.jpg" in out

    mask_file = sorted((seg.parent / "masks/val").glob("*.png"))[0]
    m = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
    m[:3, :3] = 9
    cv2.imwrite(str(mask_file), m)
    cv2.imwrite(str(sorted((seg.parent / "masks/val").glob("*.png"))[1]), np.zeros((10, 10), np.uint8))
    result = run("data", "check", seg)
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())
    assert "[9]" in out and mask_file.name in out and "size differs" in out


def test_check_bad_yaml(tmp_path):
    assert_one_line_error(run("data", "check", tmp_path / "nope.yaml"), "not found", "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: images/train\nval: images/val\nnames: {0: a}\n")
    assert_one_line_error(run("data", "check", bad), "bad.yaml", "images not found")


@pytest.mark.parametrize("which,n", [(0, 4), (1, 3)])
def test_show(tiny_pair, tmp_path, which, n):
    out = tmp_path / "grid.png"
    result = run(
        "data", "show", tiny_pair[which], "--split", "val" if which else "train", "--n", n, "--out", out, "--imgsz", 96
    )
    assert result.exit_code == 0, result.output
    grid = cv2.imread(str(out))
    side = math.ceil(math.sqrt(n)) * 96
    assert grid.shape[1] == side and side < grid.shape[0] < side + 120  # grid plus a legend strip
    assert_one_line_error(run("data", "show", tiny_pair[which], "--split", "test"), "--split", "'test'")


def test_convert_coco_roboflow_layout(tmp_path):
    """Roboflow's COCO export: <split>/_annotations.coco.json next to the images, plus an unused root category."""
    src = tmp_path / "rf"
    for split, n in (("train", 3), ("valid", 2)):
        write_image(src / split / "a.jpg", 700 + n)
        images = [{"id": 0, "file_name": "a.jpg", "width": W, "height": H}]
        anns = [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [8, 12, 16, 24]}]
        cats = [
            {"id": 0, "name": "vehicles", "supercategory": "none"},
            {"id": 1, "name": "bus", "supercategory": "vehicles"},
            {"id": 2, "name": "van", "supercategory": "vehicles"},
        ]
        (src / split / "_annotations.coco.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats})
        )
    data = convert(src, "coco", tmp_path / "out")
    assert data["names"] == {0: "bus", 1: "van"}
    assert labels(tmp_path / "out", "val", "a")[0][0] == 0
