"""Scheduled jobs (issue 22) with pyinit as a real PID 1: a job on schedule with the
container's environment and its output in prefix mode, overlap: skip and queue,
`svctl run`, a run's timeout, the next run in `svctl status`, and zero wake-ups
between runs. Driven by `every:` intervals of a second and by `svctl run`; nothing
waits for a real minute. (A clock jump cannot be caused here without setting the
host's clock: tests/unit/test_jobs.py covers that path with a fake timer.)"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from helpers import wait_for
from test_service_config import (
    box,  # noqa: F401 - a fixture
    svc,
)

pytestmark = pytest.mark.pid1

GATE = "while [ ! -e go ]; do sleep 0.02; done\n"


def runs_of(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def job_rec(b, name: str) -> dict:
    return b.rec(name)["job"]


def test_a_job_runs_with_the_container_env_in_prefix_mode(box, tmp_path: Path, tag: str) -> None:  # noqa: F811
    (tmp_path / "container_environment").mkdir()
    (tmp_path / "container_environment" / "FROM_ENV_DIR").write_text("dir-value")
    d = svc(
        tmp_path,
        tag,
        "tick",
        'echo "tick $FROM_PYINIT $FROM_ENV_DIR $JOB_VAR"\necho run >> runs\n',
        "every: 1s\nlog: prefix\nenvironment:\n  JOB_VAR: own\n",
    )
    b = box(env={"FROM_PYINIT": "inherited"})
    wait_for(lambda: len(runs_of(d / "runs")) >= 2, 10, "two scheduled runs")
    out = b.run.out
    assert "tick | tick inherited dir-value own\n" in out, out
    rec = b.rec("tick")
    assert rec["oneshot"] is True and rec["normally_up"] is False
    assert rec["job"]["schedule"] == "every 1s" and rec["job"]["runs"] >= 2
    assert rec["job"]["last_run"]["result"] in ("success", "running")
    b.stop()
    assert "[tick] run started due at" in b.run.err


def test_overlap_skip_skips_a_tick(box, tmp_path: Path, tag: str) -> None:  # noqa: F811
    d = svc(tmp_path, tag, "slow", "echo start >> runs\n" + GATE + "rm -f go\n", "every: 1s\n")
    b = box()
    wait_for(lambda: runs_of(d / "runs"), 10, "the first run")
    b.wait("slow", lambda r: r["job"]["skipped"] >= 1, 10, "a tick skipped")
    assert runs_of(d / "runs") == ["start"]  # still the one run
    assert "[slow] still running: skipping the run due at" in b.run.err
    (d / "go").touch()
    wait_for(lambda: len(runs_of(d / "runs")) >= 2, 10, "the next run after it ended")
    b.stop()


def test_svctl_run_and_overlap_queue(box, tmp_path: Path, tag: str) -> None:  # noqa: F811
    d = svc(
        tmp_path,
        tag,
        "report",
        "echo start >> runs\n" + GATE + "rm -f go\n",
        "schedule: '0 0 1 1 *'\noverlap: queue\n",
    )
    svc(tmp_path, tag, "web")
    b = box()
    r = b.svctl("status", "report")
    assert r.returncode == 0
    match = re.fullmatch(r"down: report: \d+s; next run in (\d+)s\n", r.stdout)
    assert match and 0 < int(match.group(1)) <= 366 * 86400, r.stdout
    assert b.ok("run", "report") == "ok: run: report: started\n"
    wait_for(lambda: runs_of(d / "runs"), 10, "the run svctl asked for")
    assert b.ok("run", "report") == "ok: run: report: still running, queued (overlap: queue)\n"
    assert b.ok("run", "report") == ("ok: run: report: still running, a run is queued already\n")
    r = b.svctl("run", "web", "nope")
    assert r.returncode == 2
    assert r.stdout == (
        "fail: web: not a scheduled job (no 'schedule' or 'every' in its "
        "service.yaml)\nfail: nope: unable to change to service directory: "
        "file does not exist\n"
    )
    (d / "go").touch()
    wait_for(lambda: len(runs_of(d / "runs")) == 2, 10, "the queued run")
    (d / "go").touch()
    b.wait("report", lambda r: r["job"]["last_run"]["end"] and r["job"]["runs"] == 2, 10)
    assert runs_of(d / "runs") == ["start", "start"]  # never more than one queued
    recs = {r["name"]: r for r in json.loads(b.ok("status", "--json", "report"))}
    last = recs["report"]["job"]["last_run"]
    assert last["result"] == "success" and last["exit_code"] == 0
    assert last["start"] <= last["end"] <= time.time()
    b.stop()


def test_a_run_over_its_timeout_is_stopped(box, tmp_path: Path, tag: str) -> None:  # noqa: F811
    svc(
        tmp_path,
        tag,
        "stuck",
        "trap 'echo term >> got; exit 7' TERM\necho $$ > ready\nsleep 1000 & wait $!\n",
        "schedule: '@yearly'\ntimeout: 0.5\n",
    )
    b = box()
    b.ok("run", "stuck")
    rec = b.wait(
        "stuck",
        lambda r: r["job"]["last_run"] and r["job"]["last_run"]["end"],
        10,
        "the run to be stopped",
    )
    assert rec["job"]["last_run"]["result"] == "timeout"
    assert rec["job"]["last_run"]["exit_code"] == 7
    assert "[stuck] run timed out after 0.5s: stopping it" in b.run.err
    b.stop()


def switches(pid: int) -> int:
    """PID 1's context switches so far: each wake-up is at least one."""
    text = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in text.splitlines())
    return int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])


