"""Orphan storm: rounds of orphans (a process forks a batch of children that block on a
pipe, then exits: the batch is reparented to PID 1 and exits at once). No zombie may be
left, and PID 1's memory must not grow with the number of orphans it reaped."""

from __future__ import annotations

import sys
import time

import pytest
from helpers import wait_for, write_script
from stresskit import report, rss_kib, scale, zombies

pytestmark = pytest.mark.pid1

ROUNDS, BATCH = scale((4, 500), (100, 1000))

STORM = f"""#!{sys.executable} -S
import os, sys, time
here = sys.argv[1]
open(here + "/ready", "w").close()
while not os.path.exists(here + "/go"):
    time.sleep(0.01)
for _ in range({ROUNDS}):
    gate_r, gate_w = os.pipe()  # the worker holds the write end: EOF when it is gone
    done_r, done_w = os.pipe()  # every orphan holds the write end: EOF when all are gone
    worker = os.fork()
    if worker == 0:
        os.close(done_r)
        for _ in range({BATCH}):
            if os.fork() == 0:
                os.close(gate_w)
                os.read(gate_r, 1)
                os._exit(0)
        os._exit(0)  # the batch is orphaned, and released at once
    for fd in (gate_r, gate_w, done_w):
        os.close(fd)
    os.waitpid(worker, 0)
    os.read(done_r, 1)
    os.close(done_r)
def zombies():
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{{pid}}/stat") as f:
                    n += f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                pass
    return n
deadline = time.monotonic() + 30
while zombies() and time.monotonic() < deadline:
    time.sleep(0.01)
with open(here + "/done", "w") as f:
    f.write(str(zombies()))
while not os.path.exists(here + "/bye"):
    time.sleep(0.01)
"""


def test_orphan_storm(pyinit_run, tmp_path, tag):
    main = write_script(tmp_path / "storm.py", STORM)
    run = pyinit_run("--skip-runit", "--", str(main), str(tmp_path), tag)
    wait_for(lambda: (tmp_path / "ready").exists(), 20, "the storm to be ready")
    before = rss_kib(run.init_pid)
    t = time.monotonic()
    (tmp_path / "go").touch()
    wait_for(lambda: (tmp_path / "done").exists(), scale(60, 600), "the storm to end")
    secs = time.monotonic() - t
    left_inside = int((tmp_path / "done").read_text())
    after = rss_kib(run.init_pid)
    assert left_inside == 0, f"{left_inside} zombies left in the container"
    assert zombies(run) == []
    (tmp_path / "bye").touch()
    assert run.wait(30) == 0, run.err
    report(
        "orphan storm",
        orphans=ROUNDS * BATCH,
        seconds=secs,
        orphans_per_s=ROUNDS * BATCH / secs,
        rss_before_kib=before,
        rss_after_kib=after,
        rss_growth_kib=after - before,
    )
    # bounded: reaping 100k orphans may not keep per-orphan state
    assert after - before < 8 * 1024, f"PID 1 grew by {after - before} KiB"
