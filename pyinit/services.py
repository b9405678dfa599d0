"""Service supervision, the I/O shell: runs what supervisor.Machine decides.

For every service directory it keeps a Machine for `run` and one for `log/run`,
spawns processes, routes their exits back, arms one loop timer per machine,
watches the service dirs with inotify; control requests are served by requests.py.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from pyinit import log, privileges, spawn
from pyinit.inotify import IN_CREATE, IN_IGNORED, IN_MOVED_TO, IN_ONLYDIR, IN_Q_OVERFLOW, Inotify
from pyinit.loop import Timer
from pyinit.reaper import ExitStatus
from pyinit.requests import ControlRequests
from pyinit.service import ServiceDir, change_matters, is_executable, scan
from pyinit.supervisor import (
    ClosePipe,
    Machine,
    Policy,
    Signal,
    Start,
)

if TYPE_CHECKING:
    from pyinit.boot import Init

RESCAN_DELAY = 0.1  # debounce inotify bursts (mkdir + write run + chmod)
LOG_EOF_GRACE = 1.0


@dataclass
class Slot:
    """One supervised process: a service's run or its logger."""

    service: Service
    label: str  # "run" or "log"
    machine: Machine
    timer: Optional[Timer] = None

    @property
    def cwd(self) -> str:
        path = self.service.defn.path
        return path if self.label == "run" else os.path.join(path, "log")


@dataclass
class Service:
    defn: ServiceDir
    run: Slot = field(init=False)
    log: Optional[Slot] = None
    pipe: Optional[tuple[int, int]] = None  # (read end, write end), held by pyinit

    @property
    def name(self) -> str:
        return self.defn.name

    def slots(self) -> list[Slot]:
        return [self.run] + ([self.log] if self.log else [])


