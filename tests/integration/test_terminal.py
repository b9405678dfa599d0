"""`docker run -it IMAGE cmd`: with a terminal, the main command is the terminal's
foreground process group, so Ctrl-C reaches it and pyinit exits 128+SIGINT."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, can_unshare

MAIN = ("import os, time; print('fg', os.tcgetpgrp(0) == os.getpgrp(), "
        "os.getpgrp() == os.getpid(), flush=True); time.sleep(100)")


def read_line_with(fd: int, needle: bytes, timeout: float) -> bytes:
    """Terminal output up to the end of the line that holds needle."""
    buf = b""
    deadline = time.monotonic() + timeout
    while needle not in buf or b"\n" not in buf[buf.index(needle):]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {needle!r} on the terminal; got {buf!r}")
        if select.select([fd], [], [], left)[0]:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf


@pytest.mark.skipif(shutil.which("setsid") is None, reason="setsid(1) is not installed")
@pytest.mark.parametrize("pid1", [True, False], ids=["pid1", "subreaper"])
def test_main_command_owns_the_terminal_and_ctrl_c_reaches_it(tmp_path: Path, pid1: bool):
    if pid1 and can_unshare():
        pytest.skip(can_unshare())
    master, slave = pty.openpty()
    argv = ["setsid", "-c"]
    if pid1:
        argv += ["unshare", "--pid", "--fork", "--mount-proc"]
    argv += [sys.executable, "-m", "pyinit", "--skip-startup-files", "--skip-runit",
             "--env-dir", str(tmp_path / "env"), "--run-dir", str(tmp_path / "run"),
             "--", sys.executable, "-c", MAIN]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(slave)
    try:
        out = read_line_with(master, b"fg ", 15)
        assert b"fg True True" in out, out
        os.write(master, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground group
        assert proc.wait(10) == 128 + signal.SIGINT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
