"""What every command shares: bad input as one line and exit code 2, Ctrl-C as exit code 130, weights-file checks."""

from __future__ import annotations

from functools import wraps
from pathlib import Path
from typing import Any, Callable

import typer


def cli_errors(fn: Callable) -> Callable:
    """Turn bad input into one line on stderr and exit code 2; Ctrl-C into exit code 130."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from yoloseghw.utils.console import print_error
        from yoloseghw.utils.errors import UserInputError

        try:
            return fn(*args, **kwargs)
        except UserInputError as e:
            print_error(str(e))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper


def weights_file(path: Path, onnx: bool, flag: str = "--weights") -> str:
    """A .pt weights path (or, where `onnx`, an exported model too: .onnx, or OpenVINO's .xml or
    `*_openvino_model` folder), checked for existence and kind before loading."""
    from yoloseghw.nn.openvino import is_openvino
    from yoloseghw.utils.errors import UserInputError

    exported = onnx and (path.suffix == ".onnx" or is_openvino(path))
    if not (path.is_file() or (exported and path.is_dir())):
        raise UserInputError(f"{flag}: file not found: {path}")
    if not (path.suffix in {".pt", ".pth"} or exported):
        kind = "a PyTorch checkpoint (.pt) or an exported model (.onnx, OpenVINO)" if onnx else "a checkpoint (.pt)"
        raise UserInputError(f"{flag}: {path} is not {kind}")
    return str(path)
