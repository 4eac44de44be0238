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
    `path` is never half-written and an earlier file survives a failed write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


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
