"""readiness.Tracker without processes: a fake Host (its spawn_check records the check
commands the Tracker would run, and the test decides how they end), a fake loop with a
clock the test moves, and real pipes for the notification fd."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Optional

import pytest

from pyinit.core import schema
from pyinit.runtime import log
from pyinit.services import readiness

NOTIFY = "/run/pyinit/notify.sock"


# --- fakes -----------------------------------------------------------------------------
class FakeTimer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """The loop calls a Tracker makes, on a clock that moves only when the test says."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[FakeTimer] = []
        self.readers: dict[int, Callable[[], None]] = {}

    def clock(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        assert fd not in self.readers, f"fd {fd} registered twice"
        self.readers[fd] = callback

    def remove(self, fd: int) -> None:
        self.readers.pop(fd, None)

    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, seconds: float) -> None:
        """Move the clock on, running every timer that falls due on the way, in order."""
        end = self.now + seconds
        while True:
            due = [t for t in self.pending() if t.when <= end]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self.now = max(self.now, timer.when)
            timer.cancelled = True
            timer.callback()
        self.now = end


@dataclass
class Check:
    """One check command the Tracker asked the host to run."""

    argv: list[str]
    pid: int
    done: Callable[[Any], None]

    def exits(self, code: int) -> None:
        self.done(SimpleNamespace(code=code, describe=lambda: f"exit code {code}"))


@dataclass
class FakeHost:
    loop: FakeLoop = field(default_factory=FakeLoop)
    socket_path: Optional[str] = NOTIFY
    can_spawn: bool = True
    checks: list[Check] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)

    def notify_socket_path(self) -> Optional[str]:
        return self.socket_path

    def spawn_check(self, svc: Any, argv: list[str], done: Callable[[Any], None]) -> Optional[int]:
        if not self.can_spawn:
            return None
        pid = 10_000 + len(self.checks)  # never signalled: os.killpg is faked below
        self.checks.append(Check(list(argv), pid, done))
        return pid

    def on_ready(self, svc: Any) -> None:
        self.events.append(("ready", svc.name))

    def on_unhealthy(self, svc: Any, reason: str) -> None:
        self.events.append(("unhealthy", reason))


