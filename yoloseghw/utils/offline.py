"""The one place that makes Ultralytics run offline: no weight, font or dataset downloads at run time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def configure_offline() -> Path:
    """Set offline environment defaults and give Ultralytics a local font; return the private config dir.

    Must run before `ultralytics` is imported. `check_font` looks for `<YOLO_CONFIG_DIR>/Ultralytics/Arial.ttf`
    even with plots off; matplotlib ships DejaVuSans, which serves there so nothing is downloaded.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(Path.home() / ".config" / "yoloseg")))
    font_dir = config_dir / "Ultralytics"
    font_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = font_dir / name
        if not target.exists():
            shutil.copyfile(source, target)
    return config_dir


configure_offline()
