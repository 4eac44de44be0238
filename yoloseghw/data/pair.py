"""The pair yaml: one box dataset, one mask dataset and yoloseg's training options, in one file.

It is what `args.data` names for the trainer, so the trainer can be rebuilt from its Ultralytics args alone (resume,
DDP workers). `yoloseg train --det D --seg S` writes one into the run folder; a user may also write one by hand:

    det: highway/highway.yaml     # paths relative to this file, or absolute
    seg: camvid/camvid.yaml
    schedule: alternate           # optional: alternate | phased | joint (and ratio, det_epochs, order, lr_scale,
    ratio: auto                   #   seg_weight), as the `yoloseg train` options of the same names
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics.utils import YAML

from yoloseghw.data.dataset import load_data_config, read_yaml_mapping
from yoloseghw.utils.errors import UserInputError
from yoloseghw.utils.files import atomic_path
from yoloseghw.utils.options import DEFAULTS, Mix, check_options

PAIR_FILE = "pair.yaml"


def read_pair(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a pair yaml, with `det`/`seg` made absolute; UserInputError when it is not one."""
    path = Path(path)
    raw = read_yaml_mapping(path, "--data", "pair yaml")
    if not raw.get("det") or not raw.get("seg"):
        raise UserInputError(f"--data: {path} is not a yoloseg pair yaml (it needs 'det' and 'seg' dataset yamls)")
    raw = {k: v for k, v in raw.items() if k not in ("yaml_file", "channels")}
    for task in ("det", "seg"):
        raw[task] = str((path.parent / raw[task]).resolve()) if not Path(raw[task]).is_absolute() else raw[task]
    return raw


def load_pair(path: str | Path, epochs: int) -> dict[str, Any]:
    """Both dataset configs and the checked options, as the trainer's `data` dict.

    `names`/`nc` are the detection ones (what Ultralytics reads for Detect and `optimizer=auto`); `seg_names` the
    semantic ones; `det`/`seg` the two Ultralytics dataset dicts.
    """
    raw = read_pair(path)
    options = check_options(raw, epochs)
    det, seg = load_data_config(options.pop("det"), "det"), load_data_config(options.pop("seg"), "seg")
    return {
        "det": det,
        "seg": seg,
        "options": options,
        "names": dict(det["names"]),
        "nc": len(det["names"]),
        "seg_names": dict(seg["names"]),
        "channels": 3,
        "train": str(path),
        "val": str(path),
        "yaml_file": str(path),
    }


def write_pair(path: Path, det: str | Path, seg: str | Path, options: dict[str, Any]) -> Path:
    """Write a pair yaml (absolute dataset paths) atomically; returns its path."""
    content = {"det": str(Path(det).resolve()), "seg": str(Path(seg).resolve())}
    for key in DEFAULTS:
        value = options.get(key, DEFAULTS[key])
        if key == "ratio":
            value = str(Mix.parse(value))
        elif key == "link_weight" and isinstance(value, (tuple, list)):
            value = ",".join(f"{w:g}" for w in value)
        elif key == "order" and isinstance(value, (tuple, list)):
            value = ",".join(value)
        content[key] = value
    with atomic_path(path) as tmp:
        YAML.save(tmp, content)
    return path
