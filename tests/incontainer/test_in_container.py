"""Inside a real container: pyinit is PID 1, pytest is its main command. Orphans are
adopted and reaped, signals sent to PID 1 reach pytest, the image's services run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path


def wait_for(cond, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)
    return value


def proc_state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    return re.search(r"^State:\s+(\S)", text, re.M).group(1)


def ppid(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    return int(re.search(r"^PPid:\s+(\d+)", text, re.M).group(1))


def test_pid1_is_pyinit_and_pytest_is_its_main_command():
    cmdline = Path("/proc/1/cmdline").read_bytes().split(b"\0")
    assert any(b"pyinit" in part for part in cmdline), cmdline
    assert os.getppid() == 1
    assert os.getpgrp() == os.getpid()  # the main command gets its own process group


def test_startup_scripts_ran_before_the_main_command():
    assert Path("/run/pyinit-test-boot-mark").read_text() == "booted by my_init.d\n"


def test_orphans_are_adopted_and_reaped_by_pid1():
    script = "for i in 1 2 3 4 5; do sleep 1 >/dev/null 2>&1 & echo $!; done"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    pids = [int(p) for p in out.split()]
    assert len(pids) == 5
    alive = [p for p in pids if proc_state(p) not in (None, "Z")]
    assert alive, "the orphans ended before they could be checked"
    assert {ppid(p) for p in alive} <= {1, None}
    # their parent shell is gone: each is reparented to PID 1, which must reap it
    wait_for(lambda: all(proc_state(p) is None for p in pids), 10, "orphans to be reaped")


def test_signals_to_pid1_reach_the_main_command():
    got: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
    try:
        os.kill(1, signal.SIGUSR1)
        wait_for(lambda: got, 10, "SIGUSR1 forwarded by PID 1")
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert got == [signal.SIGUSR1]


def test_services_are_supervised_and_svctl_controls_them():
    r = subprocess.run(["svctl", "-w", "20", "check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    status = subprocess.run(["svctl", "status", "ticker"], capture_output=True, text=True).stdout
    pid = re.search(r"^run: ticker: \(pid (\d+)\)", status, re.M).group(1)
    r = subprocess.run(["svctl", "-w", "20", "restart", "ticker"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    new = re.search(r"^ok: run: ticker: \(pid (\d+)\)", r.stdout, re.M).group(1)
    assert new != pid
    assert proc_state(int(pid)) is None  # the old run was reaped


def test_setuser_drops_to_an_unprivileged_user():
    r = subprocess.run(["setuser", "nobody", "id", "-u"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "65534", r.stdout + r.stderr


def test_no_zombies_in_the_container():
    ps = subprocess.run(["ps", "-eo", "stat=,pid=,args="], capture_output=True, text=True,
                        check=True).stdout
    assert not [line for line in ps.splitlines() if line.split()[0].startswith("Z")], ps
