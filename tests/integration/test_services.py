"""Service supervision with pyinit as a real PID 1 (issue 3), and svctl against it.

Every service's `run` execs `/bin/sh ./main.sh TAG NAME`, so its processes carry the
test's tag (leak check) and can be found with psutil; pids in svctl's output are the
namespace's, mapped from host pids through /proc/PID/status NSpid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, Run, wait_for, write_script

from pyinit.control.protocol import request

pytestmark = pytest.mark.pid1

SVCTL_CODE = "from pyinit.cli.svctl import main; main()"
SEC = r"\d+s"  # the seconds field: the only part of a status line matched loosely

# Written by a body once its traps are set (see Box.ready): its pid, as the container sees it.
READY = "echo $$ > ready\n"
# A long-running body: exits 0 on TERM (and takes its sleep with it).
LONG = "trap 'kill $! 2>/dev/null; exit 0' TERM\n" + READY + "sleep 1000 & wait $!\n"


def service(tmp: Path, tag: str, name: str, body: str = LONG, *, log: str | None = None,
            finish: str | None = None, down: bool = False, check: str | None = None,
            base: str = "service") -> Path:
    """A runit service dir; body runs as main.sh with the tag and name as $1 $2."""
    d = tmp / base / name
    d.mkdir(parents=True)
    write_script(d / "main.sh", body)
    write_script(d / "run", f"exec /bin/sh ./main.sh {tag} '{name}'\n")
    if log is not None:
        write_script(d / "log" / "main.sh", log)
        write_script(d / "log" / "run", f"exec /bin/sh ./main.sh {tag} '{name}/log'\n")
    if finish is not None:
        write_script(d / "finish", finish)
    if check is not None:
        write_script(d / "check", check)
    if down:
        (d / "down").touch()
    return d


def remove_dir(path: Path) -> None:
    """Remove a watched dir as `rm -rf` would, in one step as pyinit sees it: renamed
    away first, so pyinit cannot add supervise/ files to it while it is emptied."""
    trash = path.with_name(f".removed-{path.name}-{time.monotonic_ns()}")
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)


def catches(pid: int, signum: int) -> bool:
    """Has process pid a handler for signum (e.g. a shell trap is set)?"""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


def ns_pid(host_pid: int) -> int:
    """The pid a process has in its own (innermost) pid namespace."""
    with open(f"/proc/{host_pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {host_pid}")


class Box:
    """A running pyinit plus the ways tests talk to it."""

    def __init__(self, run: Run, tmp: Path, tag: str, run_dir: Path) -> None:
        self.run = run
        self.tmp = tmp
        self.tag = tag
        self.run_dir = run_dir
        self.sock = str(run_dir / "control.sock")

    # --- status over the socket, in-process (fast enough to poll) -----------------------
    def status(self) -> dict[str, dict]:
        reply = request(self.sock, {"cmd": "status", "services": []}, timeout=5)
        assert reply["ok"], reply
        return {rec["name"]: rec for rec in reply["services"]}

    def try_status(self) -> dict[str, dict]:
        try:
            return self.status()
        except OSError:
            return {}

    def rec(self, name: str) -> dict:
        return self.status()[name]

    def wait(self, name: str, cond, timeout: float = 5.0, what: str = "") -> dict:
        def check():
            rec = self.try_status().get(name)
            return rec if rec is not None and cond(rec) else None
        return wait_for(check, timeout, what or f"{name} to reach the wanted state")

    def wait_running(self, *names: str, timeout: float = 5.0) -> dict[str, dict]:
        def check():
            recs = self.try_status()
            ok = all(n in recs and recs[n]["state"] == "run" and recs[n]["pid"]
                     and (not recs[n]["log"] or recs[n]["log"]["pid"]) for n in names)
            return recs if ok else None
        return wait_for(check, timeout, f"{names} running")

    def ready(self, name: str, timeout: float = 5.0, base: str = "service") -> int:
        """Wait until the current process of `name` has set its traps; returns its pid."""
        path = self.tmp / base / name / "ready"

        def check():
            rec = self.try_status().get(name)
            try:
                return rec and rec["pid"] and path.read_text().strip() == str(rec["pid"]) \
                    and rec["pid"]
            except FileNotFoundError:
                return None
        return int(wait_for(check, timeout, f"{name} to be ready"))

    # --- processes -----------------------------------------------------------------------
    def host_pid(self, pid: int) -> int:
        """The host pid of the process pyinit knows as pid."""
        for p in self.run.descendants():
            try:
                if ns_pid(p.pid) == pid:
                    return p.pid
            except OSError:
                continue
        raise AssertionError(f"no process {pid} in the container")

    def proc(self, name: str) -> psutil.Process:
        """The process of service `name` (or `name/log`), by the pid pyinit reports."""
        svc, _, sub = name.partition("/")
        rec = self.rec(svc)
        pid = rec["log"]["pid"] if sub == "log" else rec["pid"]
        assert pid, f"{name} has no process: {rec}"
        return psutil.Process(self.host_pid(pid))

    def by_cmd(self, name: str) -> list[psutil.Process]:
        """The processes running `main.sh TAG name`, found without asking pyinit."""
        found = []
        for p in self.run.descendants():
            try:
                cmd = p.cmdline()
            except psutil.Error:
                continue
            if cmd[-2:] == [self.tag, name] and "./main.sh" in cmd:
                found.append(p)
        # a subshell main.sh forks (`sleep & wait`) has the same command line until it execs
        pids = {p.pid for p in found}
        return [p for p in found if p.ppid() not in pids]

    def find(self, name: str) -> psutil.Process | None:
        procs = self.by_cmd(name)
        return procs[0] if procs else None

    def ns_pid_of(self, name: str) -> int:
        """The container pid of service `name`'s main.sh, from ps alone (waiting out the
        moment between fork and the exec of main.sh)."""
        procs = wait_for(lambda: self.by_cmd(name), 5, f"main.sh of {name}")
        if len(procs) != 1:
            every = []
            for p in self.run.descendants():
                try:
                    every.append((p.pid, ns_pid(p.pid), p.ppid(), p.cmdline()))
                except (OSError, psutil.Error):
                    pass
            raise AssertionError(f"{len(procs)} processes for {name}: {every}")
        return ns_pid(procs[0].pid)

    # --- svctl -----------------------------------------------------------------------------
    def svctl(self, *args: str, python: str = sys.executable, prefix: tuple = (),
              env: dict | None = None, run_dir: bool = True,
              timeout: float = 30) -> subprocess.CompletedProcess:
        full_env = dict(os.environ)
        full_env.pop("PYINIT_RUN_DIR", None)
        full_env.update(env or {})
        full_env["PYTHONPATH"] = str(ROOT)
        argv = [*prefix, python, "-c", SVCTL_CODE]
        if run_dir:
            argv += ["--run-dir", str(self.run_dir)]
        return subprocess.run(argv + list(args), capture_output=True, text=True,
                              env=full_env, timeout=timeout)

    def ok(self, *args: str, **kw) -> str:
        r = self.svctl(*args, **kw)
        assert r.returncode == 0, f"svctl {args}: rc {r.returncode}\n{r.stdout}{r.stderr}"
        return r.stdout

    def in_ns(self, *args: str) -> subprocess.CompletedProcess:
        """svctl run inside pyinit's pid and mount namespaces, so pids mean the same."""
        return self.svctl(*args, prefix=("nsenter", "-t", str(self.run.init_pid), "-p", "-m"))

    # --- the end ------------------------------------------------------------------------
    def stop(self, expect: int = 0, timeout: float = 20) -> float:
        """SIGTERM pyinit and wait; returns how long the shutdown took."""
        t = time.monotonic()
        self.run.kill(signal.SIGTERM)
        rc = self.run.wait(timeout)
        took = time.monotonic() - t
        assert rc == expect, f"exit {rc}\nstderr:\n{self.run.err}"
        assert "internal error" not in self.run.err, self.run.err
        return took


