"""Offline without help: with an empty HOME and no YOLO_OFFLINE / YOLO_CONFIG_DIR (what a new user has), importing
yoloseg writes only into its own settings folder, prints no Ultralytics banner, and no command opens a network
socket or looks up a host name. Python's sockets are blocked in the subprocesses (any use fails the test), and where
strace is installed, native code's connections are traced too (an IPv4/IPv6 connect or send fails the test)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BLOCK_SOCKETS = """
import socket, sys
LOG = {log!r}
def _refuse(what):
    def refuse(*args, **kwargs):
        with open(LOG, "a") as f:
            f.write(f"{{what}} {{args[:2]}}\\n")
        raise OSError(f"network use blocked by the test: {{what}}")
    return refuse
for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
    setattr(socket, name, _refuse(name))
_socket = socket.socket
class GuardedSocket(_socket):
    def __init__(self, family=-1, *args, **kwargs):
        if family in (socket.AF_INET, socket.AF_INET6) or family == -1:
            _refuse("socket")(family)
        super().__init__(family, *args, **kwargs)
socket.socket = GuardedSocket
"""


def new_user_env(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """An environment like a new user's (an empty HOME, no YOLO_* variables), with sockets blocked; returns it, the
    HOME and the file that records any network use."""
    home, site = tmp_path / "home", tmp_path / "site"
    home.mkdir()
    site.mkdir()
    log = tmp_path / "network.log"
    (site / "sitecustomize.py").write_text(BLOCK_SOCKETS.format(log=str(log)))
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(site), "LANG": "C.UTF-8"}
    return env, home, log


NETWORK_CALL = re.compile(r"(connect|sendto|sendmsg)\(\d+, .*(AF_INET6?|sin6?_port)")  # not AF_UNIX, not netlink


def run(env: dict[str, str], *args: str, cwd: Path, trace: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m yoloseghw ARGS`, under strace (connect/sendto/sendmsg, written to `trace`) where it is installed."""
    command = [sys.executable, "-m", "yoloseghw", *args]
    if trace is not None and shutil.which("strace"):
        command = ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace)]
        command += [sys.executable, "-m", "yoloseghw", *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def native_network_calls(trace: Path) -> list[str]:
    return [line for line in trace.read_text().splitlines() if NETWORK_CALL.search(line)] if trace.exists() else []


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file()}


def test_import_writes_only_yoloseg_settings_and_no_banner(tmp_path):
    env, home, log = new_user_env(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", "import yoloseghw"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "Settings" not in result.stdout + result.stderr, result.stdout + result.stderr
    written = files_under(home)
    assert written and all(p.parts[:2] == (".config", "yoloseg") for p in written), written
    assert not log.exists(), log.read_text()


def test_commands_use_no_network(tiny_pair, tmp_path):
    """train, info, val, predict, export (ONNX, OpenVINO), compress (ONNX Runtime FP16, NNCF INT8), bench and the
    data tools, in a new user's environment."""
    env, home, log = new_user_env(tmp_path)
    det, seg = map(str, tiny_pair)
    runs = tmp_path / "runs"
    small = ("--imgsz", "64", "--batch", "4", "--workers", "0")
    steps = [
        ("train", "--det", det, "--seg", seg, "--epochs", "1", *small, "--project", str(runs), "plots=True"),
        ("info", str(runs / "train/weights/best.pt")),
        ("val", "--weights", str(runs / "train/weights/best.pt"), "--det", det, "--seg", seg, "--imgsz", "64"),
        ("predict", str(Path(seg).parent / "images/val"), "--weights", str(runs / "train/weights/best.pt"),
         "--project", str(runs)),
        ("export", "--weights", str(runs / "train/weights/best.pt")),
        ("compress", "--weights", str(runs / "train/weights/best.pt"), "--method", "fp16"),
        ("export", "--weights", str(runs / "train/weights/best.pt"), "--format", "openvino"),
        ("compress", "--weights", str(runs / "train/weights/best.pt"), "--method", "quantize", "--runtime", "openvino",
         "--det", det, "--seg", seg, "--calib", "8"),
        ("bench", "--weights", str(runs / "train/weights/best.pt"), "--det", det, "--seg", seg, "--runs", "2",
         "--rounds", "1", "--batch", "2", "--project", str(runs)),
        ("data", "check", det, seg),
        ("data", "show", seg, "--out", str(tmp_path / "grid.png"), "--n", "2"),
    ]  # fmt: skip
    for args in steps:
        trace = tmp_path / f"strace-{args[0]}.log"
        result = run(env, *args, cwd=tmp_path, trace=trace)
        assert result.returncode == 0, f"{args[0]}: {result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        assert not log.exists(), f"{args[0]} used the network: {log.read_text()}"
        assert not native_network_calls(trace), f"{args[0]}: {native_network_calls(trace)[:3]}"
    assert all(p.parts[:2] == (".config", "yoloseg") for p in files_under(home)), files_under(home)


@pytest.mark.parametrize("case", ["config-dir-is-a-file", "config-dir-read-only", "home-read-only"])
def test_unusable_config_dir_falls_back_with_a_warning(tmp_path, case):
    """A YOLO_CONFIG_DIR that is a file or read-only, or a read-only HOME: one warning line and a private temporary
    folder instead of a traceback (read-only cases on a read-only tmpfs, where the machine lets the tests mount)."""
    env, home, _ = new_user_env(tmp_path)
    if case == "config-dir-is-a-file":
        bad = tmp_path / "not-a-folder"
        bad.write_text("x")
        env["YOLO_CONFIG_DIR"] = str(bad)
    else:
        bad = home if case == "home-read-only" else tmp_path / "read-only"
        bad.mkdir(exist_ok=True)
        mount = ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(bad)]
        if subprocess.run(mount, capture_output=True).returncode:
            pytest.skip("this machine does not let the tests mount a tmpfs")
        if case == "config-dir-read-only":
            env["YOLO_CONFIG_DIR"] = str(bad)
        else:
            bad = home / ".config" / "yoloseg"
    try:
        result = run(env, "--help", cwd=tmp_path)
    finally:
        subprocess.run(["umount", "-l", str(home if case == "home-read-only" else tmp_path / "read-only")],
                       capture_output=True)  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warning = [line for line in result.stderr.splitlines() if str(bad) in line]
    assert len(warning) == 1 and "cannot be written" in warning[0], result.stderr
