"""Events and hooks (issue 21 part 3) with pyinit as a real PID 1: `svctl events -f`
seeing a crash cycle in order, a subscriber that never reads (dropped, PID 1 still
answering), the follower limit, hooks firing with the event on stdin and in the
environment, a hanging hook killed at its timeout, the concurrency bound, and no
hook left running or unreaped."""

from __future__ import annotations

import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, tagged_processes, wait_for
from test_services import SVCTL_CODE, Box, service

from pyinit.control.protocol import request

pytestmark = pytest.mark.pid1

PY = sys.executable
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
CRASH = "exit 3\n"


@pytest.fixture
def box(pyinit_run, tmp_path: Path):
    def start(config: str = "", extra: tuple[str, ...] = (), **kw) -> Box:
        (tmp_path / "service").mkdir(exist_ok=True)
        (tmp_path / "pyinit.yaml").write_text(textwrap.dedent(config))
        flags = ("--config", str(tmp_path / "pyinit.yaml"), "--kill-timeout", "1", *extra)
        run = pyinit_run(flags=flags, **kw)
        b = Box(run, tmp_path, "", tmp_path / "run")
        wait_for(lambda: os.path.exists(b.sock), 10, "the control socket")
        return b

    return start


def crashing(tmp: Path, tag: str, name: str, yaml: str, body: str = CRASH) -> Path:
    d = service(tmp, tag, name, body)
    (d / "service.yaml").write_text(textwrap.dedent(yaml))
    return d


class Follower:
    """`svctl events -f [SERVICE...]` in a subprocess, its JSON lines read as they come."""

    def __init__(self, b: Box, *names: str) -> None:
        argv = [PY, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), "events", "-f", *names]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=ENV)
        self.buf = b""
        self.events: list[dict] = []

    def poll(self) -> list[dict]:
        assert self.proc.stdout is not None
        # what is there now, within 0.5 s: a service crashing without backoff keeps the
        # stream busy, and waiting for a quiet moment would wait forever
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and select.select([self.proc.stdout], [], [], 0.02)[0]:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self.buf += chunk
        *whole, self.buf = self.buf.split(b"\n")
        self.events += [json.loads(line) for line in whole]
        return self.events

    def names(self, service: str | None = None) -> list[str]:
        return [e["event"] for e in self.poll() if service is None or e["service"] == service]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for f in (self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()


def no_zombies(b: Box) -> bool:
    return not [p for p in b.run.descendants() if p.status() == psutil.STATUS_ZOMBIE]


# --- svctl events -----------------------------------------------------------------------
def test_events_follow_a_crash_cycle_in_order(box, tmp_path: Path, tag: str) -> None:
    crashing(tmp_path, tag, "crash", """\
        max_restarts: 2
        backoff: {initial: 0.05}
        """)
    service(tmp_path, tag, "web")
    b = box()
    follow = Follower(b, "crash")
    try:
        cycle = ["starting", "up", "ready", "exited"]
        want = cycle + ["backoff"] + cycle + ["backoff"] + cycle + ["failed", "down"]
        wait_for(lambda: follow.names("crash") == want, 15, f"the crash cycle {want}")
        events = [e for e in follow.poll() if e["service"] is not None]
        assert {e["service"] for e in events} == {"crash"}  # the filter holds
        exits = [e for e in events if e["event"] == "exited"]
        assert [(e["code"], e["signal"], e["expected"]) for e in exits] == [(3, None, False)] * 3
        ups = [e for e in events if e["event"] == "up"]
        assert [e["restarts"] for e in ups] == [0, 1, 2]
        assert all(isinstance(e["pid"], int) and e["pid"] > 1 for e in ups)
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        assert "restarts within" in events[-2]["reason"]
        # without -f: the ring, all services and pyinit's own events
        r = subprocess.run([PY, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), "events"],
                           capture_output=True, text=True, env=ENV, timeout=30)
        assert r.returncode == 0, r.stderr
        ring = [json.loads(line) for line in r.stdout.splitlines()]
        assert ring[0]["event"] == "boot.services" and ring[0]["service"] is None
        assert [e["event"] for e in ring if e["service"] == "web"][:3] == ["starting", "up",
                                                                         "ready"]
        assert isinstance(ring[0]["time"], float)
        # shutdown: the stream shows it, then ends with pyinit (exit 0)
        b.run.kill(signal.SIGTERM)
        assert b.run.wait() == 0
        assert follow.proc.wait(10) == 0
        assert follow.names()[-1] == "shutdown.end"  # pyinit's own events are kept
    finally:
        follow.close()


