"""DetSegPredictor: images, folders, globs, videos and cameras through either backend, one pre/post-processing path.

Pre-processing is Ultralytics' LetterBox to a square `imgsz`; post-processing is Ultralytics' NMS (skipped for
end-to-end heads) and box scaling. The semantic output is of one kind (nn/semantic_output.py): an ONNX file's own,
read from its metadata, or for PyTorch the kind asked for (default: the export default), applied to the head's
logits exactly as an export of that kind does in its graph, so PyTorch and ONNX Runtime give the same maps. It is
then resized once, from its stride straight to the original image, with the letterbox padding cut away:
nearest-neighbour for class maps, bilinear (then the argmax) for logits.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from ultralytics.data.augment import LetterBox
from ultralytics.utils import nms, ops

from yoloseghw.data.inputs import network_input
from yoloseghw.data.sources import Source
from yoloseghw.engine.results import DetSegResult
from yoloseghw.nn.backends import OnnxBackend, TorchBackend
from yoloseghw.nn.semantic_output import DEFAULT_SEMANTIC_OUTPUT, SemanticOutput
from yoloseghw.utils.console import console, fit_info, make_progress, warn
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.options import round_to_stride

STAGES = ("preprocess", "inference", "postprocess")


class DetSegPredictor:
    """Runs a backend on images and returns DetSegResult objects."""

    def __init__(
        self,
        backend: TorchBackend | OnnxBackend,
        imgsz: int | None = None,
        conf: float = 0.25,
        iou: float = 0.7,
        classes: list[int] | None = None,
        max_det: int = 300,
        semantic: str | None = None,
    ):
        """`semantic`: for a PyTorch backend, the semantic output kind to give (default: the export default)."""
        self.backend = backend
        self.semantic = torch_semantic_output(backend, semantic)
        self.imgsz = input_size(backend, imgsz)
        self.conf, self.iou, self.classes, self.max_det = conf, iou, classes, max_det
        self.letterbox = LetterBox((self.imgsz, self.imgsz), auto=False, stride=backend.stride)
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.seen = 0

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        """BGR uint8 images -> letterboxed RGB float batch [B,3,imgsz,imgsz] in 0-1."""
        return torch.from_numpy(network_input(images, self.letterbox))

    def postprocess(
        self, det: Any, seg: torch.Tensor, img: torch.Tensor, images: list[np.ndarray], paths: list[str], frames: list
    ) -> list[DetSegResult]:
        """Boxes via Ultralytics NMS (or the end-to-end filter) scaled to each image; class maps resized once to it."""
        boxes = nms.non_max_suppression(
            det,
            self.conf,
            self.iou,
            self.classes,
            max_det=self.max_det,
            end2end=self.backend.end2end,
        )
        if self.semantic is not None:
            seg = self.semantic(seg)
        results = []
        for b, s, im, path, frame in zip(boxes, seg, images, paths, frames):
            b = b.cpu()
            b[:, :4] = ops.scale_boxes(img.shape[2:], b[:, :4], im.shape)
            mask = semantic_to_image(s, self.letterbox.get_params({"img": im}), img.shape[2])
            results.append(DetSegResult(im, path, b, mask, self.backend.det_names, self.backend.seg_names, frame))
        return results

    def predict_images(self, images: list[np.ndarray], paths: list[str], frames: list | None = None):
        """Predict one batch of BGR images; each result gets its share of the three timings (ms)."""
        from ultralytics.utils.ops import Profile

        timers = [Profile(device=self.backend.device) for _ in STAGES]
        with timers[0]:
            img = self.preprocess(images)
        with timers[1]:
            det, seg = self.backend(img)
        with timers[2]:
            results = self.postprocess(det, seg, img, images, paths, frames or [None] * len(images))
        speed = {k: t.dt * 1e3 / len(images) for k, t in zip(STAGES, timers)}
        for r in results:
            r.speed = dict(speed)
        for k in STAGES:
            self.totals[k] += speed[k] * len(images)
        self.seen += len(images)
        return results

    def stream(self, src: Source, writer: PredictionWriter | None = None, progress: bool = True):
        """Yield results for every image or frame of `src` (what `open_source` returned), with a progress bar for
        folders, videos and cameras."""
        bar = make_progress(transient=False) if progress and src.show_progress else None
        try:
            if bar:
                bar.start()
                task = bar.add_task("predict", total=src.total, info="")
            for path, image, frame in src:
                for result in self.predict_images([image], [path], [frame]):
                    if writer:
                        writer.write(result, src.fps())
                    if bar:
                        bar.update(task, advance=1, info=fit_info(result.summary()))
                    elif progress:
                        h, w = result.orig_shape
                        console.print(
                            f"{Path(result.path).name} ({w}x{h}): {result.summary()}, "
                            f"{result.speed['inference']:.1f}ms",
                            markup=False,
                            soft_wrap=True,
                        )
                    yield result
        except BaseException:
            if bar:  # the error is the last word: no half-done bar above it
                bar.remove_task(task)
            if writer:
                writer.close()
                writer.remove_if_empty()
            raise
        finally:
            if bar:
                bar.stop()
            src.close()
            if writer:
                writer.close()
        if src.skipped and not self.seen:
            if writer:
                writer.remove_if_empty()
            raise UserInputError(f"source: none of its {len(src.skipped)} image(s) could be read ({src.skipped[0]})")
        if src.skipped:
            shown = ", ".join(Path(p).name for p in src.skipped[:5]) + (", ..." if len(src.skipped) > 5 else "")
            warn(f"skipped {len(src.skipped)} unreadable image(s): {shown}")

    def speed_line(self) -> str:
        """Ultralytics-style 'Speed: ...ms preprocess, ...ms inference, ...ms postprocess per image at shape ...'."""
        n = max(self.seen, 1)
        pre, inf, post = (self.totals[k] / n for k in STAGES)
        return (
            f"Speed: {pre:.1f}ms preprocess, {inf:.1f}ms inference, {post:.1f}ms postprocess per image at shape "
            f"(1, 3, {self.imgsz}, {self.imgsz}) ({self.backend.kind})"
        )


def torch_semantic_output(backend: TorchBackend | OnnxBackend, name: str | None) -> SemanticOutput | None:
    """The kind the predictor applies to a PyTorch backend's logits; None for an ONNX file, which has its own."""
    if backend.semantic_output is None:
        return SemanticOutput.parse(name or DEFAULT_SEMANTIC_OUTPUT)
    if name and name != backend.semantic_output.name:
        raise UserInputError(
            f"--semantic {name}: {backend.path.name} was exported with semantic output "
            f"'{backend.semantic_output.name}' (export again with --semantic {name})"
        )
    return None


