"""runit's own tools against pyinit (issue 7): Debian's real `sv` (and `runsvstat` where
installed) read the supervise/ dirs pyinit keeps and drive its services through the
control FIFOs; and pyinit's record and stat text match what a real runsv writes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import test_services
from helpers import wait_for
from test_services import SEC, assert_lines, line_re, service

from pyinit.core.records import decode, pid_text, stat_text

box = test_services.box  # the fixture: pyinit as PID 1 and the ways to talk to it
SV = shutil.which("sv")
pytestmark = pytest.mark.skipif(SV is None, reason="runit's sv is not installed")


def sv(*args: str, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run([SV or "sv", *args], capture_output=True, text=True, timeout=timeout)


def sv_ok(*args: str) -> str:
    r = sv(*args)
    assert r.returncode == 0, f"sv {args}: rc {r.returncode}\n{r.stdout}{r.stderr}"
    return r.stdout


def record(d: Path):
    with open(d / "supervise" / "status", "rb") as f:
        return decode(f.read())


def wait_status_second_past(d: Path) -> None:
    """sv's restart check compares whole seconds of the record with its own start:
    let the record's second pass, or sv may see the old process as the restarted one."""
    when = record(d).when_ns // 10**9
    wait_for(lambda: int(time.time()) > when, 2, "the status record's second to pass")