def wake_ups_in_2s(b, name: str, runs: Path) -> int:
    """How often PID 1 woke in a 2 s window once it was idle (for a job every second:
    once its first run ended)."""
    pid = b.run.init_pid
    b.wait(name, lambda r: r["job"] is not None, 10)
    wait_for(lambda: name != "often" or runs_of(runs), 10, "the first run")

    def settled() -> bool:  # our status request and the boot's inotify events done
        before = switches(pid)
        time.sleep(0.3)
        return switches(pid) == before

    if name == "yearly":
        wait_for(settled, 10, "pyinit to go idle")
    first = switches(pid)
    time.sleep(2.0)  # the window: a run every second would show here
    return switches(pid) - first


def test_no_wake_ups_between_runs(box, tmp_path: Path, tag: str) -> None:  # noqa: F811
    """A job due in a year: PID 1 sleeps. The same measurement with a job every second
    shows the wake-ups, so the check can fail."""
    for name, schedule in (("yearly", "@yearly"), ("often", "every 1s")):
        d = svc(tmp_path, tag, name, "echo run >> runs\n", f"schedule: '{schedule}'\n")
        b = box()
        woke = wake_ups_in_2s(b, name, d / "runs")
        assert woke == 0 if name == "yearly" else woke > 0, (name, woke)
        b.stop()
        (tmp_path / "service" / name).rename(tmp_path / f"done-{name}")


def test_overlap_replace_and_on_start(box, tmp_path: Path, tag: str) -> None:  # noqa: F811
    """on_start: run starts one run at boot; `svctl run` with overlap: replace stops it
    (its TERM trap runs) and starts a new run once it has ended."""
    d = svc(
        tmp_path,
        tag,
        "rep",
        "trap 'echo term >> runs; exit 0' TERM\necho start >> runs\nsleep 1000 & wait $!\n",
        "schedule: '@yearly'\noverlap: replace\non_start: run\n",
    )
    b = box()
    wait_for(lambda: runs_of(d / "runs") == ["start"], 10, "the run at start")
    rec = b.wait("rep", lambda r: r["pid"] and r["job"]["runs"] == 1, 10)
    first = rec["pid"]
    assert rec["job"]["last_run"]["result"] == "running"
    assert b.ok("run", "rep") == (
        "ok: run: rep: still running, stopping it first (overlap: replace)\n"
    )
    wait_for(lambda: runs_of(d / "runs") == ["start", "term", "start"], 10, "the new run")
    rec = b.wait("rep", lambda r: r["pid"] and r["job"]["runs"] == 2, 10)
    assert rec["pid"] != first and rec["job"]["last_run"]["result"] == "running"
    b.stop()