@pytest.fixture(autouse=True)
def killed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Process groups the Tracker kills (a timed-out or abandoned check): recorded, and
    no real signal is ever sent to the fake pids."""
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "killpg", lambda pgid, sig: calls.append((pgid, sig)))
    return calls


@pytest.fixture(autouse=True)
def quiet_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    lines: list[str] = []
    monkeypatch.setattr(log, "emit", lambda level, text, service=None: lines.append(text))
    return lines


def tracker(yaml: dict, host: Optional[FakeHost] = None) -> tuple[readiness.Tracker, FakeHost]:
    """A Tracker for a service whose service.yaml is `yaml` (validated for real)."""
    host = host or FakeHost()
    config = schema.validate(yaml, "/etc/service/web/service.yaml")
    svc = SimpleNamespace(name="web", defn=SimpleNamespace(config=config))
    return readiness.Tracker(host, svc), host


def spec() -> SimpleNamespace:
    return SimpleNamespace(env={"PATH": "/bin", "NOTIFY_SOCKET": "/inherited"}, fds={})


# --- without a mechanism ---------------------------------------------------------------
def test_no_mechanism_is_ready_once_started() -> None:
    t, host = tracker({})
    s = spec()
    t.prepare(s)
    assert "NOTIFY_SOCKET" not in s.env  # pyinit's own is never passed on by accident
    assert host.events == []
    t.started()
    assert host.events == [("ready", "web")]
    assert host.loop.pending() == [] and host.loop.readers == {}


def test_settle_is_ready_after_staying_up() -> None:
    t, host = tracker({"ready": {"settle": 2}})
    t.prepare(spec())
    t.started()
    host.loop.advance(1.9)
    assert host.events == []
    host.loop.advance(0.1)
    assert host.events == [("ready", "web")]
    host.loop.advance(100)
    assert host.events == [("ready", "web")]


# --- sd_notify -------------------------------------------------------------------------
def test_sd_notify_ready() -> None:
    t, host = tracker({"ready": {"sd_notify": True}})
    s = spec()
    t.prepare(s)
    assert s.env["NOTIFY_SOCKET"] == NOTIFY and s.env["PATH"] == "/bin"
    t.started()
    t.on_notify({"STATUS": "starting"})
    assert host.events == []
    t.on_notify({"READY": "1"})
    t.on_notify({"READY": "1"})  # said twice: ready once
    assert host.events == [("ready", "web")]


def test_ready_1_counts_only_for_an_sd_notify_service() -> None:
    t, host = tracker({"ready": {"check": "true", "interval": 5}})
    t.prepare(spec())
    t.started()
    t.on_notify({"READY": "1"})
    assert host.events == []


def test_sd_notify_without_a_socket_sets_no_variable() -> None:
    t, host = tracker({"ready": {"sd_notify": True}}, FakeHost(socket_path=None))
    s = spec()
    t.prepare(s)
    assert "NOTIFY_SOCKET" not in s.env


# --- notification-fd -------------------------------------------------------------------
def pipe_tracker(yaml: dict) -> tuple[readiness.Tracker, FakeHost, int]:
    """Prepared and started; returns the service's end of the pipe (as the child holds
    it after the fork: a copy the Tracker does not close)."""
    t, host = tracker(yaml)
    s = spec()
    t.prepare(s)
    assert list(s.fds) == [3]
    child = os.dup(s.fds[3])
    t.started()
    assert t.pipe is not None
    assert list(host.loop.readers) == [t.pipe[0]]
    return t, host, child


def closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def test_notification_fd_newline_is_ready() -> None:
    t, host, child = pipe_tracker({"ready": {"notification_fd": 3}})
    read_end = t.pipe[0]
    try:
        os.write(child, b"starting")
        host.loop.readers[read_end]()
        assert host.events == []
        os.write(child, b"\n")
        host.loop.readers[read_end]()
        assert host.events == [("ready", "web")]
        assert host.loop.readers == {} and t.pipe is None and closed(read_end)
    finally:
        os.close(child)


def test_notification_fd_closed_without_newline_is_not_ready(quiet_log: list[str]) -> None:
    t, host, child = pipe_tracker({"ready": {"notification_fd": 3, "start_timeout": 5}})
    read_end = t.pipe[0]
    os.close(child)
    host.loop.readers[read_end]()
    assert host.events == [] and host.loop.readers == {} and closed(read_end)
    assert quiet_log == ["closed its notification fd without writing a newline"]
    host.loop.advance(5)
    assert host.events == [("unhealthy", "not ready within 5s")]


# --- check commands --------------------------------------------------------------------
def test_check_success_is_ready(killed: list) -> None:
    t, host = tracker({"ready": {"check": ["curl", "-f", "x"], "timeout": 2, "interval": 1}})
    t.prepare(spec())
    t.started()
    [check] = host.checks
    assert check.argv == ["curl", "-f", "x"]
    check.exits(0)
    assert host.events == [("ready", "web")]
    host.loop.advance(100)  # its timeout was cancelled, and no probe follows readiness
    assert killed == [] and len(host.checks) == 1 and host.loop.pending() == []


def test_check_failure_retries_every_interval() -> None:
    t, host = tracker({"ready": {"check": "test -e go", "interval": 0.5, "timeout": 2}})
    t.prepare(spec())
    t.started()
    host.checks[0].exits(1)
    assert host.events == []
    host.loop.advance(0.4)
    assert len(host.checks) == 1
    host.loop.advance(0.1)
    assert len(host.checks) == 2 and host.checks[1].argv == ["test", "-e", "go"]
    host.checks[1].exits(0)
    assert host.events == [("ready", "web")]


def test_check_timeout_kills_its_group_and_retries(killed: list) -> None:
    t, host = tracker({"ready": {"check": "sleep 9", "interval": 1, "timeout": 3}})
    t.prepare(spec())
    t.started()
    host.loop.advance(2.9)
    assert killed == []
    host.loop.advance(0.1)
    assert killed == [(host.checks[0].pid, signal.SIGKILL)]
    assert host.events == []
    host.checks[0].exits(-9)  # its exit, reaped after the kill: already counted
    assert host.events == []
    host.loop.advance(1)
    assert len(host.checks) == 2
    host.checks[1].exits(0)
    assert host.events == [("ready", "web")]


def test_a_check_that_cannot_start_is_retried() -> None:
    host = FakeHost(can_spawn=False)
    t, _ = tracker({"ready": {"check": "x", "interval": 1}}, host)
    t.prepare(spec())
    t.started()
    assert host.events == [] and len(host.loop.pending()) == 1
    host.can_spawn = True
    host.loop.advance(1)
    host.checks[0].exits(0)
    assert host.events == [("ready", "web")]


def test_start_timeout_is_unhealthy_unless_ready_first() -> None:
    t, host = tracker({"ready": {"check": "x", "interval": 1, "timeout": 0.5, "start_timeout": 3}})
    t.prepare(spec())
    t.started()
    for _ in range(3):
        host.checks[-1].exits(1)
        host.loop.advance(1)
    assert host.events == [("unhealthy", "not ready within 3s")]

    t, host = tracker({"ready": {"check": "x", "start_timeout": 3}})
    t.prepare(spec())
    t.started()
    host.checks[0].exits(0)
    host.loop.advance(10)
    assert host.events == [("ready", "web")]


# --- liveness --------------------------------------------------------------------------
LIVE = {"liveness": {"check": "ping", "interval": 10, "timeout": 2, "failures": 3}}


def test_liveness_failing_in_a_row_is_unhealthy(quiet_log: list[str]) -> None:
    t, host = tracker(LIVE)
    t.prepare(spec())
    t.started()
    assert host.events == [("ready", "web")] and host.checks == []  # probes start once ready
    for n in range(1, 4):
        host.loop.advance(10)
        assert len(host.checks) == n
        host.checks[-1].exits(1)
    assert host.events == [
        ("ready", "web"),
        ("unhealthy", "liveness probe failed 3 times: ping exited with exit code 1"),
    ]
    assert quiet_log.count("liveness probe failed (ping exited with exit code 1)") == 2
    host.loop.advance(100)
    assert len(host.checks) == 3  # nothing more is probed


def test_a_passing_liveness_probe_resets_the_count() -> None:
    t, host = tracker(LIVE)
    t.prepare(spec())
    t.started()
    for code in (1, 1, 0, 1, 1, 0):
        host.loop.advance(10)
        host.checks[-1].exits(code)
    assert host.events == [("ready", "web")]
    assert len(host.loop.pending()) == 1  # the next probe


def test_liveness_timeout_counts_as_a_failure(killed: list) -> None:
    t, host = tracker({"liveness": {"check": "ping", "interval": 10, "timeout": 2, "failures": 1}})
    t.prepare(spec())
    t.started()
    host.loop.advance(12)
    assert killed == [(host.checks[0].pid, signal.SIGKILL)]
    assert host.events[-1] == (
        "unhealthy",
        "liveness probe failed 1 times: ping timed out after 2s",
    )


# --- watchdog --------------------------------------------------------------------------
def test_watchdog_needs_a_ping_each_period() -> None:
    t, host = tracker({"watchdog": 5})
    s = spec()
    t.prepare(s)
    assert s.env["WATCHDOG_USEC"] == "5000000" and s.env["NOTIFY_SOCKET"] == NOTIFY
    t.started()
    for _ in range(3):
        host.loop.advance(4)
        t.on_notify({"WATCHDOG": "1"})
    assert host.events == [("ready", "web")]
    host.loop.advance(5)
    assert host.events[-1] == ("unhealthy", "no WATCHDOG=1 within 5s")


def test_watchdog_trigger_is_unhealthy_at_once() -> None:
    t, host = tracker({"watchdog": 5})
    t.prepare(spec())
    t.started()
    t.on_notify({"WATCHDOG": "trigger"})
    assert host.events[-1] == ("unhealthy", "asked for a watchdog restart (WATCHDOG=trigger)")


# --- close -----------------------------------------------------------------------------
def test_close_cancels_every_timer_and_the_running_check(killed: list) -> None:
    t, host = tracker(
        {"ready": {"check": "x", "interval": 1, "timeout": 5, "start_timeout": 30}, "watchdog": 7}
    )
    t.prepare(spec())
    t.started()
    assert len(host.loop.pending()) == 3  # the check's timeout, start_timeout, watchdog
    t.close()
    assert host.loop.pending() == []
    assert killed == [(host.checks[0].pid, signal.SIGKILL)]  # the check does not linger
    host.checks[0].exits(0)  # reaped later: the run it was for is gone
    t.on_notify({"READY": "1", "WATCHDOG": "trigger"})
    host.loop.advance(100)
    assert host.events == [] and len(host.checks) == 1


def test_close_closes_the_notification_pipe() -> None:
    t, host, child = pipe_tracker({"ready": {"notification_fd": 3, "start_timeout": 5}})
    read_end = t.pipe[0]
    try:
        t.close()
        assert host.loop.readers == {} and closed(read_end) and host.loop.pending() == []
        t.close()  # twice is harmless
    finally:
        os.close(child)


def test_close_after_ready_stops_the_liveness_probe() -> None:
    t, host = tracker(LIVE)
    t.prepare(spec())
    t.started()
    assert len(host.loop.pending()) == 1
    t.close()
    host.loop.advance(100)
    assert host.loop.pending() == [] and host.checks == []


def test_no_run_dir_says_why_there_is_no_sd_notify_socket(
    monkeypatch: pytest.MonkeyPatch, quiet_log: list[str]
) -> None:
    """Without a run dir there is no sd_notify socket: said once (one line), not left
    for the user to find out from a start timeout. (Before the restructure the bind
    there was a crash; after it, silence.)"""
    from pyinit.services.readyhost import ReadyHost
    from pyinit.services.records import Table

    monkeypatch.setattr(log, "said", set())
    host = ReadyHost(
        FakeLoop(), Table(), None, lambda name: name, lambda s, a: None, lambda s, a, d: None
    )
    assert host.notify_socket_path() is None
    assert host.notify_socket_path() is None
    assert [m for m in quiet_log if "sd_notify socket" in m] == [
        "no usable run dir: no sd_notify socket (NOTIFY_SOCKET is not set; sd_notify "
        "readiness and the watchdog cannot work)"
    ]
