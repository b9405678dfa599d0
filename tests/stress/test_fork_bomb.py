"""A fork bomb in a service is contained by its `nproc` limit; PID 1 keeps supervising,
answering and stopping services."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from helpers import wait_for
from stresskit import report, running, scale, service, status

pytestmark = pytest.mark.pid1

UID = 4242  # no other process runs as this uid (RLIMIT_NPROC counts per user)
LIMIT = 30
PYTHON = "/usr/bin/python3"  # readable by any uid (a venv may live under /root)
BOMB = f"""#!{PYTHON} -S
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""


def of_uid() -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["uids"]):
        if p.info["uids"] and p.info["uids"].real == UID:
            out.append(p)
    return out


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a service as another uid")
@pytest.mark.skipif(not os.path.exists(PYTHON), reason=f"no {PYTHON}")
def test_fork_bomb_contained(pyinit_run, tmp_path, tag):
    assert of_uid() == [], "uid 4242 is in use on this machine"
    # uid 4242 must reach its run: a service dir outside the test's private tmp dir
    public = Path(tempfile.mkdtemp(prefix="pyinit-stress-"))
    public.chmod(0o755)
    try:
        contained(pyinit_run, tmp_path, tag, public)
    finally:
        shutil.rmtree(public)


def contained(pyinit_run, tmp_path: Path, tag: str, public: Path) -> None:
    service(
        public,
        "bomb",
        BOMB,
        yaml=f"user: {UID}\ngroup: {UID}\nrlimits:\n  nproc: {LIMIT}\nstop_group: true\n",
    )
    service(tmp_path, "steady", f"exec {sys.executable} -c 'import time; time.sleep(1e5)' {tag}\n")
    run = pyinit_run(
        "--no-wait-for-services", "--service-dir", str(public / "service"), "--", "sleep", "100000"
    )
    first = wait_for(lambda: running(tmp_path, "steady", "bomb"), 20, "services")
    wait_for(lambda: len(of_uid()) >= LIMIT - 2, 20, "the bomb to reach its limit")
    t0 = time.monotonic()
    peak = 0
    while time.monotonic() - t0 < scale(2.0, 20.0):
        peak = max(peak, len(of_uid()))
        assert status(tmp_path)["steady"]["pid"] == first["steady"]["pid"]
        time.sleep(0.1)
    assert peak <= LIMIT
    # PID 1 can still fork: restart the steady service
    from pyinit.control.protocol import request

    sock = str(tmp_path / "run" / "control.sock")
    r = request(sock, {"cmd": "control", "action": "t", "services": ["steady"], "wait": 10})
    assert r["ok"] and r["results"][0].get("done"), r
    assert status(tmp_path)["steady"]["pid"] != first["steady"]["pid"]
    # and stop the bomb: its whole process group goes
    r = request(sock, {"cmd": "control", "action": "d", "services": ["bomb"], "wait": 15})
    assert r["ok"], r
    wait_for(lambda: of_uid() == [], 15, "every bomb process gone")
    run.kill(15)
    assert run.wait(30) == 143, run.err
    report("fork bomb", nproc_limit=LIMIT, peak_processes=peak)
