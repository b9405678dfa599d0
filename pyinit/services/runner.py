"""The slot runner: executes what a machine decides, and feeds the results back.

Start (run, finish, setup) is a spawn with the service's identity, environment
and pipes; Signal is kill() or killpg(); ClosePipe closes pyinit's end of the
log pipe. Each exit the reaper reports, and each timer a machine asked for,
goes back to that machine as an event. After every change the runner calls
`changed(slot)`; after every exit `exited(slot)`: the manager decides what else
follows (supervise/ files, dependency gates, shutdown order, forgetting).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from pyinit.core.exits import ExitStatus
from pyinit.core.machine import ClosePipe, Signal, Start
from pyinit.core.repeats import Repeats
from pyinit.core.schema import ServiceConfig
from pyinit.core.signames import name as signal_name
from pyinit.linux.signals import Inherited, kill_quietly
from pyinit.runtime import events, launch, log, spawn
from pyinit.runtime.scripts import is_executable
from pyinit.services.captures import Captures
from pyinit.services.host import Host
from pyinit.services.readiness import Tracker
from pyinit.services.records import Service, Slot, Table

LOG_EOF_GRACE = 1.0  # a logger's wait for EOF on its pipe before it is signalled
Hook = Callable[[Slot], None]


def report(svc: Service, name: str, **fields: Any) -> None:
    """Emit a service event (core/events.py's names) and remember it as the last."""
    svc.last_event = name
    events.emit(name, svc.name, **fields)


def exit_fields(status: ExitStatus) -> dict[str, Any]:
    """An exit as event fields: code (null if signalled), signal name (null if not)."""
    return {
        "code": status.code,
        "signal": None if status.signal is None else signal_name(status.signal),
    }


class SlotRunner:
    def __init__(
        self, host: Host, table: Table, captures: Captures, changed: Hook, exited: Hook
    ) -> None:
        self.host = host
        self.loop = host.loop
        self.table = table
        self.captures = captures
        self.changed = changed
        self.exited = exited
        # the readiness tracker of a starting run (ReadyHost.tracker), set by the manager
        self.new_tracker: Optional[Callable[[Service], Tracker]] = None
        self.start_failures = Repeats()  # a fork that fails at every retry is logged once
        self.spawn: Callable[[spawn.Spec, Inherited], int] = spawn.spawn  # tests: a fake
        self.kill: Callable[[int, int, bool], None] = kill_quietly  # (pid, signum, group)
        self.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)

    def apply(self, slot: Slot, actions: list[Any]) -> None:
        self.report_stop(slot, actions)
        for action in actions:
            if isinstance(action, Start):
                self.start_process(slot, action)
            elif isinstance(action, Signal):
                self.send_signal(slot, action)
            elif isinstance(action, ClosePipe):
                self.close_write_end(slot.service)
        self.arm(slot)
        self.changed(slot)

    # --- Start -----------------------------------------------------------------------
    def start_process(self, slot: Slot, action: Start) -> None:
        svc = slot.service
        is_log = slot.label == "log"
        is_run = not is_log and action.finish_args is None and not action.setup
        stdin = svc.pipe[0] if is_log and svc.pipe else self.devnull
        stdout = svc.pipe[1] if not is_log and svc.pipe else None
        if not is_log and action.finish_args is None:
            self.captures.reconcile(svc)  # before setup too: its output goes there
        argv = ["./run"] if action.finish_args is None else ["./finish", *action.finish_args]
        if action.setup:
            argv = ["./setup"]
        tracker: Optional[Tracker] = None
        now = self.loop.clock()
        try:
            spec = self.process_spec(svc, argv, is_log, stdin=stdin, stdout=stdout)
            if not is_log and svc.capture is not None:
                spec.stdout, spec.stderr = svc.capture.fd("stdout"), svc.capture.fd("stderr")
            if is_run and not svc.config.oneshot and self.new_tracker is not None:
                tracker = self.new_tracker(svc)
                tracker.prepare(spec)
            pid = self.spawn(spec, self.host.inherited)
        except (spawn.SpawnError, launch.LaunchError, OSError) as exc:
            if tracker is not None:
                tracker.close()
            if not is_log and action.finish_args is None:
                code = exc.exit_code if isinstance(exc, spawn.SpawnError) else 126
                report(
                    svc,
                    "exited",
                    code=code,
                    signal=None,
                    error=str(exc),
                    process="setup" if action.setup else "run",
                    expected=False,
                )
            self.start_failed(slot, exc, now)
            return
        if self.start_failures.succeeded((svc.name, slot.label)):
            log.info(f"{slot.label} started again", svc.name)
        slot.machine.spawned(pid, now)
        self.host.reaper.watch(pid, lambda _pid, status: self.on_exit(slot, status))
        what = "finish" if action.finish_args else "setup" if action.setup else slot.label
        log.debug(f"started {what} (pid {pid})", svc.name)
        if not is_log and action.finish_args is None:
            self.report_start(slot, pid, action.setup)
        if tracker is not None:
            svc.tracker = tracker
            tracker.started()

    @staticmethod
    def report_start(slot: Slot, pid: int, setup: bool) -> None:
        """`starting` when a start begins (setup, or run without one), `up` for run."""
        machine = slot.machine
        if setup or not machine.policy.has_setup:
            report(
                slot.service,
                "starting",
                pid=pid,
                restarts=machine.restarts,
                process="setup" if setup else "run",
            )
        if not setup:
            report(slot.service, "up", pid=pid, restarts=machine.restarts)

    def start_failed(self, slot: Slot, exc: Exception, now: float) -> None:
        code = exc.exit_code if isinstance(exc, spawn.SpawnError) else spawn.NOT_EXECUTABLE
        if self.start_failures.failed((slot.service.name, slot.label), str(exc)):
            log.error(
                f"cannot start {slot.label}: {exc} (retried quietly until it starts)",
                slot.service.name,
            )
        self.apply(slot, slot.machine.spawn_failed(now, ExitStatus(code=code)))

    def process_spec(
        self,
        svc: Service,
        argv: list[str],
        is_log: bool,
        stdin: Optional[int],
        stdout: Optional[int],
    ) -> spawn.Spec:
        """How to start run, finish, check or the logger (launch.LaunchError if it cannot)."""
        argv, env = launch.instance_args(argv, svc.name, svc.defn.instance, dict(os.environ))
        if is_log:
            identity, config = svc.defn.log_as, ServiceConfig()
            cwd = os.path.join(svc.defn.path, "log")
        else:
            identity, config = svc.defn.run_as, svc.config
            cwd = launch.working_directory(config, svc.defn.path)
            if argv[0].startswith("./") and cwd != svc.defn.path:  # run, finish, ./check
                argv = [os.path.join(svc.defn.path, argv[0][2:])] + argv[1:]
        return spawn.Spec(
            argv,
            cwd=cwd,
            session=True,
            stdin=stdin,
            stdout=stdout,
            env=launch.environment(config, svc.defn.path, identity, env, svc.name),
            pre_exec=launch.child_setup(config, identity),
        )

    def spawn_check(
        self, svc: Service, argv: list[str], done: Callable[[ExitStatus], None]
    ) -> Optional[int]:
        """Start a readiness or liveness check command; None (logged) if it cannot start,
        and None when the machine says no check may run (at shutdown)."""
        if not svc.run.machine.may_probe():
            return None
        try:
            spec = self.process_spec(svc, argv, False, stdin=self.devnull, stdout=self.devnull)
            pid = self.spawn(spec, self.host.inherited)
        except (spawn.SpawnError, launch.LaunchError) as exc:
            log.warning(f"cannot run check: {exc}", svc.name)
            return None
        self.host.reaper.watch(pid, lambda _pid, status: done(status))
        return pid

    # --- Signal, ClosePipe ---------------------------------------------------------------
    @staticmethod
    def report_stop(slot: Slot, actions: list[Any]) -> None:
        """`stopping` when the machine sends run (or setup) its stop: a signal with
        the kill timeout armed after it (not `svctl term`, not the SIGKILL)."""
        machine = slot.machine
        if slot.label != "run" or not machine.got_term or machine.kill_at is None:
            return
        sent = [a.signum for a in actions if isinstance(a, Signal)]
        if sent and slot.service.last_event != "stopping":
            report(slot.service, "stopping", pid=machine.pid, signal=signal_name(sent[0]))

    def send_signal(self, slot: Slot, action: Signal) -> None:
        pid = slot.machine.pid
        if pid is not None and pid > 0:
            self.kill(pid, action.signum, action.group)

    def close_write_end(self, svc: Service) -> None:
        if svc.pipe is not None and svc.pipe[1] >= 0:
            os.close(svc.pipe[1])
            svc.pipe = (svc.pipe[0], -1)

    def close_pipe(self, svc: Service) -> None:
        if svc.pipe is not None:
            for fd in svc.pipe:
                if fd >= 0:
                    os.close(fd)
            svc.pipe = None

    def stop_logger(self, svc: Service) -> None:
        """The service is down for good: its logger drains the pipe and goes too."""
        if svc.log is None:
            return
        self.apply(svc.log, svc.log.machine.retire(self.loop.clock(), grace=LOG_EOF_GRACE))
        if svc.log.machine.is_down():
            self.close_pipe(svc)

    # --- exits and timers ------------------------------------------------------------------
    def on_exit(self, slot: Slot, status: ExitStatus) -> None:
        svc = slot.service
        machine = slot.machine
        machine.set_has_finish(
            slot.label == "run" and is_executable(os.path.join(svc.defn.path, "finish"))
        )
        shutting_down = self.table.shutting_down
        now = self.loop.clock()
        if machine.state == "setup" and (status.code != 0 or machine.unhealthy):
            stopping = not machine.run_after_setup or shutting_down
            why = machine.unhealthy or f"exited with {status.describe()}"
            log.emit(log.DEBUG if stopping else log.WARNING, f"setup {why}", svc.name)
            if slot is svc.run:
                report(
                    svc,
                    "exited",
                    pid=machine.pid,
                    **exit_fields(status),
                    process="setup",
                    expected=stopping,
                    error=why,
                )
        if machine.state == "run":
            level = log.DEBUG if machine.want == "d" or shutting_down else log.INFO
            log.emit(level, f"{slot.label} exited with {status.describe()}", svc.name)
            if slot is svc.run:
                started = machine.started_at if machine.started_at is not None else now
                expected = machine.got_term or shutting_down  # a stop was sent (not `once`)
                report(
                    svc,
                    "exited",
                    pid=machine.pid,
                    **exit_fields(status),
                    process="run",
                    expected=bool(expected and not machine.unhealthy),
                    uptime=round(now - started, 3),
                    restarts=machine.restarts,
                )
            if slot is svc.run and svc.tracker is not None:
                svc.tracker.close()
                svc.tracker = None
                svc.status_text = None
        self.apply(slot, machine.exited(status, now))
        self.exited(slot)

    def arm(self, slot: Slot) -> None:
        when = slot.machine.deadline()
        if slot.timer is not None and not slot.timer.cancelled:
            if slot.timer.when == when:
                return
            slot.timer.cancel()
        slot.timer = None
        if when is not None:
            slot.timer = self.loop.call_at(when, lambda: self.on_timer(slot))

    def on_timer(self, slot: Slot) -> None:
        slot.timer = None
        self.apply(slot, slot.machine.tick(self.loop.clock()))