@pytest.mark.pid1
def test_sv_and_runsvstat_read_pyinit_services(box, tmp_path: Path, tag: str) -> None:
    web = service(tmp_path, tag, "web", log="exec cat > out.txt\n")
    lazy = service(tmp_path, tag, "lazy", down=True)
    b = box()
    recs = b.wait_running("web")
    pid, log_pid = recs["web"]["pid"], recs["web"]["log"]["pid"]
    wait_for(lambda: (lazy / "supervise" / "status").exists(), 5, "lazy's status")

    assert_lines(sv_ok("status", str(web), str(lazy)),
                 line_re(f"run: {web}: (pid {pid}) ", SEC, f"; run: log: (pid {log_pid}) ", SEC),
                 line_re(f"down: {lazy}: ", SEC))
    assert (web / "supervise" / "stat").read_text() == "run\n"
    assert (web / "supervise" / "pid").read_text() == f"{pid}\n"
    assert (web / "log" / "supervise" / "pid").read_text() == f"{log_pid}\n"
    assert (lazy / "supervise" / "stat").read_text() == "down\n"
    assert (lazy / "supervise" / "pid").read_text() == ""
    now = time.time_ns()
    assert now - 30 * 10**9 < record(web).when_ns <= now

    runsvstat = shutil.which("runsvstat")
    if runsvstat:  # not in Debian's runit any more; checked where it exists
        r = subprocess.run([runsvstat, str(web)], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and f"{web}: run (pid {pid})" in r.stdout, r.stdout
    b.stop()
    # the files stay, the FIFOs have no reader: sv says so
    assert (web / "supervise" / "stat").read_text() == "down\n"
    r = sv("status", str(web))
    assert r.stdout == f"fail: {web}: runsv not running\n" and r.returncode == 1


@pytest.mark.pid1
def test_sv_commands_drive_pyinit_services(box, tmp_path: Path, tag: str) -> None:
    web = service(tmp_path, tag, "web", log="exec cat > out.txt\n")
    steady = service(tmp_path, tag, "steady")
    lazy = service(tmp_path, tag, "lazy", down=True)
    b = box()
    recs = b.wait_running("web", "steady")
    log_pid = recs["web"]["log"]["pid"]
    first = b.ready("web")

    # down: pyinit stops it; sv sees it go down (its -w check reads our record)
    assert_lines(sv_ok("-w", "5", "down", str(web)), line_re(f"ok: down: {web}: ", SEC,
                                                             ", normally up"))
    rec = b.rec("web")
    assert rec["state"] == "down" and rec["want"] == "d" and rec["pid"] is None
    assert rec["log"]["pid"] == log_pid  # the logger is its own slot
    assert (web / "supervise" / "stat").read_text() == "down\n"
    assert_lines(sv_ok("status", str(web)),
                 line_re(f"down: {web}: ", SEC, f", normally up; run: log: (pid {log_pid}) ",
                         SEC))

    # up
    assert sv_ok("up", str(web)) == ""
    rec = b.wait("web", lambda r: r["state"] == "run" and r["pid"] not in (None, first))
    second = b.ready("web")
    assert rec["want"] == "u"
    assert_lines(sv_ok("status", str(web)),
                 line_re(f"run: {web}: (pid {second}) ", SEC, f"; run: log: (pid {log_pid}) ",
                         SEC))

    # pause and cont show in the record
    sv_ok("pause", str(web))
    b.wait("web", lambda r: r["paused"])
    wait_for(lambda: record(web).paused, 5, "paused in the record")
    assert (web / "supervise" / "stat").read_text() == "run, paused\n"
    sv_ok("cont", str(web))
    b.wait("web", lambda r: not r["paused"])

    # term: TERM to run; wanted up, so pyinit restarts it at once
    sv_ok("term", str(web))
    b.wait("web", lambda r: r["state"] == "run" and r["pid"] not in (None, second))
    third = b.ready("web")

    # restart (sv sends tcu and waits, reading our record)
    wait_status_second_past(steady)
    before = b.ready("steady")
    out = sv_ok("restart", str(steady))
    rec = b.wait("steady", lambda r: r["state"] == "run" and r["pid"] not in (None, before))
    assert_lines(out, line_re(f"ok: run: {steady}: (pid {rec['pid']}) ", SEC))
    assert rec["want"] == "u" and rec["last_signal"] is None and rec["last_exit_code"] == 0

    # once: a normally-down service runs, wanted down (not restarted)
    assert sv_ok("once", str(lazy)) == ""
    rec = b.wait("lazy", lambda r: r["state"] == "run" and r["pid"])
    assert rec["want"] == "d"
    lazy_pid = b.ready("lazy")
    assert_lines(sv_ok("status", str(lazy)),
                 line_re(f"run: {lazy}: (pid {lazy_pid}) ", SEC, ", normally down, want down"))
    assert (lazy / "supervise" / "stat").read_text() == "run, want down\n"
    sv_ok("term", str(lazy))
    b.wait("lazy", lambda r: r["state"] == "down")
    wait_for(lambda: record(lazy).state == "down", 5, "lazy down in the record")
    assert b.rec("lazy")["want"] == "d"

    # the logger has its own control FIFO
    sv_ok("-w", "5", "down", str(web / "log"))
    rec = b.wait("web", lambda r: r["log"]["state"] == "down")
    assert rec["pid"] == third  # run is untouched
    sv_ok("up", str(web / "log"))
    b.wait("web", lambda r: r["log"]["state"] == "run" and r["log"]["pid"])

    # exit: pyinit lets the service go (as runsv exits): sv then finds no supervisor
    sv_ok("exit", str(lazy))
    wait_for(lambda: "lazy" not in b.status(), 5, "lazy forgotten")
    # (a child forked a moment ago may hold a copy of the fd until it execs)
    wait_for(lambda: sv("status", str(lazy)).stdout == f"fail: {lazy}: runsv not running\n",
             5, "sv to find no supervisor")
    b.stop()


def test_records_match_a_real_runsv(tmp_path: Path, tag: str) -> None:
    """Our decoder and stat text against the files Debian's runsv writes."""
    runsv = shutil.which("runsv")
    if runsv is None:
        pytest.skip("runit's runsv is not installed")
    d = service(tmp_path, tag, f"{tag}-real")
    started = time.time_ns()
    proc = subprocess.Popen([runsv, str(d)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    sup = d / "supervise"

    def agrees(state: str, **flags) -> bool:
        try:
            raw = (sup / "status").read_bytes()
            text = (sup / "stat").read_text()
            pid = (sup / "pid").read_text()
        except FileNotFoundError:
            return False
        if len(raw) != 20:
            return False
        st = decode(raw)
        if st.state != state or any(getattr(st, k) != v for k, v in flags.items()):
            return False
        assert text == stat_text(st), (text, st)
        assert pid == pid_text(st.pid), (pid, st)
        # runit's TAI64N epoch (2^62 + 10, no leap seconds): a change since we started
        # runsv, never one in the future (true TAI would be 27 s ahead)
        assert started - 10**9 <= st.when_ns <= time.time_ns() + 10**9, st
        return True

    try:
        wait_for(lambda: agrees("run", want="u") and (d / "ready").exists(), 5, "runsv's run")
        sv_ok("pause", str(d))
        wait_for(lambda: agrees("run", paused=True), 5, "paused")
        sv_ok("cont", str(d))
        sv_ok("down", str(d))
        wait_for(lambda: agrees("down", want="d", pid=0), 5, "down")
        sv_ok("exit", str(d))
        proc.wait(10)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        from helpers import _kill, tagged_processes

        for p in tagged_processes(tag):
            _kill(p.pid)
