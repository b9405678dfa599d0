"""pyinit as `my_init` (a symlink): phusion's flags, its exit code 2 for a SIGTERM-ended
run without a main command, and its two bugs fixed (a signalled main command exits
128+N, not 0; signals reach the main command)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import can_unshare, wait_for

pytestmark = pytest.mark.skipif(can_unshare() is not None, reason="needs unshare")


@pytest.fixture
def my_init(tmp_path: Path) -> list[str]:
    link = tmp_path / "my_init"
    link.symlink_to(Path(sys.executable).parent / "pyinit")
    (tmp_path / "empty").mkdir()
    return ["unshare", "--pid", "--fork", "--mount-proc", str(link), "--skip-startup-files",
            "--service-dir", str(tmp_path / "empty"), "--run-dir", str(tmp_path / "run"),
            "--config", str(tmp_path / "none.yaml"), "--kill-timeout", "2"]


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pid1_of(proc: subprocess.Popen) -> int:
    """The host pid of my_init (PID 1 inside): unshare's child."""
    path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return int(wait_for(lambda: path.read_text().split()[:1], 10, "PID 1")[0])


def test_sigterm_without_main_command_exits_2_and_insecure_key_is_accepted(
        my_init: list[str], tmp_path: Path) -> None:
    proc = start(my_init + ["--enable-insecure-key"])
    try:
        wait_for(lambda: (tmp_path / "run" / "control.sock").exists(), 10, "the control socket")
        subprocess.run(["kill", "-TERM", str(pid1_of(proc))], check=True)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 2
        assert "--enable-insecure-key does nothing here" in err
    finally:
        proc.kill()
        proc.wait()


def test_main_command_gets_signals_and_its_signal_death_is_128_plus_n(
        my_init: list[str], tmp_path: Path) -> None:
    got = tmp_path / "got"
    body = (f"trap 'echo usr1 > {got}; kill -KILL $$' USR1; touch {tmp_path}/ready; "
            "while :; do sleep 0.05; done")
    proc = start(my_init + ["--", "sh", "-c", body])
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), 10, "the main command")
        subprocess.run(["kill", "-USR1", str(pid1_of(proc))], check=True)
        proc.communicate(timeout=15)
        assert got.read_text() == "usr1\n"  # forwarded (my_init did not)
        assert proc.returncode == 128 + signal.SIGKILL  # my_init said 0
    finally:
        proc.kill()
        proc.wait()
