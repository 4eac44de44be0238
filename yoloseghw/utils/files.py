"""Atomic file writes (a temporary file in the target's folder, renamed over the target once fully written), and checks
that an output path can be written before anything is."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to: renamed over `path` when the block succeeds, removed otherwise, so
    `path` is never half-written and an earlier file survives a failed write. The file gets the mode any new file
    gets (umask), and temporaries an interrupted earlier write left behind are removed first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        usual_mode(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_checkpoint(path: Path, ckpt: dict) -> None:
    """torch.save `ckpt` to `path` atomically (temp file + rename in the same folder): never a half-written file."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def remove_stale_temporaries(path: Path) -> None:
    """Remove `.<name>.*.tmp` files beside `path`: what a killed write of `path` left (only one writer saves a run)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def usual_mode(path: Path) -> None:
    """Give `path` the mode a new file gets (0666 less the umask): mkstemp makes 0600 files."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def check_output_folder(path: Path | str, flag: str) -> None:
    """UserInputError unless `path` is a folder, or can become one: its nearest existing ancestor must be a writable
    folder (not a file). Checked before anything is written, so a bad path leaves nothing behind."""
    from yoloseghw.utils.errors import UserInputError

    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
    if not existing.is_dir():
        raise UserInputError(f"{flag}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"{flag}: {existing} is not writable")


def check_output_file(path: Path | str, flag: str, suffixes: tuple[str, ...] = ()) -> None:
    """UserInputError unless `path` can be written as a file: not a folder, one of `suffixes` (when given), in a
    folder that exists or can be made."""
    from yoloseghw.utils.errors import UserInputError

    path = Path(path)
    if path.is_dir():
        raise UserInputError(f"{flag}: {path} is a folder; give a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise UserInputError(f"{flag}: {path} must end in {' or '.join(suffixes)}")
    check_output_folder(path.parent, flag)