def semantic_to_image(seg: torch.Tensor, letterbox: dict[str, Any], input_size: int) -> np.ndarray:
    """One image's class map [h,w] (or logits [nc,h,w], then the argmax) at any stride of the `input_size` square,
    resized once to the original image: the letterbox padding cut away with sub-pixel precision, the rest scaled.

    `letterbox` is Ultralytics' `LetterBox.get_params` of that image. Nearest-neighbour for class ids, bilinear for
    logits; output pixel centres map exactly onto the output's pixel grid.
    """
    h0, w0 = letterbox["orig_shape"]
    new_w, new_h = letterbox["new_unpad"]
    stride = input_size / seg.shape[-1]
    ax, ay = new_w / w0 / stride, new_h / h0 / stride  # output pixels per original pixel
    bx = (0.5 * new_w / w0 + letterbox["left"]) / stride - 0.5  # where original pixel 0's centre lands
    by = (0.5 * new_h / h0 + letterbox["top"]) / stride - 0.5
    inverse = np.array([[ax, 0, bx], [0, ay, by]], dtype=np.float64)
    flags, border = cv2.WARP_INVERSE_MAP, cv2.BORDER_REPLICATE
    array = seg.cpu().numpy()
    if array.ndim == 2:  # class ids: int32 only when there are more than 256 classes; OpenCV warps uint16
        ids = array if array.dtype == np.uint8 else array.astype(np.uint16)
        return cv2.warpAffine(ids, inverse, (w0, h0), flags=flags | cv2.INTER_NEAREST, borderMode=border)
    logits = np.ascontiguousarray(array.transpose(1, 2, 0), dtype=np.float32)
    up = cv2.warpAffine(logits, inverse, (w0, h0), flags=flags | cv2.INTER_LINEAR, borderMode=border)
    if up.ndim == 2:  # one class: OpenCV drops the channel axis
        return (up > 0).astype(np.uint8)
    return up.argmax(2).astype(np.uint8 if up.shape[2] <= 256 else np.uint16)


def input_size(backend: TorchBackend | OnnxBackend, imgsz: int | None) -> int:
    """The square input size: a static ONNX file's own, else `imgsz` (default 640) rounded up to the stride."""
    if backend.imgsz is not None:
        fixed = backend.imgsz[0]
        if imgsz and imgsz != fixed:
            warn(f"--imgsz {imgsz} ignored: {backend.path.name} was exported for {fixed}x{fixed} (export --dynamic)")
        return fixed
    return round_to_stride(imgsz or 640, backend.stride)