def test_shutdown_events_and_stopping(box, tmp_path: Path, tag: str) -> None:
    service(tmp_path, tag, "web")
    b = box()
    b.wait_running("web")
    follow = Follower(b)
    try:
        wait_for(lambda: "ready" in follow.names("web"), 10, "web ready")
        b.run.kill(signal.SIGTERM)
        assert b.run.wait() == 0
        assert follow.proc.wait(10) == 0
        names = follow.names()
        tail = names[names.index("shutdown.begin"):]
        assert tail == ["shutdown.begin", "shutdown.services", "stopping", "exited", "down",
                        "shutdown.end"], tail
        events = follow.poll()
        begin = next(e for e in events if e["event"] == "shutdown.begin")
        assert begin["reason"] == "SIGTERM"
        stop = next(e for e in events if e["event"] == "stopping")
        assert stop["signal"] == "SIGTERM" and stop["service"] == "web"
        exited = next(e for e in events if e["event"] == "exited")
        assert exited["expected"] is True and exited["code"] == 0
    finally:
        follow.close()


def test_a_subscriber_that_never_reads_is_dropped_and_pid1_keeps_answering(
    box, tmp_path: Path, tag: str
) -> None:
    crashing(tmp_path, tag, "flap", "backoff: {initial: 0}\n")
    b = box()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(b.sock)
    stuck.sendall(b'{"v":1,"cmd":"events","follow":true}\n')
    try:
        # the stuck reader never reads: pyinit keeps supervising and answering
        wait_for(lambda: "did not read" in b.run.err, 60, "the stuck reader to be dropped")
        assert b.rec("flap")["state"] in ("run", "down")
        r = subprocess.run([PY, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), "status",
                            "flap"], capture_output=True, text=True, env=ENV, timeout=30)
        assert r.returncode == 0 and "flap" in r.stdout, r.stderr
        # what it had queued is bounded, then the connection ends
        got = 0
        stuck.settimeout(10)
        while True:
            chunk = stuck.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        assert got < 4 * 1024 * 1024
        assert "dropped 1 event follower" in b.run.err
    finally:
        stuck.close()
    follow = Follower(b, "flap")  # its follower slot was given back
    try:
        wait_for(lambda: "exited" in follow.names(), 10, "a new follower to see events")
    finally:
        follow.close()
    request(b.sock, {"cmd": "control", "action": "d", "services": ["flap"]})
    b.stop()


def test_at_most_16_followers(box, tmp_path: Path, tag: str) -> None:
    service(tmp_path, tag, "web")
    b = box()
    socks = []
    try:
        for _ in range(16):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(b.sock)
            socks.append(s)
            s.sendall(b'{"v":1,"cmd":"events","follow":true}\n')
            assert json.loads(s.makefile("rb").readline())["ok"] is True
        reply = request(b.sock, {"cmd": "events", "follow": True, "services": []}, timeout=5)
        assert reply == {"ok": False, "v": 1,
                         "error": "at most 16 clients may follow events at once"}
        socks.pop().close()
        wait_for(lambda: request(b.sock, {"cmd": "events", "services": [], "follow": False},
                                 timeout=5)["ok"], 5, "events without -f")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(b.sock)
        socks.append(s)

        def admitted() -> bool:
            s2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s2.connect(b.sock)
            s2.sendall(b'{"v":1,"cmd":"events","follow":true}\n')
            ok = json.loads(s2.makefile("rb").readline())["ok"]
            socks.append(s2)
            return ok
        assert wait_for(admitted, 5, "a follower slot freed by a closed connection")
    finally:
        for s in socks:
            s.close()
    b.stop()