@pytest.fixture
def box(pyinit_run, tmp_path: Path, tag: str):
    def start(*args: str, flags: tuple = (), run_dir: Path | None = None, **kw) -> Box:
        (tmp_path / "service").mkdir(exist_ok=True)
        rd = run_dir or tmp_path / "run"
        if run_dir is not None:
            flags = (*flags, "--run-dir", str(run_dir))
        run = pyinit_run(*args, flags=flags, **kw)
        b = Box(run, tmp_path, tag, rd)
        wait_for(lambda: os.path.exists(b.sock), 10, "the control socket")
        return b
    return start


def line_re(*parts: str) -> re.Pattern:
    """A full-line pattern: literal text, with SEC (the seconds) left as a regex."""
    return re.compile("".join(p if p == SEC else re.escape(p) for p in parts))


def assert_lines(out: str, *patterns: re.Pattern) -> None:
    lines = out.splitlines()
    assert len(lines) == len(patterns), out
    for line, pat in zip(lines, patterns):
        assert pat.fullmatch(line), f"{line!r} does not match {pat.pattern!r}"


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


# =========================================================================================
# how `run`, `finish` and `log/run` are started
# =========================================================================================
ENV_PROBE = """\
out=$(readlink /proc/$$/fd/1)
{
  echo "cwd=$(pwd)"
  echo "stdin=$(readlink /proc/$$/fd/0)"
  echo "stdout=$out"
  echo "pid=$$"
  echo "stat=$(cat /proc/$$/stat)"
  for f in /proc/$$/fd/*; do echo "fd=$(readlink $f)"; done
} > probe.tmp
mv probe.tmp probe.txt
"""


def parse_probe(path: Path) -> dict:
    out: dict = {"fd": []}
    for line in read_lines(path):
        key, _, value = line.partition("=")
        if key == "fd":
            out["fd"].append(value)
        else:
            out[key] = value
    fields = out["stat"].rsplit(")", 1)[1].split()
    out["ppid"], out["pgrp"], out["session"] = int(fields[1]), int(fields[2]), int(fields[3])
    out["pid"] = int(out["pid"])
    return out


def test_run_gets_service_dir_devnull_and_own_session(box, tmp_path: Path, tag: str) -> None:
    plain = service(tmp_path, tag, "plain",
                    ENV_PROBE + "echo 'plain says hi'\necho 'plain on stderr' >&2\n" + LONG)
    logged = service(tmp_path, tag, "logged", ENV_PROBE + "echo 'to the logger'\n" + LONG,
                     log=ENV_PROBE + "exec cat > out.txt\n")
    b = box()
    recs = b.wait_running("plain", "logged")
    wait_for(lambda: (plain / "probe.txt").exists() and (logged / "probe.txt").exists()
             and (logged / "log" / "probe.txt").exists(), 5, "the probes")
    p = parse_probe(plain / "probe.txt")
    assert p["cwd"] == str(plain)
    assert p["stdin"] == "/dev/null"
    assert p["session"] == p["pid"] == p["pgrp"], "run must lead a new session"
    assert p["ppid"] == 1, "run's parent is pyinit, PID 1"
    assert p["pid"] == recs["plain"]["pid"]
    # nothing of pyinit's leaks into services: no signalfd, inotify, control socket
    assert not [fd for fd in p["fd"] if "anon_inode" in fd or "socket" in fd], p["fd"]
    # stdout and stderr are pyinit's own
    wait_for(lambda: "plain says hi" in b.run.out, 5, "run's stdout in pyinit's stdout")
    wait_for(lambda: "plain on stderr" in b.run.err, 5, "run's stderr in pyinit's stderr")

    r = parse_probe(logged / "probe.txt")
    lg = parse_probe(logged / "log" / "probe.txt")
    assert r["stdout"].startswith("pipe:[") and r["stdout"] == lg["stdin"]
    assert lg["cwd"] == str(logged / "log")
    assert lg["session"] == lg["pid"] and lg["ppid"] == 1
    assert lg["pid"] == recs["logged"]["log"]["pid"]
    out_txt = logged / "log" / "out.txt"
    wait_for(lambda: out_txt.exists() and "to the logger" in out_txt.read_text(), 5,
             "the line in the logger's output")
    assert "to the logger" not in b.run.out
    b.stop()


# =========================================================================================
# finish
# =========================================================================================
FINISH_LOG = 'echo "$1 $2" >> finish.txt\n'


def test_finish_gets_exit_code_or_signal(box, tmp_path: Path, tag: str) -> None:
    once = "if [ -e ran ]; then\n" + LONG + "fi\ntouch ran\n"
    exits3 = service(tmp_path, tag, "exits3", once + "exit 3\n", finish=FINISH_LOG)
    killed = service(tmp_path, tag, "killed", once + "kill -9 $$\n", finish=FINISH_LOG)
    termed = service(tmp_path, tag, "termed", "sleep 1000 & wait $!\n", finish=FINISH_LOG)
    b = box()
    wait_for(lambda: read_lines(exits3 / "finish.txt") == ["3 0"], 5, "finish 3 0")
    wait_for(lambda: read_lines(killed / "finish.txt") == ["-1 9"], 5, "finish -1 9")
    # then run is restarted (it ran less than a second: after the 0.1 s backoff)
    recs = b.wait_running("exits3", "killed", "termed")
    b.ready("exits3")
    b.ready("killed")
    for name in ("exits3", "killed"):
        assert recs[name]["restarts"] == 1
    assert (recs["exits3"]["last_exit_code"], recs["exits3"]["last_signal"]) == (3, None)
    assert (recs["killed"]["last_exit_code"], recs["killed"]["last_signal"]) == (None, 9)
    assert not (termed / "finish.txt").exists()
    # at shutdown each service gets TERM, then its finish runs
    b.stop()
    assert read_lines(termed / "finish.txt") == ["-1 15"]
    assert read_lines(exits3 / "finish.txt") == ["3 0", "0 0"]  # its TERM trap exits 0
    assert read_lines(killed / "finish.txt") == ["-1 9", "0 0"]


