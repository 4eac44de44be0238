"""Atomic file writes (a temporary file in the target's folder, renamed over the target once fully written), and checks
that an output path can be written before anything is."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG}


@contextmanager
def write_errors(path: Path | str) -> Iterator[None]:
    """A failed write in the block (a full disk, a read-only or unwritable folder) is a UserInputError naming
    `path` and the cause, instead of a traceback."""
    from yoloseghw.utils.errors import UserInputError

    try:
        yield
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        raise UserInputError(f"could not write {path}: {e.strerror or e}") from None


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to: renamed over `path` when the block succeeds, removed otherwise, so
    `path` is never half-written and an earlier file survives a failed write (a full disk is a UserInputError naming
    `path`). The file gets the mode any new file gets (umask), and temporaries an interrupted earlier write left
    behind are removed first."""
    with write_errors(path):
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


def check_run_name(name: str, flag: str = "--name") -> None:
    """UserInputError unless `name` is one folder name, so that the run lands inside its --project: not empty, no
    path separator (`ok/weights` would nest a run inside an old one), not `.` or `..`, not absolute."""
    from yoloseghw.utils.errors import UserInputError

    text = str(name)
    if not text.strip() or text in (".", "..") or "/" in text or "\\" in text or Path(text).is_absolute():
        raise UserInputError(f"{flag}: '{text}' must be one folder name inside --project (no '/', '..' or '')")


def replace_folder(new: Path, final: Path) -> None:
    """Move the complete folder `new` to `final`, replacing an earlier `final` only once `new` is in place beside
    it (an earlier one is kept under a temporary name until then, and removed after)."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    with write_errors(final):
        if final.exists():
            final.rename(old)
        new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def scratch_folder(out: Path, job: str) -> Iterator[Path]:
    """A temporary folder beside `out` for `job`'s intermediate files, removed afterwards; the folders a killed
    earlier run left beside it are removed first."""
    prefix = f".yoloseg-{job}-"
    for stale in out.parent.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    with write_errors(out.parent):
        tmp = tempfile.mkdtemp(dir=out.parent, prefix=prefix)
    try:
        yield Path(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def size_mb(path: Path) -> float:
    """The size of a model file, or of a model folder (OpenVINO's .xml and .bin), in MiB."""
    path = Path(path)
    if path.suffix == ".xml":
        path = path.parent
    files = path.rglob("*") if path.is_dir() else [path]
    return round(sum(f.stat().st_size for f in files if f.is_file()) / 2**20, 2)