class PredictionWriter:
    """Writes what `yoloseg predict` saves: annotated images/videos, class-map PNGs, YOLO txt and JSON lines.

    Every source gets its own output names: two images with one file name in different folders, or an image named
    like a video's frame files, get names that say where they came from (the folder's name first, then a number).
    A write that fails (a full disk, a folder that is not writable) is a UserInputError naming the file.
    """

    def __init__(
        self,
        save_dir: Path,
        save: bool = True,
        save_mask: bool = False,
        save_txt: bool = False,
        save_conf: bool = False,
        save_json: bool = False,
        alpha: float = 0.5,
        made: tuple[Path, ...] = (),
    ):
        """`made`: the folders this prediction created (its output folder, a new --project), removed again when the
        prediction fails with nothing written."""
        self.save_dir, self.made = save_dir, made
        self.save, self.save_mask, self.save_txt, self.save_conf, self.alpha = (
            save,
            save_mask,
            save_txt,
            save_conf,
            alpha,
        )
        self.json = (
            checked(lambda: open(save_dir / "predictions.jsonl", "w", encoding="utf-8"), save_dir)
            if save_json
            else None
        )
        self.videos: dict[str, cv2.VideoWriter] = {}
        self.stems: dict[str, str] = {}  # source (video) -> its output stem
        self.taken: set[str] = set()
        self.written = 0

    def stem_of(self, source: Path, frame: int | None) -> str:
        """The output stem of an image, or of a video frame (`<video stem>_<frame>`), unique in the folder."""
        key = str(source)
        if key not in self.stems:
            stem = source.stem or "image"
            for candidate in (stem, f"{source.parent.name}_{stem}" if source.parent.name else stem):
                if candidate not in self.taken:
                    break
            n = 2
            while candidate in self.taken:
                candidate, n = f"{stem}_{n}", n + 1
            self.stems[key] = candidate
            self.taken.add(candidate)
        stem = self.stems[key]
        if frame is None:
            return stem
        frame_stem = f"{stem}_{frame}"
        self.taken.add(frame_stem)
        return frame_stem

    def write(self, result: DetSegResult, fps: float | None) -> None:
        """Save one result; frames of a video go to `<stem>.mp4` and get `_<frame>` suffixed masks and labels."""
        source = Path(result.path)
        stem = self.stem_of(source, result.frame)
        if self.save:
            plotted = result.plot(alpha=self.alpha)
            if result.frame is None:
                path = self.save_dir / f"{stem}{source.suffix or '.jpg'}"
                checked(lambda: cv2.imwrite(str(path), plotted), path)
            else:
                self._video(source, plotted, fps).write(plotted)
        if self.save_mask:
            path = self.save_dir / "masks" / f"{stem}.png"
            checked(lambda: result.save_mask(path), path)
        if self.save_txt:
            path = self.save_dir / "labels" / f"{stem}.txt"
            checked(lambda: result.save_txt(path, save_conf=self.save_conf), path)
        if self.json:
            checked(lambda: self._json_line(result), self.json.name)
        self.written += 1

    def _json_line(self, result: DetSegResult) -> None:
        self.json.write(json.dumps(result.to_dict()) + "\n")
        self.json.flush()  # a full disk shows here, on this image, not at the end

    def _video(self, source: Path, frame: np.ndarray, fps: float | None) -> cv2.VideoWriter:
        key = str(source)
        if key not in self.videos:
            h, w = frame.shape[:2]
            path = self.save_dir / f"{self.stems[key]}.mp4"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps or 30, (w, h))
            checked(writer.isOpened, path)
            self.videos[key] = writer
        return self.videos[key]

    def close(self) -> None:
        for video in self.videos.values():
            video.release()
        self.videos.clear()
        if self.json:
            self.json.close()
            self.json = None

    def remove_if_empty(self) -> None:
        """Remove the folders this prediction made when nothing was written into them."""
        for folder in (self.save_dir, *self.made):
            if folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
                shutil.rmtree(folder, ignore_errors=True)


def checked(write: Callable[[], Any], path: Path | str) -> Any:
    """Run `write`; a False result or an OSError (full disk, no permission) is a UserInputError naming `path`, and
    what it left half-written at `path` is removed."""
    try:
        done = write()
    except OSError as e:
        _remove_file(Path(path))
        raise UserInputError(f"could not write {path}: {e.strerror or e}") from None
    if done is False:
        _remove_file(Path(path))
        raise UserInputError(f"could not write {path} (the disk is full or the folder is not writable)")
    return done


def _remove_file(path: Path) -> None:
    if path.is_file():
        path.unlink(missing_ok=True)
