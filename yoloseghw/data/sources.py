"""Prediction sources: Ultralytics' loaders (image, folder, glob, list file, video, camera, arrays) with one-line
errors, a frame count for the progress bar, and a record of unreadable images (skipped, not fatal)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
from ultralytics.data.build import load_inference_source
from ultralytics.data.loaders import LoadImagesAndVideos, LoadStreams
from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS
from ultralytics.utils import ASSETS

from yoloseghw.utils.errors import UserInputError

DEFAULT_SOURCE = ASSETS / "bus.jpg"  # ships inside the ultralytics package


class Source:
    """Iterates (paths, BGR images, frame numbers or None) one image or frame at a time."""

    def __init__(self, dataset: Any):
        self.dataset = dataset
        self.stream = isinstance(dataset, LoadStreams)
        self.files = isinstance(dataset, LoadImagesAndVideos)
        self.total = self._count() if self.files else None if self.stream else len(dataset)
        self.show_progress = self.stream or (self.total or 0) > 1
        self.seen: set[str] = set()
        self.frame_counter = 0

    def _count(self) -> int:
        """Images plus video frames (as read with the loader's frame stride)."""
        total = self.dataset.ni
        for path in self.dataset.files[self.dataset.ni :]:
            cap = cv2.VideoCapture(path)
            total += int(cap.get(cv2.CAP_PROP_FRAME_COUNT) / self.dataset.vid_stride)
            cap.release()
        return total

    def __iter__(self) -> Iterator[tuple[str, object, int | None]]:
        """(path, BGR image, frame number or None), one image at a time."""
        for paths, images, _ in self.dataset:
            self.seen.update(paths)
            if self.files and self.dataset.mode == "video":
                frame = self.dataset.frame
            elif self.stream:
                self.frame_counter += 1
                frame = self.frame_counter
            else:
                frame = None
            for path, image in zip(paths, images):
                yield str(path), image, frame

    @property
    def skipped(self) -> list[str]:
        """Image files that could not be read (Ultralytics' loader skips them)."""
        if not self.files:
            return []
        return [f for f in self.dataset.files[: self.dataset.ni] if f not in self.seen]

    def fps(self) -> float | None:
        """Frame rate of the video or stream being read."""
        fps = getattr(self.dataset, "fps", None)
        return (fps[0] if fps else None) if isinstance(fps, list) else fps

    def close(self) -> None:
        closer = getattr(self.dataset, "close", None)
        if closer:
            closer()


def open_source(source: Any, flag: str = "source") -> Source:
    """Open an image/folder/glob/list/video path, a camera index or stream URL, or in-memory images.

    `flag` names the argument in error messages."""
    if source is None or (isinstance(source, str) and not source.strip()):
        source = DEFAULT_SOURCE
    if isinstance(source, (str, Path)):
        text = str(source).strip()
        lower = text.lower()
        if lower.startswith(("http://", "https://")):
            raise UserInputError(f"{flag}: {text} is a URL; yoloseg runs offline, so save the file and pass its path")
        if lower == "screen" or lower.startswith("screen "):
            raise UserInputError(f"{flag}: screen capture is not supported; use an image, folder, video or camera")
        if not (text.isnumeric() or lower.startswith(("rtsp://", "rtmp://", "tcp://")) or "*" in text):
            path = Path(text)
            if not path.exists():
                raise UserInputError(f"{flag}: {text} does not exist")
            if path.is_file() and path.suffix.lower().lstrip(".") not in IMG_FORMATS | VID_FORMATS | {"txt", "csv"}:
                raise UserInputError(
                    f"{flag}: {text} is not a supported image or video ({path.suffix or 'no suffix'}); "
                    "use jpg/png/bmp/... images, mp4/avi/... videos, a folder, a glob or a camera index"
                )
    quiet = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # OpenCV's own stderr chatter on bad cameras
    try:
        with muted_native_stderr():  # FFmpeg writes to the C stderr before a bad video's one-line error
            if isinstance(source, (list, tuple)) and source and all(isinstance(x, (str, Path)) for x in source):
                dataset = LoadImagesAndVideos([str(x) for x in source], batch=1)  # file names kept, not read as arrays
            else:
                dataset = load_inference_source(source, batch=1)
    except FileNotFoundError as e:
        raise UserInputError(f"{flag}: {str(e).split('. ')[0]}") from None
    except ConnectionError:
        raise UserInputError(f"{flag}: cannot open camera or stream {source}") from None
    except (TypeError, ValueError, NotImplementedError, AssertionError) as e:
        raise UserInputError(f"{flag}: {' '.join(str(e).split())}") from None
    finally:
        cv2.utils.logging.setLogLevel(quiet)
    return Source(dataset)


@contextmanager
def muted_native_stderr() -> Iterator[None]:
    """Send what native libraries write to file descriptor 2 to /dev/null for the block (Python's own stderr
    is flushed first and comes back after)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