def test_finish_that_hangs_is_killed_and_supervision_goes_on(box, tmp_path: Path,
                                                             tag: str) -> None:
    hang = service(
        tmp_path, tag, "hang",
        "if [ -e ran ]; then\n" + LONG + "fi\ntouch ran\nexit 1\n",
        finish="[ -e finish.started ] && exit 0\n"  # hangs the first time only
               f"date +%s.%N > finish.started\nexec /bin/sh -c 'sleep 1000; :' {tag}-finish\n",
    )
    service(tmp_path, tag, "bystander")
    b = box()
    by_pid = b.wait_running("bystander")["bystander"]["pid"]
    rec = b.wait(hang.name, lambda r: r["state"] == "finish", 5, "finish running")
    # visible in sv format while it hangs
    out = b.ok("status", "hang")
    assert line_re("finish: hang: (pid ", str(rec["pid"]), ") ", SEC).fullmatch(out.strip()), out
    # pyinit still answers at once while finish hangs
    t = time.monotonic()
    assert b.rec("bystander")["pid"] == by_pid
    assert time.monotonic() - t < 2.5  # not blocked for finish's 5 s timeout
    # after finish's 5 s timeout it is SIGKILLed and run starts again
    recs = b.wait_running("hang", timeout=10)
    finish_started = float((hang / "finish.started").read_text())
    waited = time.time() - finish_started
    assert 4.5 < waited < 8, waited
    assert recs["hang"]["restarts"] == 1
    assert recs["bystander"]["pid"] == by_pid
    b.stop()


# =========================================================================================
# down file, restarts, backoff
# =========================================================================================
def test_down_file_means_not_started_until_up(box, tmp_path: Path, tag: str) -> None:
    lazy = service(tmp_path, tag, "lazy", "touch started\n" + LONG, down=True)
    service(tmp_path, tag, "eager")
    b = box()
    recs = b.wait_running("eager")
    assert recs["lazy"]["state"] == "down" and recs["lazy"]["pid"] is None
    assert recs["lazy"]["want"] == "d" and recs["lazy"]["normally_up"] is False
    assert b.find("lazy") is None and not (lazy / "started").exists()
    assert_lines(b.ok("status", "lazy"), line_re("down: lazy: ", SEC))
    assert b.ok("up", "lazy") == ""
    recs = b.wait_running("lazy")
    assert recs["lazy"]["pid"] == b.ns_pid_of("lazy")
    wait_for(lambda: (lazy / "started").exists(), 5, "lazy's run")
    assert_lines(b.ok("status", "lazy"),
                 line_re("run: lazy: (pid ", str(recs["lazy"]["pid"]), ") ", SEC,
                         ", normally down"))
    assert_lines(b.ok("-w", "5", "down", "lazy"), line_re("ok: down: lazy: ", SEC))
    b.stop()


def test_restart_backoff_doubles(box, tmp_path: Path, tag: str) -> None:
    crash = service(tmp_path, tag, "crash", "date +%s.%N >> starts\nexit 1\n")
    b = box()
    wait_for(lambda: len(read_lines(crash / "starts")) >= 6, 10, "six starts")
    starts = [float(x) for x in read_lines(crash / "starts")]
    gaps = [b2 - a for a, b2 in zip(starts, starts[1:])][:5]
    expected = [0.1, 0.2, 0.4, 0.8, 1.6]
    for gap, want in zip(gaps, expected):
        assert want - 0.02 <= gap <= want + 0.3, f"gaps {gaps}, expected about {expected}"
    rec = b.rec("crash")
    assert rec["restarts"] >= 5 and rec["last_exit_code"] == 1
    b.stop()


# =========================================================================================
# log pipes
# =========================================================================================
CHATTY = """\
n=$(cat inst 2>/dev/null || echo 0); n=$((n+1)); echo $n > inst
i=0
while :; do
  i=$((i+1))
  echo "$n $i"
  echo $i > count.tmp; mv count.tmp count.$n
  if [ -e hold ]; then
    echo $i > held.tmp; mv held.tmp held
    while [ -e hold ]; do sleep 0.02; done
    rm -f held
  fi
  sleep 0.02
done
"""


def test_log_lines_survive_restarts_of_either_side(box, tmp_path: Path, tag: str) -> None:
    svc = service(tmp_path, tag, "chatty", CHATTY, log="exec cat >> ../out.txt\n")
    out = svc / "out.txt"
    b = box()
    recs = b.wait_running("chatty")
    log_pid = recs["chatty"]["log"]["pid"]

    def has(n: int, i: int):
        return lambda: f"{n} {i}" in read_lines(out)

    def count(n: int) -> int:
        try:
            return int((svc / f"count.{n}").read_text())
        except (FileNotFoundError, ValueError):
            return 0

    wait_for(has(1, 5), 5, "lines from the first run")
    # 1. kill run: the logger keeps its pipe and gets the next run's lines
    os.kill(b.proc("chatty").pid, signal.SIGKILL)
    wait_for(has(2, 5), 5, "lines from the restarted run")
    assert b.rec("chatty")["log"]["pid"] == log_pid, "the logger was not restarted"

    def quiesce() -> int:
        """Hold the writer, wait until the logger wrote its last line; returns that i."""
        (svc / "hold").touch()
        held = int(wait_for(lambda: (svc / "held").exists() and (svc / "held").read_text(),
                            5, "the writer to hold"))
        wait_for(has(2, held), 5, "the logger to catch up")
        return held

    def release() -> None:
        (svc / "hold").unlink()
        wait_for(lambda: not (svc / "held").exists(), 5, "the writer to go on")

    # 2. stop the logger; lines written meanwhile wait in the pipe
    held = quiesce()
    run_pid = b.rec("chatty")["pid"]
    assert_lines(b.ok("-w", "5", "down", "chatty/log"),
                 line_re("ok: down: chatty/log: ", SEC, ", normally up"))
    release()
    wait_for(lambda: count(2) >= held + 10, 5, "lines written while the logger is down")
    assert not has(2, held + 5)()
    b.ok("-w", "5", "up", "chatty/log")
    target = count(2)
    wait_for(has(2, target), 5, "the lines written while the logger was down")
    # 3. SIGKILL the logger: restarted, and nothing written meanwhile is lost
    held = quiesce()
    old_log = b.proc("chatty/log")
    old_log.kill()
    old_log.wait(5)
    release()
    wait_for(lambda: count(2) >= held + 10, 5, "more lines")
    wait_for(has(2, held + 10), 5, "lines after the logger's restart")
    rec = b.rec("chatty")
    assert rec["pid"] == run_pid, "run was not restarted by the logger's restarts"
    assert rec["log"]["restarts"] == 1  # only restarts pyinit did on its own count
    b.stop()
    lines = read_lines(out)
    for n in (1, 2):
        seq = [int(line.split()[1]) for line in lines if line.split()[0] == str(n)]
        assert seq == list(range(1, len(seq) + 1)), f"instance {n}: lost or repeated lines"


