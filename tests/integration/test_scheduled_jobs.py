"""Scheduled jobs (issue 22) with pyinit as a real PID 1: a job on schedule with the
container's environment and its output in prefix mode, overlap: skip and queue,
`svctl run`, a run's timeout, the next run in `svctl status`, and zero wake-ups
between runs. Driven by `every:` intervals of a second and by `svctl run`; nothing
waits for a real minute. (A clock jump cannot be caused here without setting the
host's clock: tests/unit/test_jobs.py covers that path with a fake timer.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
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


# --- svctl, sv and supervise/control on a job (down pauses, up resumes, once is a run) -------
TRAPPED = "trap 'echo int >> got; exit 3' INT\necho $$ > ready\necho start >> runs\n"
SLEEP = "sleep 1000 & wait $!\n"
LINE = r"down: {name}: \d+s; {tail}\n"


def test_down_pauses_the_schedule_and_stops_the_run_up_resumes_it(box, tmp_path, tag) -> None:  # noqa: F811
    """`svctl stop` (down, waiting) stops a run in progress with the job's stop signal and
    pauses the schedule; status says `; paused`; `svctl start` (up, waiting) resumes it
    and starts no run now. As `systemctl stop/start x.timer`."""
    d = svc(tmp_path, tag, "nightly", TRAPPED + SLEEP, "every: 1h\nstop_signal: INT\n")
    b = box()
    b.ok("run", "nightly")
    b.ready("nightly")
    out = b.ok("stop", "nightly")  # waits until the run is down
    assert re.fullmatch(r"ok: " + LINE.format(name="nightly", tail="paused"), out), out
    assert (d / "got").read_text() == "int\n"  # the job's stop_signal, not SIGTERM
    rec = b.rec("nightly")
    assert rec["pid"] is None and rec["job"]["paused"] is True and rec["job"]["next_run"] is None
    assert rec["job"]["last_run"]["result"] == "stopped"
    assert rec["job"]["last_run"]["exit_code"] == 3
    r = b.svctl("status", "nightly")
    assert re.fullmatch(LINE.format(name="nightly", tail="paused"), r.stdout), r.stdout
    assert "[nightly] schedule paused" in b.run.err

    out = b.ok("start", "nightly")  # resumed: ok at once, with no run started
    match = re.fullmatch(r"ok: " + LINE.format(name="nightly", tail=r"next run in (\d+)s"), out)
    assert match and 3590 <= int(match.group(1)) <= 3600, out
    rec = b.rec("nightly")
    assert rec["pid"] is None and rec["job"]["runs"] == 1 and rec["job"]["paused"] is False
    assert runs_of(d / "runs") == ["start"]
    b.stop()


def test_a_down_file_pauses_a_job_until_svctl_up(box, tmp_path, tag) -> None:  # noqa: F811
    """A `down` file: paused from the start (no on_start run either); `svctl up` resumes
    the schedule, whose runs then come every second."""
    d = svc(tmp_path, tag, "lazy", "echo run >> runs\n", "every: 1s\non_start: run\n", down=True)
    b = box()
    rec = b.wait("lazy", lambda r: r.get("job") is not None, 10)
    assert rec["job"]["paused"] is True and rec["job"]["runs"] == 0
    r = b.svctl("status", "lazy")
    assert re.fullmatch(LINE.format(name="lazy", tail="paused"), r.stdout), r.stdout
    assert b.ok("up", "lazy") == ""
    wait_for(lambda: len(runs_of(d / "runs")) >= 2, 10, "two scheduled runs after up")
    rec = b.rec("lazy")
    assert rec["job"]["paused"] is False and rec["job"]["runs"] >= 2
    b.stop()


def test_once_and_runits_letters_go_through_the_scheduler(box, tmp_path, tag) -> None:  # noqa: F811
    """`svctl once` and runit's `sv once` (supervise/control's `o`) are runs under the
    overlap rule with the job's timeout and a last-run record, as `svctl run`; `sv down`
    and `sv up` pause and resume; `svctl term` ends the run and leaves the schedule on."""
    d = svc(
        tmp_path,
        tag,
        "report",
        TRAPPED + GATE + "rm -f go\n",
        "schedule: '@yearly'\ntimeout: 1\nstop_signal: INT\n",
    )
    b = box()
    b.wait("report", lambda r: r.get("job") is not None, 10)
    assert b.ok("once", "report") == ""
    b.ready("report")
    assert b.ok("once", "report") == ""  # still running: overlap skip
    rec = b.wait("report", lambda r: r["job"]["skipped"] == 1, 10, "the second once skipped")
    assert rec["job"]["runs"] == 1
    assert "[report] still running: skipping the run on request (once)" in b.run.err
    rec = b.wait("report", lambda r: r["job"]["last_run"]["end"], 10, "the timeout")
    assert rec["job"]["last_run"]["result"] == "timeout" and (d / "got").read_text() == "int\n"

    sv = shutil.which("sv")
    if sv is None:
        pytest.skip("runit's sv is not installed")
    assert subprocess.run([sv, "once", str(d)], timeout=15).returncode == 0  # `o` to the FIFO
    rec = b.wait("report", lambda r: r["job"]["runs"] == 2 and r["pid"], 10, "sv once's run")
    assert rec["job"]["last_run"]["result"] == "running"
    b.ready("report")
    assert b.ok("term", "report") == ""  # SIGTERM to the run: ended, schedule untouched
    rec = b.wait("report", lambda r: r["job"]["last_run"]["end"], 10, "the run to end")
    assert rec["job"]["last_run"]["signal"] == 15 and rec["job"]["paused"] is False
    assert subprocess.run([sv, "down", str(d)], timeout=15).returncode == 0
    b.wait("report", lambda r: r["job"]["paused"], 10, "sv down to pause it")
    assert subprocess.run([sv, "up", str(d)], timeout=15).returncode == 0
    rec = b.wait("report", lambda r: not r["job"]["paused"], 10, "sv up to resume it")
    assert rec["pid"] is None and rec["job"]["runs"] == 2 and rec["job"]["next_run"]
    b.stop()


def test_exit_stops_the_run_and_the_job_comes_back_afresh(box, tmp_path, tag) -> None:  # noqa: F811
    """`svctl exit` (runit's x): the run in progress is stopped and no queued run starts
    after it; the directory is supervised again as new, its schedule on."""
    d = svc(tmp_path, tag, "sync", TRAPPED + SLEEP, "every: 1h\nstop_signal: INT\noverlap: queue\n")
    b = box()
    b.ok("run", "sync")
    b.ready("sync")
    assert b.ok("run", "sync") == "ok: run: sync: still running, queued (overlap: queue)\n"
    b.ok("-w", "10", "exit", "sync")
    assert (d / "got").read_text() == "int\n"
    rec = b.wait("sync", lambda r: r.get("job") and r["job"]["runs"] == 0, 10, "sync again")
    assert rec["pid"] is None and rec["job"]["paused"] is False and rec["job"]["next_run"]
    assert runs_of(d / "runs") == ["start"]  # the queued run was dropped with the schedule
    b.stop()


def test_status_l_and_metrics_show_a_jobs_next_run_and_last_run(box, tmp_path, tag) -> None:  # noqa: F811
    """After real runs (svctl run): `status -l` has a NEXT RUN column and the job's last
    run in LAST EXIT; /metrics (parsed by Prometheus's parser) the pyinit_job_* families,
    agreeing with `status --json`'s job record."""
    from prometheus_client.parser import text_string_to_metric_families
    from test_service_config import free_port, http_get

    svc(tmp_path, tag, "good", "exit 0\n", "schedule: '@yearly'\n")
    svc(tmp_path, tag, "bad", "exit 2\n", "schedule: '0 3 * * *'\n")
    svc(tmp_path, tag, "held", "exit 0\n", "every: 1h\n", down=True)
    svc(tmp_path, tag, "web")
    port = free_port()
    b = box(flags=("--health-listen", f"127.0.0.1:{port}"))
    for name in ("good", "bad"):
        b.wait(name, lambda r: r.get("job") is not None, 10)
        assert b.ok("run", name) == f"ok: run: {name}: started\n"
        b.wait(name, lambda r: r["job"]["last_run"] and r["job"]["last_run"]["end"], 10)
    recs = {r["name"]: r for r in json.loads(b.ok("status", "--json"))}

    rows = {line.split()[0]: line for line in b.ok("status", "-l").splitlines()}
    header = rows.pop("NAME")
    assert header.split("  ")[:6] == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT"]
    assert "NEXT RUN" in header and set(rows) == {"good", "bad", "held", "web"}
    cut = header.index("LAST EXIT"), header.index("NEXT RUN"), header.index("READY")
    cells = {n: (row[cut[0] : cut[1]].strip(), row[cut[1] : cut[2]].strip())
             for n, row in rows.items()}  # fmt: skip
    assert re.fullmatch(r"success, \d+s ago", cells["good"][0]), cells
    assert re.fullmatch(r"in (\d+d\d\dh|\d+h\d\dm)", cells["good"][1]), cells  # @yearly
    assert re.fullmatch(r"exit 2, \d+s ago", cells["bad"][0]), cells
    assert re.fullmatch(r"in (\d+h\d\dm|\d+m\d\ds|\d+s)", cells["bad"][1]), cells  # < 1 day
    assert cells["held"] == ("-", "paused") and cells["web"] == ("-", "-")

    code, body = http_get(port, "/metrics")
    assert code == 200
    m = {(s.name, tuple(s.labels.items())): s.value
         for f in text_string_to_metric_families(body.decode()) for s in f.samples}  # fmt: skip
    good, bad, held, web = ((("service", n),) for n in ("good", "bad", "held", "web"))
    for key, job in ((good, recs["good"]["job"]), (bad, recs["bad"]["job"])):
        assert m[("pyinit_job_next_run_timestamp_seconds", key)] == job["next_run"]
        assert m[("pyinit_job_runs_total", key)] == 1
        assert m[("pyinit_job_last_run_end_timestamp_seconds", key)] == job["last_run"]["end"]
        assert m[("pyinit_job_paused", key)] == 0
    assert m[("pyinit_job_last_run_success", good)] == 1
    assert m[("pyinit_job_last_run_success", bad)] == 0
    assert m[("pyinit_job_last_run_result", (*bad, ("result", "failure")))] == 1
    assert m[("pyinit_job_paused", held)] == 1 and m[("pyinit_job_runs_total", held)] == 0
    assert ("pyinit_job_next_run_timestamp_seconds", held) not in m
    assert ("pyinit_job_last_run_success", held) not in m  # never ran
    assert not [k for k in m if k[0].startswith("pyinit_job_") and k[1][:1] == web]
    b.stop()