# --- hooks --------------------------------------------------------------------------
@pytest.fixture
def shared_dir():
    """A dir every user can reach and write (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="pyinit-hooks-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def hook_dir(tmp: Path) -> Path:
    out = tmp / "hooks"
    out.mkdir(exist_ok=True)
    return out


def test_a_hook_fires_on_a_crash_with_the_event_on_stdin_and_in_its_environment(
    box, tmp_path: Path, tag: str, shared_dir: Path
) -> None:
    crashing(tmp_path, tag, "crash", "max_restarts: 1\nbackoff: {initial: 0.05}\n")
    service(tmp_path, tag, "web")
    out = shared_dir
    script = out / "alert.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        # {tag}
        cat > "{out}/$PYINIT_EVENT-$PYINIT_SEQ.json"
        env | grep ^PYINIT_ | sort > "{out}/$PYINIT_EVENT-$PYINIT_SEQ.env"
        id -u > "{out}/$PYINIT_SEQ.tmp"
        mv "{out}/$PYINIT_SEQ.tmp" "{out}/$PYINIT_EVENT-$PYINIT_SEQ.uid"  # the last, whole
        echo "alert sent for $PYINIT_SERVICE"
        """))
    script.chmod(0o755)
    b = box(f"""\
        hooks:
          - name: alert
            events: [exited, failed]
            services: [crash]
            command: [{script}]
            user: nobody
            timeout: 10
          - name: broken
            events: [failed]
            command: /nonexistent/alert
        """)
    try:
        wait_for(lambda: len(list(out.glob("*.uid"))) == 3, 15, "two exits and a failure hooked")
    except AssertionError:
        raise AssertionError(b.run.err) from None
    failed = json.loads(next(out.glob("failed-*.json")).read_text())
    assert failed["event"] == "failed" and failed["service"] == "crash"
    assert "restart" in failed["reason"]
    exits = sorted(out.glob("exited-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    first = json.loads(exits[0].read_text())
    assert (first["event"], first["service"], first["code"], first["signal"]) == (
        "exited", "crash", 3, None)
    env = dict(line.split("=", 1) for line in
               exits[0].with_suffix(".env").read_text().splitlines())
    assert env["PYINIT_EVENT"] == "exited" and env["PYINIT_SERVICE"] == "crash"
    assert env["PYINIT_CODE"] == "3" and env["PYINIT_SIGNAL"] == ""
    assert env["PYINIT_EXPECTED"] == "0" and env["PYINIT_HOOK"] == "alert"
    assert env["PYINIT_SEQ"] == str(first["seq"]) and env["PYINIT_PID"] == str(first["pid"])
    nobody = pwd.getpwnam("nobody").pw_uid
    assert {p.read_text().strip() for p in out.glob("*.uid")} == {str(nobody)}
    # web's events (and pyinit's own) are not the hook's: nothing else ran
    assert not list(out.glob("up-*")) and len(list(out.glob("*.json"))) == 3
    wait_for(lambda: b.run.err.count("[hook alert] alert sent for crash") == 3, 10,
             "the hook's output in pyinit's log")
    wait_for(lambda: "[hook broken] cannot run" in b.run.err, 10, "the broken hook's error")
    assert b.run.err.count("[hook broken] cannot run") == 1
    assert no_zombies(b)
    b.stop()


def test_a_hanging_hook_is_killed_at_its_timeout_and_reaped(box, tmp_path: Path,
                                                           tag: str) -> None:
    crashing(tmp_path, tag, "crash", "restart: never\n")
    out = hook_dir(tmp_path)
    b = box(f"""\
        hooks:
          - name: hang
            events: [exited]
            command: ["/bin/sh", "-c", "trap '' TERM; echo $$ > {out}/pid; sleep 1000 # {tag}"]
            timeout: 0.5
        """)
    wait_for(lambda: (out / "pid").exists() and (out / "pid").read_text().strip(), 10,
             "the hook to start")
    wait_for(lambda: "[hook hang] killed at its timeout (0.5s): signal SIGKILL" in b.run.err,
             15, "the hook killed: TERM ignored, then SIGKILL")
    wait_for(lambda: not tagged_processes(tag), 10, "the hook and its sleep gone")
    assert no_zombies(b)
    assert b.rec("crash")["state"] == "down"  # supervision went on meanwhile
    b.stop()


def test_what_a_hook_leaves_in_its_session_is_killed_when_it_exits(
    box, tmp_path: Path, tag: str
) -> None:
    """A hook that backgrounds its work (`alert &`) escaped the timeout and the bound
    of 4 running: each event left a process behind."""
    crashing(tmp_path, tag, "crash", "restart: never\n")
    out = hook_dir(tmp_path)
    b = box(f"""\
        hooks:
          - name: bg
            events: [exited]
            command: ["/bin/sh", "-c", "{PY} -c 'import time; time.sleep(1000)' {tag} &
                      touch {out}/started"]
            timeout: 60
        """)
    wait_for(lambda: (out / "started").exists(), 10, "the hook to start its background sleep")
    wait_for(lambda: not tagged_processes(tag), 10, "the hook's background sleep killed")
    assert no_zombies(b)
    b.stop()


def test_hook_concurrency_is_bounded_and_queued_runs_follow(box, tmp_path: Path,
                                                           tag: str) -> None:
    crashing(tmp_path, tag, "flap", "backoff: {initial: 0.02, factor: 1}\n")
    out = hook_dir(tmp_path)
    gate = out / "gate"
    b = box(f"""\
        hooks:
          - name: slow
            events: [exited]
            command:
              - /bin/sh
              - -c
              - >-
                touch {out}/started-$PYINIT_SEQ;
                while [ ! -e {gate} ]; do sleep 0.02; done;
                touch {out}/done-$PYINIT_SEQ # {tag}
        """)
    follow = Follower(b, "flap")
    try:
        wait_for(lambda: len(list(out.glob("started-*"))) == 4, 15, "four hook runs")
        # many more exits than 4 while the four hang: still exactly four running
        wait_for(lambda: follow.names().count("exited") >= 12, 20, "twelve exits")
        assert len(list(out.glob("started-*"))) == 4
        running = [p for p in tagged_processes(tag) if "while" in " ".join(p.cmdline())]
        assert len(running) == 4
        request(b.sock, {"cmd": "control", "action": "d", "services": ["flap"]})
        wait_for(lambda: "down" in follow.names(), 10, "flap down")
        exits = follow.names().count("exited")
        gate.touch()
        # the queued runs follow, in order, until every exit was hooked (<= 4 + 64 of them)
        want = min(exits, 4 + 64)
        wait_for(lambda: len(list(out.glob("done-*"))) == want, 30, f"{want} hook runs done")
        assert len(list(out.glob("started-*"))) == want
        wait_for(lambda: not tagged_processes(tag), 10, "no hook left running")
        assert no_zombies(b)
    finally:
        follow.close()
    b.stop()


def test_hooks_stop_at_shutdown_within_the_budget(box, tmp_path: Path, tag: str) -> None:
    """A hook that ignores SIGTERM is SIGKILLed and reaped by the hook code itself
    (kill-all is off), within the shutdown budget."""
    service(tmp_path, tag, "web")
    out = hook_dir(tmp_path)
    b = box(f"""\
        hooks:
          - events: [up]
            command: ["/bin/sh", "-c", "trap '' TERM; echo $$ > {out}/pid; sleep 1000 # {tag}"]
            timeout: 3600
        """, extra=("--no-kill-all-on-exit", "--shutdown-timeout", "4", "-v"))
    wait_for(lambda: (out / "pid").exists(), 10, "the hook running")
    b.run.kill(signal.SIGTERM)
    assert b.run.wait(20) == 0
    assert not tagged_processes(tag)
    # ended by the hook code, quietly (a debug line), as part of the shutdown
    assert "pyinit: debug: [hook hook1] ended at shutdown: signal SIGKILL" in b.run.err
    assert "warning: [hook" not in b.run.err


def test_unhealthy_and_a_oneshot_done(box, tmp_path: Path, tag: str) -> None:
    d = service(tmp_path, tag, "web")
    (d / "service.yaml").write_text(
        "liveness: {check: [/bin/sh, -c, 'test ! -e sick'], interval: 0.05, failures: 1}\n")
    once = crashing(tmp_path, tag, "migrate", "oneshot: true\n", body="exit 0\n")
    assert once.exists()
    b = box()
    follow = Follower(b, "web", "migrate")
    try:
        wait_for(lambda: follow.names("migrate") == ["starting", "up", "exited", "done", "down"],
                 10, "the oneshot's events")
        wait_for(lambda: "ready" in follow.names("web"), 10, "web ready")
        (d / "sick").touch()
        wait_for(lambda: "unhealthy" in follow.names("web"), 10, "web unhealthy")
        (d / "sick").unlink()
        wait_for(lambda: follow.names("web").count("ready") == 2, 15, "web restarted")
        names = follow.names("web")
        assert names[names.index("unhealthy"):] in (
            ["unhealthy", "stopping", "exited", "starting", "up", "ready"],
            ["unhealthy", "stopping", "exited", "backoff", "starting", "up", "ready"],
        ), names
        events = follow.poll()
        sick = next(e for e in events if e["event"] == "unhealthy")
        assert sick["reason"] and sick["service"] == "web"
        exited = next(e for e in events if e["event"] == "exited" and e["service"] == "web")
        assert exited["expected"] is False  # an unhealthy stop counts as a failure
        done = [e for e in events if e["service"] == "migrate" and e["event"] == "exited"]
        assert done[0]["code"] == 0
    finally:
        follow.close()
    b.stop()


def test_a_scheduled_job_emits_its_runs(box, tmp_path: Path, tag: str) -> None:
    ok = crashing(tmp_path, tag, "tick", "every: 1h\n", body="exit 0\n")
    bad = crashing(tmp_path, tag, "tock", "every: 1h\n", body="exit 4\n")
    assert ok.exists() and bad.exists()
    b = box()
    follow = Follower(b, "tick", "tock")
    try:
        for name in ("tick", "tock"):
            r = subprocess.run([PY, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), "run", name],
                               capture_output=True, text=True, env=ENV, timeout=30)
            assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: follow.names().count("job.done") == 2, 15, "two runs done")
        events = [e for e in follow.poll() if e["event"].startswith("job.")]
        runs = {e["service"]: e for e in events if e["event"] == "job.run"}
        assert runs["tick"]["why"] == "on request (svctl run)" and runs["tick"]["pid"] > 1
        done = {e["service"]: e for e in events if e["event"] == "job.done"}
        assert (done["tick"]["result"], done["tick"]["code"]) == ("success", 0)
        assert (done["tock"]["result"], done["tock"]["code"]) == ("failure", 4)
        # a run that ended by itself is no stop someone asked for
        exits = [e for e in follow.poll() if e["event"] == "exited"]
        assert {e["service"]: e["expected"] for e in exits} == {"tick": False, "tock": False}
    finally:
        follow.close()
    b.stop()