# =========================================================================================
# hot add/remove, rescans
# =========================================================================================
def test_hot_add_and_remove(box, tmp_path: Path, tag: str) -> None:
    service(tmp_path, tag, "first")
    b = box()
    first = b.wait_running("first")["first"]["pid"]
    new = service(tmp_path, tag, "second")  # mkdir, write run, chmod: a burst of events
    b.wait_running("second", timeout=4)  # inotify, not runsvdir's 5 s poll
    proc = b.proc("second")
    # removed while running: stopped and forgotten
    remove_dir(new)
    proc.wait(3)
    wait_for(lambda: "second" not in b.status(), 4, "second to be forgotten")
    assert b.rec("first")["pid"] == first
    # and it can come back
    service(tmp_path, tag, "second")
    b.wait_running("second", timeout=3)
    b.stop()


def test_sighup_and_svctl_reload_rescan(box, tmp_path: Path, tag: str) -> None:
    # no service writes into its dir before the checks: that would trigger a rescan
    hup_body = "trap 'echo HUP >> hups' HUP\nwhile :; do sleep 1000 & wait $!; done\n"
    service(tmp_path, tag, "base", "sleep 1000 & wait $!\n")
    b = box(flags=("--service-dir", str(tmp_path / "extra1"),
                   "--service-dir", str(tmp_path / "extra2")))
    b.wait_running("base")
    # these dirs did not exist at boot, so nothing watches them: only a rescan finds them
    one = service(tmp_path, tag, "one", hup_body, base="extra1")
    assert "one" not in b.status()
    b.run.kill(signal.SIGHUP)
    b.wait_running("one")
    wait_for(lambda: catches(b.proc("one").pid, signal.SIGHUP), 5, "one's HUP trap")
    service(tmp_path, tag, "two", "sleep 1000 & wait $!\n", base="extra2")
    assert "two" not in b.status()
    assert b.ok("reload") == ""
    b.wait_running("two")
    assert "rescanning service directories" in b.run.err
    # `reload SERVICE` is LSB reload: HUP to that service
    out = b.ok("reload", "one")
    assert line_re("ok: run: one: (pid ", str(b.rec("one")["pid"]), ") ", SEC).fullmatch(
        out.strip()), out
    wait_for(lambda: read_lines(one / "hups") == ["HUP"], 5, "the HUP")
    b.stop()


# =========================================================================================
# shutdown
# =========================================================================================
def test_parallel_shutdown_with_a_term_ignorer(box, tmp_path: Path, tag: str) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    for name in ("t1", "t2", "t3"):
        service(tmp_path, tag, name,
                f"trap 'echo \"last words of {name}\"; echo bye > {marks}/{name}; "
                "kill $! 2>/dev/null; exit 0' TERM\n" + READY + "sleep 1000 & wait $!\n",
                log="exec cat >> ../log.txt\n" if name == "t1" else None)
    service(tmp_path, tag, "ignorer",
            "trap '' TERM\n" + READY + "while :; do sleep 1000 & wait $!; done\n")
    b = box(flags=("--kill-timeout", "1", "-v"))
    b.wait_running("t1", "t2", "t3", "ignorer")
    for name in ("t1", "t2", "t3", "ignorer"):
        b.ready(name)
    took = b.stop()
    assert sorted(p.name for p in marks.iterdir()) == ["t1", "t2", "t3"]
    assert 0.9 < took < 2.5, f"shutdown took {took:.2f}s, not about 1s\n{b.run.err}"
    assert "[ignorer] run exited with signal SIGKILL" in b.run.err
    # the logger was stopped after its service: the line from the TERM trap got through
    assert "last words of t1" in read_lines(tmp_path / "service" / "t1" / "log.txt")


def test_shutdown_container_exit_code(box, tmp_path: Path, tag: str) -> None:
    service(tmp_path, tag, "web")
    b = box()
    b.wait_running("web")
    assert b.ok("shutdown-container", "--exit-code", "7") == ""
    assert b.run.wait(15) == 7


def test_subreaper_mode_smoke(box, tmp_path: Path, tag: str) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    service(tmp_path, tag, "web",
            f"trap 'echo bye > {marks}/web; kill $! 2>/dev/null; exit 0' TERM\n" + READY
            + "echo hello\nsleep 1000 & wait $!\n", log="cat >> ../log.txt\n")
    b = box(pid1=False)
    recs = b.wait_running("web")
    b.ready("web")
    # not in a namespace: pids are the host's
    [web] = wait_for(lambda: b.by_cmd("web"), 5, "web's main.sh")
    [log] = wait_for(lambda: b.by_cmd("web/log"), 5, "the logger's main.sh")
    assert recs["web"]["pid"] == web.pid and recs["web"]["log"]["pid"] == log.pid
    assert web.ppid() == log.ppid() == b.run.proc.pid
    assert_lines(b.ok("status"), line_re("run: web: (pid ", str(recs["web"]["pid"]), ") ", SEC,
                                         "; run: log: (pid ", str(recs["web"]["log"]["pid"]),
                                         ") ", SEC))
    wait_for(lambda: "hello" in read_lines(tmp_path / "service" / "web" / "log.txt"), 5, "log")
    b.stop()
    assert (marks / "web").read_text() == "bye\n"


