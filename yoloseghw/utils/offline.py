"""The one place that makes yoloseg run offline: no weight, font or dataset downloads at run time, and no network
look-up at all (Ultralytics' import-time online check is skipped under YOLO_OFFLINE; ONNX Runtime's, OpenVINO's and
NNCF's telemetry are off).

It runs when `yoloseghw` is imported, before anything imports `ultralytics`, so that a new user (no YOLO_OFFLINE,
no YOLO_CONFIG_DIR, an empty HOME) gets Ultralytics' settings, yoloseg's font copy and matplotlib's cache in one
private folder: YOLO_CONFIG_DIR, or `~/.config/yoloseg`. A folder that cannot be written (a read-only HOME, a
YOLO_CONFIG_DIR that is a file or read-only) falls back to a private temporary folder, with a one-line warning.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

FONTS = ("Arial.ttf", "Arial.Unicode.ttf")  # what Ultralytics' check_font looks for before it downloads


def configure_offline() -> Path:
    """Set the offline environment defaults and give Ultralytics a local font; returns the private config folder.

    `check_font` looks for `<YOLO_CONFIG_DIR>/Ultralytics/Arial.ttf` even with plots off; matplotlib ships
    DejaVuSans, which serves there so nothing is downloaded.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    # ONNX Runtime's telemetry (on by default on Linux since 1.2x) would write a device id and an event database
    # under ~/.cache and upload a process event; this opt-out, set before onnxruntime starts, keeps it from all three
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    # OpenVINO's converter and NNCF send usage statistics (Google Analytics) through `openvino_telemetry` unless a
    # consent file in HOME says no; both fall back to a stub that sends nothing when it cannot be imported
    sys.modules.setdefault("openvino_telemetry", None)
    wanted = Path(os.environ.get("YOLO_CONFIG_DIR") or Path.home() / ".config" / "yoloseg").expanduser()
    config_dir = wanted if _prepare(wanted) else _fallback(wanted)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("MPLCONFIGDIR", str(config_dir / "matplotlib"))  # its font cache, not ~/.config/matplotlib
    return config_dir


def _prepare(config_dir: Path) -> bool:
    """Make `config_dir` hold the fonts and matplotlib's cache; False when it cannot be written."""
    try:
        font_dir = config_dir / "Ultralytics"
        font_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "matplotlib").mkdir(exist_ok=True)
        for name in FONTS:
            target = font_dir / name
            if not target.exists():
                shutil.copyfile(_dejavu(), target)
        return os.access(font_dir, os.W_OK)
    except OSError:
        return False


def _dejavu() -> Path:
    """matplotlib's DejaVuSans.ttf, found without importing matplotlib."""
    package = importlib.util.find_spec("matplotlib").submodule_search_locations[0]
    return Path(package) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"


def _fallback(wanted: Path) -> Path:
    """A private temporary config folder, for when `wanted` cannot be written (said in one line on stderr)."""
    folder = Path(tempfile.gettempdir()) / f"yoloseg-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    if not _prepare(folder):
        folder = Path(tempfile.mkdtemp(prefix="yoloseg-"))
        _prepare(folder)
    sys.stderr.write(f"Warning: {wanted} cannot be written; yoloseg keeps its settings in {folder} this time\n")
    return folder


configure_offline()
