"""Readiness and liveness of one run of a service: the mechanisms, in the loop.

A Tracker lives from the fork of `run` to its exit. Readiness comes from one of:
a newline on notification-fd (s6), READY=1 on the sd_notify socket, a probe
(a check command, a TCP connect, an HTTP GET) retried every `interval` until it
passes, or staying up for `settle` seconds (default 0: ready once started).
Not ready within `start_timeout`: the service is unhealthy (stopped, and the
exit counts as a failure). Once ready, probing stops: an idle service costs no
wake-ups, unless it asks for liveness probes or a watchdog.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Callable, Optional, Protocol

from pyinit.core.exits import ExitStatus
from pyinit.core.schema import PROBES, Probe
from pyinit.linux import signals
from pyinit.runtime import log, spawn
from pyinit.runtime.loop import EventLoop, Timer

if TYPE_CHECKING:
    from pyinit.services.records import Service

Done = Callable[[bool, str], None]


class Host(Protocol):
    """What a Tracker needs from the service manager."""

    loop: EventLoop

    def notify_socket_path(self) -> Optional[str]: ...
    def spawn_check(self, svc: Service, argv: list[str], done: Callable[[ExitStatus], None]
                    ) -> Optional[int]: ...
    def on_ready(self, svc: Service) -> None: ...
    def on_unhealthy(self, svc: Service, reason: str) -> None: ...


class Tracker:
    def __init__(self, host: Host, svc: Service) -> None:
        self.host = host
        self.loop = host.loop
        self.svc = svc
        config = svc.defn.config
        self.ready_probe = config.ready or Probe("settle")
        self.liveness = config.liveness
        self.watchdog = config.watchdog
        self.timers: dict[str, Timer] = {}
        self.pipe: Optional[tuple[int, int]] = None  # notification-fd (read, write)
        self.pending: Optional[Callable[[], None]] = None  # cancels a running probe
        self.is_ready = False
        self.failures = 0
        self.closed = False

    # --- around the fork -----------------------------------------------------
    def prepare(self, spec: spawn.Spec) -> None:
        """Before fork: the notification pipe, NOTIFY_SOCKET and WATCHDOG_USEC."""
        env = dict(spec.env if spec.env is not None else os.environ)
        env.pop("NOTIFY_SOCKET", None)
        if self.ready_probe.kind == "notification_fd":
            self.pipe = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            spec.fds[int(self.ready_probe.target)] = self.pipe[1]
        if self.ready_probe.kind == "sd_notify" or self.watchdog:
            path = self.host.notify_socket_path()
            if path is not None:
                env["NOTIFY_SOCKET"] = path
        if self.watchdog:
            env["WATCHDOG_USEC"] = str(int(self.watchdog * 1_000_000))
        spec.env = env

    def started(self) -> None:
        """After fork: start waiting for readiness."""
        probe = self.ready_probe
        if self.pipe is not None:
            os.close(self.pipe[1])
            self.pipe = (self.pipe[0], -1)
            self.loop.add_reader(self.pipe[0], self.on_pipe)
        elif probe.kind in PROBES:
            self.attempt_readiness()
        elif probe.kind == "settle" and probe.settle > 0:
            self.after("settle", probe.settle, self.ready)
        elif probe.kind == "settle":
            self.ready()  # no mechanism: ready once started
        if probe.start_timeout is not None:
            self.after("start_timeout", probe.start_timeout, self.start_timed_out)
        if self.watchdog:
            self.pet()

    def close(self) -> None:
        """The process exited (or is being replaced): stop everything."""
        self.closed = True
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.cancel_probe()
        self.close_pipe()

    # --- readiness -------------------------------------------------------------
    def ready(self) -> None:
        if self.closed or self.is_ready:
            return
        self.is_ready = True
        self.cancel_timer("start_timeout")
        self.close_pipe()
        self.host.on_ready(self.svc)
        if self.liveness is not None:
            self.after("liveness", self.liveness.interval, self.attempt_liveness)

    def on_pipe(self) -> None:
        if self.pipe is None:
            return  # closed by an earlier event of the same wake-up
        try:
            data = os.read(self.pipe[0], 512)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if b"\n" in data:
            self.ready()
        elif not data:
            log.warning("closed its notification fd without writing a newline", self.svc.name)
            self.close_pipe()

    def on_notify(self, fields: dict[str, str]) -> None:
        """An sd_notify datagram from this service's session."""
        if self.closed:
            return  # the run it was for is gone: nothing of it may reach the host
        if fields.get("READY") == "1" and self.ready_probe.kind == "sd_notify":
            self.ready()
        if fields.get("WATCHDOG") == "1" and self.watchdog:
            self.pet()
        elif fields.get("WATCHDOG") == "trigger":
            self.host.on_unhealthy(self.svc, "asked for a watchdog restart (WATCHDOG=trigger)")

    def attempt_readiness(self) -> None:
        def done(ok: bool, detail: str) -> None:
            if ok:
                self.ready()
            else:
                log.debug(f"not ready yet: {detail}", self.svc.name)
                self.after("probe", self.ready_probe.interval, self.attempt_readiness)

        self.run_probe(self.ready_probe, done)

    def start_timed_out(self) -> None:
        seconds = self.ready_probe.start_timeout
        self.host.on_unhealthy(self.svc, f"not ready within {seconds:g}s")

    # --- liveness --------------------------------------------------------------
    def attempt_liveness(self) -> None:
        probe = self.liveness
        assert probe is not None

        def done(ok: bool, detail: str) -> None:
            self.failures = 0 if ok else self.failures + 1
            if self.failures >= probe.failures:
                self.host.on_unhealthy(
                    self.svc, f"liveness probe failed {self.failures} times: {detail}")
                return
            if not ok:
                log.warning(f"liveness probe failed ({detail})", self.svc.name)
            self.after("liveness", probe.interval, self.attempt_liveness)

        self.run_probe(probe, done)

    def pet(self) -> None:
        assert self.watchdog is not None
        self.after("watchdog", self.watchdog, lambda: self.host.on_unhealthy(
            self.svc, f"no WATCHDOG=1 within {self.watchdog:g}s"))

    # --- probes ------------------------------------------------------------------
    def run_probe(self, probe: Probe, done: Done) -> None:
        """One attempt of a check command, TCP connect or HTTP GET, bounded by its timeout."""
        def finish(ok: bool, detail: str) -> None:
            self.pending = None
            if not self.closed:
                done(ok, detail)

        if probe.kind == "check":
            self.run_check(list(probe.target), probe.timeout, finish)
            return
        from pyinit.services import probes

        handle = probes.Probe(self.loop, probe.kind, probe.target, probe.timeout, finish)
        self.pending = handle.cancel
        handle.start()

    def run_check(self, argv: list[str], timeout: float, done: Done) -> None:
        state: dict[str, Optional[int]] = {"pid": None}
        timer: list[Timer] = []

        def exited(status: ExitStatus) -> None:
            if timer:
                timer[0].cancel()
            if state["pid"] is not None:
                state["pid"] = None
                done(status.code == 0, f"{argv[0]} exited with {status.describe()}")

        def kill() -> None:  # the timeout, or cancel_probe (close) before it
            if timer:
                timer[0].cancel()
            pid = state["pid"]
            if pid is not None:
                state["pid"] = None
                signals.kill_quietly(pid, signal.SIGKILL, group=True)
                done(False, f"{argv[0]} timed out after {timeout:g}s")

        pid = self.host.spawn_check(self.svc, argv, exited)
        if pid is None:
            done(False, f"cannot run {argv[0]}")
            return
        state["pid"] = pid
        timer.append(self.loop.call_later(timeout, kill))
        self.pending = kill

    def cancel_probe(self) -> None:
        cancel, self.pending = self.pending, None
        if cancel is not None:
            cancel()

    # --- helpers -----------------------------------------------------------------
    def after(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self.cancel_timer(name)
        if not self.closed:
            self.timers[name] = self.loop.call_later(delay, callback)

    def cancel_timer(self, name: str) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def close_pipe(self) -> None:
        if self.pipe is not None:
            self.loop.remove(self.pipe[0])
            for fd in self.pipe:
                if fd >= 0:
                    os.close(fd)
            self.pipe = None