# =========================================================================================
# svctl: status in sv's format, --json, tree, exit codes
# =========================================================================================
def test_svctl_status_format_json_tree_and_exit_codes(box, tmp_path: Path, tag: str) -> None:
    web = service(tmp_path, tag, "web", log="cat >> ../web.log\n")
    service(tmp_path, tag, "batch", down=True)
    service(tmp_path, tag, "worker")
    b = box()
    b.wait_running("web", "worker")
    web_pid, log_pid, worker_pid = (b.ns_pid_of(n) for n in ("web", "web/log", "worker"))
    for name in ("web", "web/log"):  # each sh has forked its sleep / cat
        wait_for(lambda name=name: b.find(name).children(), 5, f"{name}'s child")

    # every service, sorted by name, byte for byte except the seconds
    assert_lines(
        b.ok("status"),
        line_re("down: batch: ", SEC),
        line_re("run: web: (pid ", str(web_pid), ") ", SEC, "; run: log: (pid ", str(log_pid),
                ") ", SEC),
        line_re("run: worker: (pid ", str(worker_pid), ") ", SEC),
    )
    # names as given, paths as sv users type them, `s` for status
    assert_lines(b.ok("s", str(web), "worker/"),
                 line_re("run: ", str(web), ": (pid ", str(web_pid), ") ", SEC,
                         "; run: log: (pid ", str(log_pid), ") ", SEC),
                 line_re("run: worker/: (pid ", str(worker_pid), ") ", SEC))
    assert_lines(b.ok("status", "web/log"), line_re("run: web/log: (pid ", str(log_pid), ") ",
                                                    SEC))
    # PYINIT_RUN_DIR works instead of --run-dir
    r = b.svctl("status", "worker", run_dir=False, env={"PYINIT_RUN_DIR": str(b.run_dir)})
    assert r.returncode == 0 and r.stdout.startswith("run: worker: ")
    # one exit code per missing service, as sv
    r = b.svctl("status", "nope", "worker", "gone")
    assert r.returncode == 2
    missing = "unable to change to service directory: file does not exist"
    assert_lines(r.stdout, line_re(f"fail: nope: {missing}"),
                 line_re("run: worker: (pid ", str(worker_pid), ") ", SEC),
                 line_re(f"fail: gone: {missing}"))

    # --json, from inside the namespace so rss/cpu are the service's
    r = b.in_ns("status", "--json")
    assert r.returncode == 0, r.stderr
    recs = {rec["name"]: rec for rec in json.loads(r.stdout)}
    assert sorted(recs) == ["batch", "web", "worker"]
    w = recs["web"]
    now = time.time()
    assert w["state"] == "run" and w["pid"] == web_pid and w["want"] == "u"
    assert now - 30 < w["since"] <= now and 0 <= w["uptime"] < 30
    assert w["restarts"] == 0 and w["last_exit_code"] is None and w["last_signal"] is None
    assert w["normally_up"] is True and w["path"] == str(web) and w["error"] is None
    assert "ready" in w and w["paused"] is False and w["got_term"] is False
    assert w["rss"] > 0 and w["cpu_seconds"] >= 0 and w["processes"] == 2  # sh + sleep
    assert w["log"]["pid"] == log_pid and w["log"]["state"] == "run" and w["log"]["rss"] > 0
    assert w["log"]["processes"] == 2  # sh + cat
    assert recs["batch"]["state"] == "down" and recs["batch"]["pid"] is None
    assert recs["batch"]["normally_up"] is False and recs["batch"]["log"] is None

    # tree: each service's processes, pids as seen in the container
    r = b.in_ns("tree")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "\033[" not in out  # no colour when not a terminal
    for pid, cmd in ((web_pid, f"./main.sh {tag} web"), (log_pid, f"./main.sh {tag} web/log"),
                     (worker_pid, f"./main.sh {tag} worker")):
        assert re.search(rf"^\s+(run|log)\s+{pid} .*{re.escape(cmd)}$", out, re.M), out
    assert re.search(r"^\s+└\s+\d+ .*sleep 1000$", out, re.M), out
    assert out.splitlines()[0].startswith("batch")
    r = b.in_ns("tree", "worker")
    assert r.returncode == 0 and "web" not in r.stdout and "worker" in r.stdout

    # usage errors and an unreachable pyinit: 100
    for args in (["frobnicate"], [], ["-w"], ["-w", "abc", "up", "web"], ["--bogus", "status"],
                 ["shutdown-container", "--exit-code", "300"]):
        r = b.svctl(*args)
        assert r.returncode == 100, (args, r.stdout, r.stderr)
        assert "usage: svctl" in r.stderr and r.stdout == ""
    nowhere = tmp_path / "nowhere"
    r = b.svctl("--run-dir", str(nowhere), "status", run_dir=False)
    assert r.returncode == 100 and r.stdout == ""
    assert r.stderr == (f"svctl: fatal: cannot reach pyinit at {nowhere}/control.sock: "
                        "No such file or directory\n")
    r = b.svctl("down", "web", run_dir=False, env={"PYINIT_RUN_DIR": str(nowhere)})
    assert r.returncode == 100 and f"{nowhere}/control.sock" in r.stderr
    b.stop()


# =========================================================================================
# svctl: commands and waits
# =========================================================================================
SIGNALLED = """\
for s in HUP USR1 USR2 ALRM INT QUIT; do
  trap "echo $s >> sig.txt; kill \\$! 2>/dev/null" $s
done
trap 'kill $! 2>/dev/null; exit 0' TERM
echo $$ > ready
while :; do sleep 1000 & wait $!; done
"""


