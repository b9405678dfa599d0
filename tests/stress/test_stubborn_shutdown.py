"""Stubborn shutdown: a service that ignores SIGTERM, a `finish` that hangs, a main
command that forks a daemon and exits. The container ends within the sum of the
timeouts and nothing is left running (as PID 1 and as a subreaper)."""

from __future__ import annotations

import sys
import time

import pytest
from helpers import tagged_processes, wait_for, write_script
from stresskit import report, running, service

KILL, KILL_ALL, FINISH = 1.0, 1.0, 1.0


def deaf(tag: str) -> str:
    """A command line that ignores SIGTERM and sleeps, marked with tag."""
    return f"trap '' TERM\nexec {sys.executable} -S -c 'import time; time.sleep(1e5)' {tag}\n"


@pytest.mark.parametrize("pid1", [True, False], ids=["pid1", "subreaper"])
def test_stubborn_shutdown(pyinit_run, tmp_path, tag, pid1):
    service(tmp_path, "deaf", deaf(tag))
    d = service(tmp_path, "hangs", deaf(tag), yaml=f"finish_timeout: {FINISH}\n")
    write_script(d / "finish", deaf(tag))
    write_script(tmp_path / "daemon.sh", deaf(tag))
    main = write_script(
        tmp_path / "main.sh",
        f"setsid {tmp_path}/daemon.sh &\n"
        f"while [ ! -e {tmp_path}/go ]; do sleep 0.05; done\nexit 3\n",
    )
    run = pyinit_run(
        "--kill-timeout", str(KILL), "--kill-all-timeout", str(KILL_ALL), "--", str(main), pid1=pid1
    )
    wait_for(lambda: running(tmp_path, "deaf", "hangs"), 20, "services running")
    wait_for(lambda: len(tagged_processes(tag)) >= 3, 10, "the daemon and services")
    t = time.monotonic()
    (tmp_path / "go").touch()  # the main command exits, leaving its daemon behind
    assert run.wait(30) == 3, run.err
    took = time.monotonic() - t
    budget = KILL + FINISH + KILL_ALL  # each stage's timeout, summed
    left = tagged_processes(tag)
    report(
        f"stubborn shutdown ({'PID 1' if pid1 else 'subreaper'})",
        seconds=took,
        budget=budget,
        left=len(left),
    )
    assert left == [], [p.cmdline() for p in left]
    # within the sum of the timeouts (plus start-up slack on a loaded machine)
    assert took < budget + 5, f"shutdown took {took:.1f}s\n{run.err}"
