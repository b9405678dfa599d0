"""Crash loop: five services exit at once in a loop; the others and svctl are not
affected, and PID 1's CPU use is reported."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from helpers import ROOT, wait_for
from stresskit import cpu_seconds, report, running, scale, service, status

pytestmark = pytest.mark.pid1

SECONDS = scale(4.0, 60.0)
STEADY = "trap 'kill $! 2>/dev/null; exit 0' TERM\nsleep 1000 & wait $!\n"


def test_crash_loop(pyinit_run, tmp_path, tag):
    marks = tmp_path / "marks"
    marks.mkdir()
    for i in range(5):
        service(tmp_path, f"crash{i}", f"echo x >> {marks}/crash{i}\nexit 1\n")
    service(tmp_path, "steady", f"# {tag}\n" + STEADY)
    run = pyinit_run("--no-wait-for-services", "--", "sleep", "100000")
    first = wait_for(lambda: running(tmp_path, "steady"), 20, "steady running")["steady"]
    wait_for(
        lambda: all((marks / f"crash{i}").exists() for i in range(5)),
        20,
        "every crashing service started",
    )
    c0, t0 = cpu_seconds(run.init_pid), time.monotonic()
    answers = 0
    while time.monotonic() - t0 < SECONDS:
        recs = status(tmp_path)  # svctl's request: it must keep answering
        answers += 1
        assert recs["steady"]["pid"] == first["pid"], "the steady service was restarted"
        assert recs["steady"]["state"] == "run"
        time.sleep(0.2)
    cpu = cpu_seconds(run.init_pid) - c0
    elapsed = time.monotonic() - t0
    starts = [len((marks / f"crash{i}").read_text().split()) for i in range(5)]
    assert min(starts) >= 2, f"crashing services were not restarted: {starts}"
    svctl = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pyinit.cli.svctl import main; main()",
            "--run-dir",
            str(tmp_path / "run"),
            "status",
            "steady",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert svctl.returncode == 0 and svctl.stdout.startswith("run: steady:"), svctl
    run.kill(15)
    assert run.wait(30) == 143
    report(
        "crash loop",
        seconds=elapsed,
        starts=sum(starts),
        pid1_cpu_pct=100 * cpu / elapsed,
        status_answers=answers,
    )