def test_svctl_commands_with_wait(box, tmp_path: Path, tag: str) -> None:
    # one service per group of restarts: quick restarts of one service back off
    worker = service(tmp_path, tag, "worker", SIGNALLED)
    service(tmp_path, tag, "w2")
    service(tmp_path, tag, "lsb")
    web = service(tmp_path, tag, "web", check="test -e available\n")
    service(tmp_path, tag, "batch", "touch ran\n" + LONG, down=True)
    service(tmp_path, tag, "stubborn",
            "trap '' TERM\n" + READY + "while :; do sleep 1000 & wait $!; done\n")
    b = box(flags=("--kill-timeout", "1"))
    b.wait_running("worker", "w2", "lsb", "web", "stubborn")

    def ok_run(out: str, name: str, *suffix: str) -> int:
        """out is `ok: run: NAME: (pid N) Ks...` for the current process; returns N."""
        pid = b.ns_pid_of(name)
        assert_lines(out, line_re(f"ok: run: {name}: (pid {pid}) ", SEC, *suffix))
        if name != "batch":
            assert b.ready(name) == pid
        return pid

    def sigs() -> list[str]:
        return read_lines(worker / "sig.txt")

    b.ready("worker")
    pid = ok_run(b.ok("-w", "5", "hup", "worker"), "worker")
    wait_for(lambda: sigs() == ["HUP"], 5, "HUP")
    expected = ["HUP"]
    for cmd, sig in (("1", "USR1"), ("2", "USR2"), ("alarm", "ALRM"), ("interrupt", "INT"),
                     ("quit", "QUIT")):
        assert b.ok(cmd, "worker") == ""  # without -w: silent
        expected.append(sig)
        wait_for(lambda expected=expected: sigs() == expected, 5, sig)
    assert b.ns_pid_of("worker") == pid  # trapped signals did not restart it

    # pause / cont
    assert ok_run(b.ok("-w", "5", "pause", "worker"), "worker", ", paused") == pid
    wait_for(lambda: b.proc("worker").status() == psutil.STATUS_STOPPED, 5, "stopped")
    assert_lines(b.ok("status", "worker"), line_re(f"run: worker: (pid {pid}) ", SEC,
                                                   ", paused"))
    assert ok_run(b.ok("-w", "5", "cont", "worker"), "worker") == pid
    wait_for(lambda: b.proc("worker").status() != psutil.STATUS_STOPPED, 5, "continued")

    # term and kill: -w waits for the new process
    assert ok_run(b.ok("-w", "5", "term", "worker"), "worker") != pid
    pid = b.ready("w2")
    assert ok_run(b.ok("-w", "5", "kill", "w2"), "w2") != pid
    # down / up
    assert_lines(b.ok("-w", "5", "down", "w2"), line_re("ok: down: w2: ", SEC, ", normally up"))
    assert b.find("w2") is None
    ok_run(b.ok("-w", "5", "up", "w2"), "w2")
    # once: runs a normally-down service, and it is not restarted
    ok_run(b.ok("-w", "5", "once", "batch"), "batch", ", normally down, want down")
    os.kill(b.proc("batch").pid, signal.SIGKILL)
    b.wait("batch", lambda r: r["state"] == "down" and r["pid"] is None)
    assert b.rec("batch")["restarts"] == 0
    # restart
    pid = b.ns_pid_of("w2")
    assert ok_run(b.ok("-w", "5", "restart", "w2"), "w2") != pid

    # LSB names wait by default
    b.ready("lsb")
    assert_lines(b.ok("stop", "lsb"), line_re("ok: down: lsb: ", SEC, ", normally up"))
    pid = ok_run(b.ok("start", "lsb"), "lsb")
    pid2 = ok_run(b.ok("restart", "lsb"), "lsb")
    pid3 = ok_run(b.ok("try-restart", "lsb"), "lsb")
    assert len({pid, pid2, pid3}) == 3
    ok_run(b.ok("check", "lsb"), "lsb")

    # check script: up/start/check wait for it
    web_pid = b.ns_pid_of("web")
    r = b.svctl("-w", "0.6", "check", "web")
    assert r.returncode == 1
    assert_lines(r.stdout, line_re(f"timeout: run: web: (pid {web_pid}) ", SEC))
    assert b.ns_pid_of("web") == web_pid  # a timeout alone kills nothing (only force-*)
    (web / "available").touch()
    ok_run(b.ok("check", "web"), "web")

    # a service that ignores TERM: timeout, then pyinit's kill timeout takes it down
    spid = b.ready("stubborn")
    r = b.svctl("-w", "0.3", "down", "stubborn")
    assert r.returncode == 1
    assert_lines(r.stdout, line_re(f"timeout: run: stubborn: (pid {spid}) ", SEC,
                                   ", want down, got TERM"))
    b.wait("stubborn", lambda r: r["state"] == "down", 5)
    assert b.rec("stubborn")["last_signal"] == signal.SIGKILL
    ok_run(b.ok("-w", "5", "up", "stubborn"), "stubborn")
    # force-stop: `kill:` and a SIGKILL from svctl itself
    spid = b.ns_pid_of("stubborn")
    r = b.svctl("-w", "0.3", "force-stop", "stubborn")
    assert r.returncode == 1
    assert_lines(r.stdout, line_re(f"kill: run: stubborn: (pid {spid}) ", SEC,
                                   ", want down, got TERM"))
    b.wait("stubborn", lambda r: r["state"] == "down", 5)

    # exit: -w waits until the service is down (as sv waits for runsv to exit)
    wpid = b.host_pid(b.ready("worker"))
    assert_lines(b.ok("-w", "5", "exit", "worker"),
                 line_re("ok: down: worker: ", SEC, ", normally up"))
    assert not psutil.pid_exists(wpid) or psutil.Process(wpid).status() == psutil.STATUS_ZOMBIE

    # exit code: one per failed service
    b.ok("-w", "5", "up", "stubborn")
    r = b.svctl("-w", "0.3", "down", "stubborn", "nope", "w2")
    assert r.returncode == 2, r.stdout
    lines = sorted(r.stdout.splitlines())
    assert lines[0] == "fail: nope: unable to change to service directory: file does not exist"
    assert lines[1].startswith("ok: down: w2: ")
    assert lines[2].startswith("timeout: run: stubborn: ")
    b.stop()


# =========================================================================================
# who may do what
# =========================================================================================
def _python_for(uid: int) -> str | None:
    """An interpreter that user uid can run with pyinit importable."""
    for python in (sys.executable, "/usr/bin/python3"):
        r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                            python, "-c", "import pyinit.cli.svctl"],
                           capture_output=True, env={"PYTHONPATH": str(ROOT)})
        if r.returncode == 0:
            return python
    return None


def test_non_root_reads_status_but_cannot_change_state(box, tmp_path: Path, tag: str) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv(1) is not installed")
    uid = 65534  # nobody
    python = _python_for(uid)
    if python is None:
        pytest.skip("no python that an unprivileged user can run")
    run_dir = Path(f"/tmp/{tag}-run")  # tmp_path is private to root
    service(tmp_path, tag, "web")
    try:
        b = box(run_dir=run_dir)
        pid = b.wait_running("web")["web"]["pid"]
        st = os.lstat(b.sock)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
        as_user = ("setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups")

        def svctl(*args: str) -> subprocess.CompletedProcess:
            return b.svctl(*args, python=python, prefix=as_user)

        r = svctl("status")
        assert r.returncode == 100
        assert r.stderr == (f"svctl: fatal: cannot reach pyinit at {b.sock}: "
                            "Permission denied\n")
        os.chmod(b.sock, 0o666)  # an admin opens it up: reading is now allowed
        r = svctl("status")
        assert r.returncode == 0, r.stderr
        assert line_re(f"run: web: (pid {pid}) ", SEC).fullmatch(r.stdout.strip())
        for args in (["down", "web"], ["-w", "2", "restart", "web"], ["kill", "web"],
                     ["reload"], ["shutdown-container"]):
            r = svctl(*args)
            assert r.returncode == 100, (args, r.stdout, r.stderr)
            assert f"permission denied: uid {uid} may only read status" in r.stderr
        # check only waits, so it is allowed
        r = svctl("check", "web")
        assert r.returncode == 0 and r.stdout.startswith("ok: run: web:")
        assert b.rec("web")["pid"] == pid and b.run.proc.poll() is None
        b.stop()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_protocol_abuse_leaves_pid1_and_services_alone(box, tmp_path: Path, tag: str) -> None:
    service(tmp_path, tag, "web")
    b = box()
    pid = b.wait_running("web")["web"]["pid"]

    def exchange(data: bytes) -> list[dict]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(b.sock)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            buf = b""
            while chunk := s.recv(65536):
                buf += chunk
        return [json.loads(line) for line in buf.splitlines()]

    bad = [
        b"garbage\n", b"\x00\xff\xfe\n", b"[]\n", b"42\n", b'{"v":99,"cmd":"status"}\n',
        b'{"v":1}\n', b'{"v":1,"cmd":"rm -rf /"}\n', b'{"v":1,"cmd":"status","services":{}}\n',
        b'{"v":1,"cmd":"control","action":"z","services":["web"]}\n',
        b'{"v":1,"cmd":"control","action":"","services":["web"]}\n',
        b'{"v":1,"cmd":"control","action":"d","wait":-1,"services":["web"]}\n',
        b'{"v":1,"cmd":"control","action":"d","wait":"soon","services":["web"]}\n',
        b'{"v":1,"cmd":"shutdown","exit_code":999}\n',
        b'{"v":1,"cmd":"shutdown","exit_code":"7"}\n',
    ]
    replies = exchange(b"".join(bad))
    assert len(replies) == len(bad)
    assert all(r["ok"] is False and r["error"] for r in replies), replies
    # odd but valid: no services key (all), a NUL in a name, a huge name
    [r1, r2, r3] = exchange(b'{"v":1,"cmd":"status"}\n'
                            b'{"v":1,"cmd":"status","services":["a\\u0000b/x"]}\n'
                            + b'{"v":1,"cmd":"status","services":["' + b"x" * 60000 + b'"]}\n')
    assert r1["ok"] and [s["name"] for s in r1["services"]] == ["web"]
    assert r2["ok"] and r2["services"][0]["missing"]
    assert r3["ok"] and r3["services"][0]["missing"]
    # oversized: an error, then the connection is closed
    replies = exchange(b"x" * (65536 + 10) + b"\n")
    assert replies == [{"ok": False, "error": "request longer than 65536 bytes", "v": 1}]
    # idle connections do not stop others from being served
    idle = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(b.sock)
        idle.append(s)
    try:
        t = time.monotonic()
        assert b.rec("web")["pid"] == pid
        assert time.monotonic() - t < 5  # not held by the idle clients
    finally:
        for s in idle:
            s.close()
    assert b.ns_pid_of("web") == pid
    assert b.run.proc.poll() is None
    assert_lines(b.ok("status"), line_re(f"run: web: (pid {pid}) ", SEC))
    b.stop()


