"""CLI helpers shared by the test modules."""

from __future__ import annotations

from typer.testing import CliRunner

from yoloseghw.cli import app

runner = CliRunner()


def run(*args: object):
    """Invoke the `yoloseg` CLI in-process."""
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles: str) -> None:
    """Bad input: exit code 2, a single output line, no traceback, mentioning every needle."""
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    for needle in needles:
        assert needle in text, text