class ServiceManager:
    def __init__(self, init: Init) -> None:
        self.init = init
        self.loop = init.loop
        self.config = init.config
        self.services: dict[str, Service] = {}
        self.requests = ControlRequests(self)
        self.inotify: Optional[Inotify] = None
        # watch descriptor -> "parent", "base", "service" or "log"
        self.watches: dict[int, str] = {}
        self.parent_names: dict[int, set[str]] = {}  # parent wd -> service dir names in it
        self.rescans = 0
        self.rescan_timer: Optional[Timer] = None
        self.shutting_down = False
        self._devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._warned: set[str] = set()

    # --- lifecycle -------------------------------------------------------------
    def start(self, scan: bool = True) -> None:
        """Serve the control socket; supervise the service dirs unless scan is False."""
        self.requests.open_control_socket()
        if scan:
            self.watch_dirs()
            self.rescan()

    def reload(self) -> None:
        if not self.shutting_down and not self.config.skip_services:
            log.info("rescanning service directories")
            self.rescan()

    def stop_all(self, timeout: float) -> None:
        """Stop every service in parallel; loggers after their service. Bounded."""
        self.shutting_down = True
        now = self.loop.clock()
        for svc in self.services.values():
            for slot in svc.slots():
                policy = slot.machine.policy
                policy.kill_timeout = min(policy.kill_timeout, timeout)
                policy.finish_timeout = min(policy.finish_timeout, timeout)
            self.apply(svc.run, svc.run.machine.command("d", now))
            if svc.log is not None and svc.run.machine.is_down():
                self.stop_logger(svc)
        # run's stop, its finish, then the logger's EOF grace and stop: the worst case
        budget = self.init.remaining(3 * timeout + LOG_EOF_GRACE)
        if not self.loop.run_until(self.all_down, budget):
            log.warning("services still running at the end of the shutdown budget")
        self.requests.close()

    def all_down(self) -> bool:
        return all(slot.machine.is_down() for svc in self.services.values() for slot in svc.slots())

    # --- scanning --------------------------------------------------------------
    def watch_dirs(self) -> None:
        try:
            self.inotify = Inotify()
        except OSError as exc:
            log.warning(f"cannot watch service dirs ({exc}); use svctl reload after changes")
            return
        self.loop.add_reader(self.inotify.fd, self.on_dir_change)

    def on_dir_change(self) -> None:
        assert self.inotify is not None
        matters = False
        for event in self.inotify.read():
            if event.mask & IN_Q_OVERFLOW:
                matters = True
            elif event.mask & IN_IGNORED:
                self.watches.pop(event.wd, None)
            elif self.watches.get(event.wd) == "parent":
                matters = matters or event.name in self.parent_names.get(event.wd, ())
            elif change_matters(self.watches.get(event.wd, "base"), event.name):
                matters = True
        if matters and self.rescan_timer is None and not self.shutting_down:
            self.rescan_timer = self.loop.call_later(RESCAN_DELAY, self.rescan)

    def watch(self, paths: list[str], kind: str) -> None:
        assert self.inotify is not None
        for path in paths:
            wd = self.inotify.watch(path)
            if wd >= 0:
                self.watches[wd] = kind

    def watch_parents(self) -> None:
        """Watch the dir above each service dir, so one created (or deleted and
        recreated) after boot is noticed too."""
        assert self.inotify is not None
        for base in self.config.service_dirs:
            parent, name = os.path.split(os.path.abspath(base))
            wd = self.inotify.watch(parent, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)
            if wd >= 0:
                self.watches[wd] = "parent"
                self.parent_names.setdefault(wd, set()).add(name)

    def rescan(self) -> None:
        self.rescan_timer = None
        self.rescans += 1
        if self.shutting_down:
            return  # a debounced rescan armed before shutdown must not start services
        found, problems = scan(self.config.service_dirs)
        for problem in problems:
            if problem not in self._warned:
                self._warned.add(problem)
                log.warning(problem)
        if self.inotify is not None:
            self.watch_parents()
            self.watch(self.config.service_dirs, "base")
            self.watch([d.path for d in found.values()], "service")
            self.watch([os.path.join(d.path, "log") for d in found.values()], "log")
        now = self.loop.clock()
        for name in sorted(set(self.services) - set(found)):
            self.remove(self.services[name], now)
        for name, defn in found.items():
            current = self.services.get(name)
            if current is None or current.run.machine.removed:
                if current is not None and not current.run.machine.is_down():
                    continue  # still stopping from an earlier removal
                self.add(defn, now)
            elif current.defn != defn:
                self.update(current, defn, now)

    def add(self, defn: ServiceDir, now: float) -> None:
        svc = Service(defn)
        svc.run = Slot(svc, "run", self.new_machine())
        self.services[defn.name] = svc
        if defn.error:
            log.error(f"cannot supervise: {defn.error}", defn.name)
            svc.run.machine.hold()
            return
        log.debug(f"supervising {defn.path}", defn.name)
        if defn.has_log and not self.add_logger(svc, now):
            return
        self.apply(svc.run, svc.run.machine.boot(now, defn.normally_up))

    def add_logger(self, svc: Service, now: float) -> bool:
        """Create the log pipe and start the logger; False (the service marked
        failed, the others untouched) when no pipe can be had (out of fds)."""
        try:
            svc.pipe = os.pipe()
        except OSError as exc:
            svc.defn = dataclasses.replace(
                svc.defn, error=f"cannot create the log pipe: {exc.strerror}")
            log.error(svc.defn.error or "", svc.name)
            return False
        svc.log = Slot(svc, "log", self.new_machine())
        self.apply(svc.log, svc.log.machine.boot(now, True))
        return True

    def update(self, svc: Service, defn: ServiceDir, now: float) -> None:
        """The directory changed (run made executable, log/ added, ...)."""
        broke, fixed = defn.error and not svc.defn.error, svc.defn.error and not defn.error
        svc.defn = defn
        if broke:  # never restart it on a bad definition (e.g. without its user)
            log.error(f"{defn.error}: not restarted until fixed", defn.name)
            svc.run.machine.hold()
            self.arm(svc.run)
        if defn.error:
            return
        if defn.has_log and svc.log is None and not self.add_logger(svc, now):
            return
        if fixed and defn.normally_up:
            log.info("usable again: wanted up", defn.name)
            self.apply(svc.run, svc.run.machine.command("u", now))

    def remove(self, svc: Service, now: float) -> None:
        log.info("service directory removed: stopping it", svc.name)
        self.apply(svc.run, svc.run.machine.command("x", now))
        if svc.run.machine.is_down():
            self.forget(svc)

    def forget(self, svc: Service) -> None:
        """Drop a removed service once everything in it is down."""
        if svc.log is not None and not svc.log.machine.is_down():
            self.stop_logger(svc)
            return
        if self.services.get(svc.name) is svc:
            del self.services[svc.name]
        self.close_pipe(svc)

    def new_machine(self) -> Machine:
        return Machine(Policy(kill_timeout=self.config.kill_timeout))

    # --- executing actions -------------------------------------------------------
    def apply(self, slot: Slot, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Start):
                self.start_process(slot, action)
            elif isinstance(action, Signal):
                self.send_signal(slot, action)
            elif isinstance(action, ClosePipe):
                self.close_write_end(slot.service)
        self.arm(slot)
        self.requests.after_change(slot)

    def start_process(self, slot: Slot, action: Start) -> None:
        svc = slot.service
        is_log = slot.label == "log"
        stdin = svc.pipe[0] if is_log and svc.pipe else self._devnull
        stdout = svc.pipe[1] if not is_log and svc.pipe else None
        argv = ["./run"] if action.finish_args is None else ["./finish", *action.finish_args]
        spec = spawn.Spec(argv, cwd=slot.cwd, session=True, stdin=stdin, stdout=stdout)
        identity = svc.defn.log_as if is_log else svc.defn.run_as
        if identity is not None:
            spec.env = privileges.environment(identity, dict(os.environ), clear=False)
            spec.pre_exec = lambda: privileges.drop(identity)
        now = self.loop.clock()
        try:
            pid = spawn.spawn(spec, self.init.inherited)
        except spawn.SpawnError as exc:
            log.error(f"cannot start {slot.label}: {exc}", svc.name)
            self.apply(slot, slot.machine.spawn_failed(now, ExitStatus(code=exc.exit_code)))
            return
        slot.machine.spawned(pid, now)
        self.init.reaper.watch(pid, lambda _pid, status: self.on_exit(slot, status))
        what = "finish" if action.finish_args else slot.label
        log.debug(f"started {what} (pid {pid})", svc.name)

    def send_signal(self, slot: Slot, action: Signal) -> None:
        pid = slot.machine.pid
        if pid is None or pid <= 0:
            return
        try:
            if action.group:
                os.killpg(pid, action.signum)
            else:
                os.kill(pid, action.signum)
        except (ProcessLookupError, PermissionError):
            pass

    def on_exit(self, slot: Slot, status: ExitStatus) -> None:
        svc = slot.service
        machine = slot.machine
        machine.policy.has_finish = slot.label == "run" and is_executable(
            os.path.join(svc.defn.path, "finish")
        )
        if machine.state == "run":
            level = log.DEBUG if machine.want == "d" or self.shutting_down else log.INFO
            log.emit(level, f"{slot.label} exited with {status.describe()}", svc.name)
        self.apply(slot, machine.exited(status, self.loop.clock()))
        if self.shutting_down and slot is svc.run and svc.run.machine.is_down():
            self.stop_logger(svc)
        if machine.removed and svc.run.machine.is_down():
            self.forget(svc)

    def stop_logger(self, svc: Service) -> None:
        if svc.log is None:
            return
        svc.log.machine.policy.term_grace = LOG_EOF_GRACE
        svc.log.machine.removed = True
        self.apply(svc.log, svc.log.machine.command("d", self.loop.clock()))
        if svc.log.machine.is_down():
            self.close_pipe(svc)

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

    # --- status and control --------------------------------------------------------