# =========================================================================================
# bad input
# =========================================================================================
def test_bad_service_dirs_are_visible_and_leave_others_alone(box, tmp_path: Path,
                                                             tag: str) -> None:
    sdir = tmp_path / "service"
    sdir.mkdir()
    good = service(tmp_path, tag, "good")
    noexec = service(tmp_path, tag, "noexec")
    (noexec / "run").chmod(0o644)
    (sdir / "norun").mkdir()
    write_script(sdir / "norun" / "finish", "exit 0\n")
    e127 = sdir / "e127"
    write_script(e127 / "run", "exit 127\n")
    (sdir / "broken").symlink_to(tmp_path / "does-not-exist")
    odd = "my svc é"
    service(tmp_path, tag, odd, "echo 'odd one out'\n" + LONG)
    logdies = service(tmp_path, tag, "logdies",
                      "i=0\nwhile :; do i=$((i+1)); echo line $i; sleep 0.05; done\n",
                      log="head -n 3 >> ../out.txt\nexit 1\n")
    deaf = service(tmp_path, tag, "deaf",
                   "x=$(printf '%01000d' 0)\n"
                   "i=0\nwhile :; do i=$((i+1)); echo $x; echo $i > count; done\n",
                   log=LONG)
    t0 = time.monotonic()
    b = box()
    recs = b.wait_running("good", odd, "logdies", "deaf")
    good_pid = recs["good"]["pid"]

    # run not executable, run missing: shown as failed, not started
    assert recs["noexec"]["error"] == "run is not executable"
    assert recs["norun"]["error"] == "no run file"
    r = b.svctl("status", "noexec", "norun")
    assert r.returncode == 2  # one per failed service, as sv counts them
    assert_lines(r.stdout,
                 line_re("fail: noexec: run is not executable"),
                 line_re("fail: norun: no run file"))
    r = b.svctl("up", "noexec")
    assert r.returncode == 1 and r.stdout == "fail: noexec: run is not executable\n"
    # ... and fixing it is picked up
    (noexec / "run").chmod(0o755)
    b.wait_running("noexec")

    # a broken symlink is skipped with a warning; sv-style fail when asked for
    assert "broken" not in recs
    assert f"{sdir}/broken: broken symlink, ignored" in b.run.err
    r = b.svctl("status", "broken")
    assert r.returncode == 1
    assert r.stdout == "fail: broken: unable to change to service directory: file does not exist\n"

    # spaces and non-ASCII in a name
    assert_lines(b.ok("status", odd), line_re(f"run: {odd}: (pid {b.ns_pid_of(odd)}) ", SEC))
    wait_for(lambda: "odd one out" in b.run.out, 5, "output of the odd one")
    assert b.ok("-w", "5", "restart", odd).startswith(f"ok: run: {odd}: ")

    # a logger that keeps dying is restarted; its service is not
    run_pid = recs["logdies"]["pid"]
    b.wait("logdies", lambda r: r["log"]["restarts"] >= 2, 10, "logger restarts")
    assert b.rec("logdies")["pid"] == run_pid
    assert len(read_lines(logdies / "out.txt")) >= 3

    # a logger that never reads: the service blocks on its full pipe, pyinit does not
    deaf_proc = b.proc("deaf")
    wchan = Path(f"/proc/{deaf_proc.pid}/wchan")
    wait_for(lambda: "pipe_write" in wchan.read_text(), 5,
             "deaf's run to block writing")
    blocked_at = (deaf / "count").read_text()
    t = time.monotonic()
    r = b.svctl("status", "deaf", "good")
    assert time.monotonic() - t < 5 and r.returncode == 0  # not blocked by the deaf logger
    assert r.stdout.startswith("run: deaf: ")
    assert (deaf / "count").read_text() == blocked_at

    # exit 127 at once: backs off, visible, costs pyinit next to no CPU
    e = b.wait("e127", lambda r: r["restarts"] >= 5, 6, "e127 restarts")
    assert time.monotonic() - t0 > 1.4  # 0.1 + 0.2 + 0.4 + 0.8 s of backoff
    assert e["last_exit_code"] == 127
    wait_for(lambda: re.fullmatch(r"down: e127: \d+s, normally up, want up\n",
                                  b.ok("status", "e127")), 5, "e127 shown backing off")
    cpu = psutil.Process(b.run.init_pid).cpu_times()
    assert cpu.user + cpu.system < 1.5, cpu

    # the good one never noticed
    assert b.rec("good")["pid"] == good_pid == b.ns_pid_of("good")
    assert b.rec("good")["restarts"] == 0

    # a service dir deleted while its service runs: stopped, gone from status
    proc = b.proc("good")
    remove_dir(good)
    proc.wait(3)
    wait_for(lambda: "good" not in b.status(), 3, "good to be forgotten")
    b.stop()


def ping(b: Box) -> dict:
    reply = request(b.sock, {"cmd": "ping"}, timeout=5)
    assert reply["ok"], reply
    return reply


def test_files_a_service_writes_in_its_dir_cause_no_rescan(box, tmp_path: Path,
                                                           tag: str) -> None:
    chatty = "trap 'exit 0' TERM\n" + READY + (
        "i=0; while [ $i -lt 50 ]; do echo $i > state.$i; i=$((i+1)); done\n"
        "echo done > written\nsleep 1000 & wait $!\n"
    )
    d = service(tmp_path, tag, "chatty", chatty)
    b = box()
    wait_for(lambda: (d / "written").exists(), 5, "the service's own files")
    before = ping(b)["rescans"]
    assert before == 1  # the boot scan
    # The writes' inotify events were queued before the first ping was sent, so pyinit
    # read them no later than the loop iteration that answered it; a second ping is
    # answered after that. By then a rescan they caused has run or is due (pending).
    after = ping(b)
    assert after["rescans"] == before and not after["rescan_pending"], after
    (d / "down").touch()  # a file that matters does cause one
    wait_for(lambda: ping(b)["rescans"] > before, 3, "a rescan after `down` appeared")
    wait_for(lambda: not b.rec("chatty")["normally_up"], 3, "normally down")
    b.stop()


