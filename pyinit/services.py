"""Service supervision, the I/O shell: runs what supervisor.Machine decides.

For every service directory it keeps a Machine for `run` and one for `log/run`,
spawns processes, routes their exits back, arms one loop timer per machine,
watches the service dirs with inotify, and serves the control socket.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from pyinit import control, log, privileges, spawn
from pyinit.inotify import IN_CREATE, IN_IGNORED, IN_MOVED_TO, IN_ONLYDIR, IN_Q_OVERFLOW, Inotify
from pyinit.loop import Timer
from pyinit.reaper import ExitStatus
from pyinit.service import ServiceDir, change_matters, is_executable, scan
from pyinit.supervisor import (
    LETTERS,
    ClosePipe,
    Machine,
    Policy,
    Signal,
    Start,
)
from pyinit.svstatus import satisfied

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


@dataclass
class Waiter:
    """A client waiting for its command to take effect (svctl -w)."""

    client: control.Client
    letters: str
    targets: list[tuple[str, Slot]]
    asked_at: float
    errors: list[dict[str, Any]]
    timer: Optional[Timer] = None


class ServiceManager:
    def __init__(self, init: Init) -> None:
        self.init = init
        self.loop = init.loop
        self.config = init.config
        self.services: dict[str, Service] = {}
        self.waiters: list[Waiter] = []
        self.server: Optional[control.Server] = None
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
        self.open_control_socket()
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
        if self.server is not None:
            self.server.close()

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
        self.after_change(slot)

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
    def record(self, slot: Slot) -> dict[str, Any]:
        m = slot.machine
        now = self.loop.clock()
        wall = time.time()
        rec: dict[str, Any] = {
            "state": m.state,
            "pid": m.pid if m.pid and m.pid > 0 else None,
            "since": wall - (now - m.since),
            "uptime": round(m.uptime(now), 3),
            "want": m.want,
            "paused": m.paused,
            "got_term": m.got_term,
            "restarts": m.restarts,
            "last_exit_code": m.last_exit.code if m.last_exit else None,
            "last_signal": m.last_exit.signal if m.last_exit else None,
            "next_start_in": round(m.start_at - now, 3) if m.start_at else None,
        }
        return rec

    def service_record(self, svc: Service) -> dict[str, Any]:
        rec = self.record(svc.run)
        rec.update(
            name=svc.name,
            path=svc.defn.path,
            normally_up=svc.defn.normally_up,
            error=svc.defn.error,
            user=svc.defn.user,
            ready=None,
            log=None,
        )
        if svc.log is not None:
            rec["log"] = self.record(svc.log)
            rec["log"]["normally_up"] = True
        return rec

    def resolve(self, arg: str) -> Optional[tuple[Service, Slot]]:
        """A service by name, `name/log`, or path (as `sv` users type it)."""
        if "\0" in arg:
            return None  # no path holds a NUL (and os.path would raise)
        text = arg.rstrip("/")
        is_log = text.endswith("/log")
        base = text[: -len("/log")] if is_log else text
        svc = self.services.get(base)
        if svc is None and "/" in base:
            real = os.path.realpath(base)
            for candidate in self.services.values():
                if os.path.realpath(candidate.defn.path) == real:
                    svc = candidate
                    break
        if svc is None and is_log and arg in self.services:
            svc, is_log = self.services[arg], False
        if svc is None:
            return None
        slot = svc.log if is_log else svc.run
        return (svc, slot) if slot is not None else None

    def open_control_socket(self) -> None:
        run_dir = self.config.run_dir
        try:
            os.makedirs(run_dir, mode=0o755, exist_ok=True)
            path = os.path.join(run_dir, control.SOCKET_NAME)
            self.server = control.Server(self.loop, path, self.handle_request)
        except OSError as exc:
            log.warning(f"no control socket in {run_dir} ({exc}): svctl will not work")
            return
        os.environ["PYINIT_RUN_DIR"] = run_dir
        log.debug(f"control socket at {path}")

    def handle_request(self, client: control.Client, req: dict[str, Any]) -> None:
        cmd = req["cmd"]
        if cmd in ("reload", "shutdown") and not client.privileged:
            raise control.ProtocolError(f"permission denied: uid {client.uid} may only read status")
        if cmd == "status":
            client.send({"ok": True, "services": self.status(req["services"])})
        elif cmd in ("control", "wait"):
            self.control(client, req)
        elif cmd == "reload":
            self.reload()
            client.send({"ok": True})
        elif cmd == "shutdown":
            code = req.get("exit_code", 0)
            if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
                raise control.ProtocolError("'exit_code' must be an integer from 0 to 255")
            log.info(f"shutdown requested by pid {client.pid} (exit code {code})")
            self.init.request_exit(code)
            client.send({"ok": True})
        elif cmd == "ping":
            from pyinit import __version__

            client.send({"ok": True, "version": __version__, "pid": os.getpid(),
                         "wakeups": self.loop.wakeups, "rescans": self.rescans,
                         "orphans_reaped": self.init.reaper.strays})
        else:
            raise control.ProtocolError(f"unknown command {cmd!r}")

    def status(self, names: list[str]) -> list[dict[str, Any]]:
        if not names:
            return [self.service_record(s) for _, s in sorted(self.services.items())]
        out = []
        for name in names:
            found = self.resolve(name)
            if found is None:
                out.append({"name": name, "missing": True})
                continue
            svc, slot = found
            rec = self.service_record(svc) if slot is svc.run else self.record(slot)
            if slot is not svc.run:
                rec.update(name=f"{svc.name}/log", normally_up=True, log=None, error=None)
            out.append(rec)
        return out

    def control(self, client: control.Client, req: dict[str, Any]) -> None:
        """Apply svctl letters to services; with "wait", reply once they took effect."""
        letters = req.get("action")
        if req["cmd"] == "wait":
            allowed = LETTERS | {"C"}
        elif not client.privileged:
            raise control.ProtocolError(f"permission denied: uid {client.uid} may only read status")
        else:
            allowed = LETTERS
        if not isinstance(letters, str) or not letters or set(letters) - allowed:
            raise control.ProtocolError(f"'action' must be letters from {''.join(sorted(allowed))}")
        wait = req.get("wait")
        if wait is not None and (not isinstance(wait, (int, float)) or not 0 <= wait <= 86400):
            raise control.ProtocolError("'wait' must be a number of seconds up to 86400")
        if self.shutting_down and req["cmd"] == "control":
            raise control.ProtocolError("pyinit is shutting down")
        asked_at = self.loop.clock()
        errors, targets = [], []
        for name in req["services"] or sorted(self.services):
            found = self.resolve(name)
            if found is None:
                errors.append({"service": name, "ok": False, "error": "no such service"})
                continue
            svc, slot = found
            if svc.defn.error and slot.machine.is_down():
                errors.append({"service": name, "ok": False, "error": svc.defn.error})
                continue
            targets.append((name, slot))
        if req["cmd"] == "control":
            for _, slot in targets:
                for letter in letters:
                    self.apply(slot, slot.machine.command(letter, self.loop.clock()))
                svc = slot.service
                if svc.run.machine.removed and svc.run.machine.is_down():
                    self.forget(svc)
        if wait is None:
            ok = [{"service": name, "ok": True} for name, _ in targets]
            client.send({"ok": True, "results": errors + ok})
            return
        waiter = Waiter(client, letters, targets, asked_at, errors)
        waiter.timer = self.loop.call_later(float(wait), lambda: self.finish_wait(waiter, True))
        self.waiters.append(waiter)
        client.on_close.append(lambda: self.drop_waiter(waiter))
        self.check_waiter(waiter)

    def after_change(self, slot: Slot) -> None:
        for waiter in list(self.waiters):
            if any(s is slot for _, s in waiter.targets):
                self.check_waiter(waiter)

    def check_waiter(self, waiter: Waiter) -> None:
        if all(self.wait_done(waiter, slot) for _, slot in waiter.targets):
            self.finish_wait(waiter, False)

    def wait_done(self, waiter: Waiter, slot: Slot) -> bool:
        rec = self.record(slot)
        rec["since"] = slot.machine.since
        if slot.machine.start_at is not None and "u" in waiter.letters:
            return False
        return satisfied(waiter.letters, rec, waiter.asked_at)

    def finish_wait(self, waiter: Waiter, timed_out: bool) -> None:
        if waiter not in self.waiters:
            return
        self.drop_waiter(waiter)
        results = list(waiter.errors)
        for name, slot in waiter.targets:
            done = self.wait_done(waiter, slot)
            svc = slot.service
            rec = self.service_record(svc) if slot is svc.run else self.record(slot)
            results.append({"service": name, "ok": True, "done": done, "status": rec})
        waiter.client.send({"ok": True, "timed_out": timed_out, "results": results})

    def drop_waiter(self, waiter: Waiter) -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)
            if waiter.timer is not None:
                waiter.timer.cancel()