def test_idle_pyinit_does_not_wake_up(box, tmp_path: Path, tag: str) -> None:
    for i in range(20):
        service(tmp_path, tag, f"idle{i}")
    b = box()
    for i in range(20):
        b.ready(f"idle{i}")
    status = Path(f"/proc/{b.run.init_pid}/status")

    def switches() -> int:
        fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        return int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])

    def settled() -> bool:  # the services' own `ready` writes are inotify events
        before = switches()
        time.sleep(0.3)
        return switches() == before

    wait_for(settled, 10, "pyinit to go idle after the boot")
    first = switches()
    time.sleep(2.0)  # a periodic tick of 1 Hz or faster would show here
    assert switches() - first == 0
    b.stop()


def test_slow_loris_and_a_10mb_request_do_not_delay_other_clients(box, tmp_path: Path,
                                                                   tag: str) -> None:
    import threading

    service(tmp_path, tag, "web")
    b = box()
    b.wait_running("web")
    loris = []
    for _ in range(20):  # connect, send half a request, never finish it
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(b.sock)
        s.sendall(b'{"v":1,"cmd":')
        loris.append(s)
    flood_error: list[BaseException] = []

    def flood() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(b.sock)
            try:
                s.sendall(b"x" * (10 * 1024 * 1024))
            except OSError as exc:  # pyinit hangs up after 64 KiB: expected
                flood_error.append(exc)

    flooder = threading.Thread(target=flood)
    flooder.start()
    try:
        t = time.monotonic()
        for _ in range(5):
            assert b.status()["web"]["state"] == "run"
        # bounded well under the 10 s request timeout the stalled clients hold
        assert time.monotonic() - t < 6.0
        flooder.join(15)
        assert not flooder.is_alive()
        assert flood_error, "a 10 MB request line was read to the end instead of refused"
    finally:
        for s in loris:
            s.close()
    b.stop()


def test_service_dir_created_after_boot_is_picked_up(box, tmp_path: Path, tag: str) -> None:
    later = tmp_path / "later"  # a second service dir that does not exist at boot
    b = box(flags=("--service-dir", str(later)))
    assert b.status() == {}
    later.mkdir()
    service(tmp_path, tag, "late", base="later")
    b.wait_running("late", timeout=3)
    # deleted and recreated (as a rename or an image layer would): still watched
    remove_dir(later)
    wait_for(lambda: "late" not in b.status(), 3, "late to be stopped and forgotten")
    later.mkdir()
    service(tmp_path, tag, "again", base="later")
    b.wait_running("again", timeout=3)
    b.stop()


PIDS_CGROUP = Path("/sys/fs/cgroup/pids")


@pytest.mark.skipif(not (PIDS_CGROUP / "cgroup.procs").exists(),
                    reason="no cgroup v1 pids controller to limit forks with")
def test_fork_failure_is_a_failed_start_retried_with_backoff(box, tmp_path: Path,
                                                             tag: str) -> None:
    group = PIDS_CGROUP / tag
    group.mkdir()
    try:
        service(tmp_path, tag, "steady")
        service(tmp_path, tag, "flappy", "exit 1\n")
        join = ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh"]
        b = box(wrapper=join)
        b.wait_running("steady")
        restarts = b.rec("flappy")["restarts"]
        (group / "pids.max").write_text(f"{(group / 'pids.current').read_text().strip()}\n")
        wait_for(lambda: "cannot fork" in b.run.err, 10, "a failed fork")
        (group / "pids.max").write_text("max\n")
        wait_for(lambda: b.rec("flappy")["restarts"] > restarts + 1, 15, "restarts to go on")
        rec = b.rec("flappy")
        assert rec["want"] == "u" and rec["state"] in ("run", "down")
        assert "internal error" not in b.run.err
        assert b.stop() < 5
    finally:
        (group / "pids.max").write_text("max\n")
        wait_for(lambda: not (group / "cgroup.procs").read_text().strip(), 10, "an empty cgroup")
        group.rmdir()


def test_a_definition_that_breaks_while_running_is_never_restarted(box, tmp_path: Path,
                                                                  tag: str) -> None:
    d = service(tmp_path, tag, "app")
    os.chown(d, 65534, 65534)  # the service, as nobody, writes its `ready` file here
    (d / "service.yaml").write_text("user: nobody\n")
    b = box()
    first = b.ready("app")
    assert psutil.Process(b.host_pid(first)).uids().real == 65534
    (d / "service.yaml").write_text("usr: nobody\n")  # edits are noticed (inotify)
    wait_for(lambda: b.rec("app")["error"], 3, "the error to show")
    assert b.rec("app")["pid"] == first  # the running process is left alone...
    b.ok("kill", "app")
    wait_for(lambda: b.rec("app")["pid"] is None, 5, "app to exit")
    assert b.svctl("status", "app").stdout.startswith("fail: app: ")
    (d / "service.yaml").write_text("user: nobody\n")  # ...and only a fixed one restarts
    rec = wait_for(lambda: (r := b.rec("app"))["pid"] and r, 5, "the fixed service to run")
    assert psutil.Process(b.host_pid(rec["pid"])).uids().real == 65534
    b.stop()


def test_run_removed_and_restored_while_running_keeps_one_process(box, tmp_path: Path,
                                                                 tag: str) -> None:
    d = service(tmp_path, tag, "app")
    b = box()
    pid = b.ready("app")
    saved = (d / "run").read_bytes()
    (d / "run").unlink()
    wait_for(lambda: b.rec("app")["error"] == "no run file", 3, "the error to show")
    (d / "run").write_bytes(saved)
    (d / "run").chmod(0o755)
    wait_for(lambda: b.rec("app")["error"] is None, 3, "the fix to be seen")
    rec = b.rec("app")
    assert rec["pid"] == pid and rec["want"] == "u"
    assert len(b.by_cmd("app")) == 1
    b.stop()


def test_waiting_svctl_waits_for_pyinit_to_boot(pyinit_run, tmp_path: Path, tag: str):
    """`svctl -w N check` started before pyinit (right after `podman start`) waits for
    the control socket within N seconds; without -w it fails at once (exit 100)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYINIT_RUN_DIR", None)
    argv = [sys.executable, "-c", SVCTL_CODE, "--run-dir", str(tmp_path / "run")]
    r = subprocess.run([*argv, "status"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 100 and "No such file or directory" in r.stderr
    r = subprocess.run([*argv, "-w", "0.3", "check"], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 100 and "No such file or directory" in r.stderr
    waiter = subprocess.Popen([*argv, "-w", "30", "check"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        service(tmp_path, tag, "web")
        b = Box(pyinit_run(), tmp_path, tag, tmp_path / "run")
        out, err = waiter.communicate(timeout=40)
        assert waiter.returncode == 0, out + err
        assert out.startswith("ok: run: web: (pid "), out
        b.stop()
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
