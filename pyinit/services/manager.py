"""Service supervision, the I/O shell: runs what supervisor.Machine decides.

For every service directory it keeps a Machine for `run` and one for `log/run`,
spawns processes, routes their exits back, arms one loop timer per machine,
watches the service dirs with inotify; control requests are served by requests.py.
Readiness is tracked by readiness.py; start and stop order follow deps.py;
output in prefix and file mode is captured by capture.py; templates, counted
services and `svctl scale` are expanded by instances.py.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from pyinit.control.requests import ControlRequests
from pyinit.core import deps, instances
from pyinit.core.machine import (
    FROZEN,
    LIVE,
    SETUP_TIMEOUT,
    STOPPING,
    ClosePipe,
    Machine,
    Policy,
    Signal,
    Start,
)
from pyinit.core.repeats import Repeats
from pyinit.core.schema import FILE_NAME, ServiceConfig
from pyinit.linux.inotify import (
    IN_CREATE,
    IN_IGNORED,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Inotify,
)
from pyinit.output.capture import Capture, Settings
from pyinit.runtime import launch, log, spawn
from pyinit.runtime.loop import Timer
from pyinit.runtime.reaper import ExitStatus
from pyinit.runtime.scripts import is_executable
from pyinit.services.readiness import Tracker
from pyinit.services.servicedir import ServiceDir, change_matters, scan
from pyinit.services.supervise import SuperviseDirs

if TYPE_CHECKING:
    from pyinit.boot import Init

RESCAN_DELAY = 0.1  # debounce inotify bursts (mkdir + write run + chmod)
# after `svctl exit` (sv exit), the rescan that finds the directory again, as runsvdir
# starts a new runsv for it at its next scan, a second after the old one exited
EXIT_RESCAN_DELAY = 1.0
OUTPUT_FLUSH = 2.0  # at exit, the longest wait for the container's stdout to take lines
LOG_EOF_GRACE = 1.0
LOG_ROOT = "/var/log/pyinit"  # file mode's default: LOG_ROOT/NAME


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
    tracker: Optional[Tracker] = None  # readiness of the running `run`
    capture: Optional[Capture] = None  # stdout/stderr pipes in prefix and file mode
    status_text: Optional[str] = None  # sd_notify STATUS=
    waiting_for: list[str] = field(default_factory=list)  # dependencies not ready yet
    stop_asked: bool = False  # at shutdown: its stop was sent
    outcome_seen: Optional[str] = None  # the outcome acted on (essential services)
    retired: bool = False  # removed by a rescan or `svctl scale`, not by `svctl exit`

    @property
    def name(self) -> str:
        return self.defn.name

    @property
    def config(self) -> ServiceConfig:
        return self.defn.config

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
        self.start_failures = Repeats()  # a fork that fails at every retry is logged once
        self.rescan_timer: Optional[Timer] = None
        self.stage = LIVE  # STOPPING from stop_all, FROZEN from kill-all (freeze)
        self._devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._warned: set[str] = set()
        self.graph: dict[str, deps.Deps] = {}
        self._gating = False
        self.notify: Any = None  # notify.NotifySocket, opened when a service needs it
        self.sinks: Optional[dict[str, Any]] = None  # the container's stdout/stderr (output.py)
        self.supervise = SuperviseDirs(self, run_dir=init.run_dir)  # runit's supervise/ dirs
        self.scanned: dict[str, ServiceDir] = {}  # the service dirs as last read
        self.expansion = instances.Expansion()  # what they mean (instances.expand)
        self.on_demand: set[str] = set()  # instances asked for by `svctl up T@NAME`
        self.scaled: dict[str, tuple[int, int]] = {}  # svctl scale: (configured, count)
        self.retiring: dict[str, str] = {}  # instances waiting to be stopped -> group
        self.wanted: dict[str, ServiceDir] = {}  # what the last sync supervises
        self._advancing = False

    @property
    def shutting_down(self) -> bool:
        """stop_all has begun: no rescan, control or new service (the machines,
        told the stage, start nothing but a `finish`)."""
        return self.stage != LIVE

    # --- lifecycle -------------------------------------------------------------
    def start(self, scan: bool = True) -> None:
        """Serve the control socket; supervise the service dirs unless scan is False."""
        self.requests.open_control_socket()
        if scan:
            self.watch_dirs()
            self.rescan()

    def reload(self) -> None:
        """`svctl rescan` (and SIGHUP): rescan the service dirs."""
        if not self.shutting_down and not self.config.skip_services:
            log.info("rescanning service directories")
            self.rescan()

    def hangup(self) -> None:
        """SIGHUP to pyinit: rescan, and start new files for every file-mode log."""
        self.reload()
        for svc in self.services.values():
            if svc.capture is not None:
                svc.capture.rotate()

    def stop_all(self, timeout: float) -> None:
        """Stop every service in parallel; loggers after their service. Bounded."""
        self.stage = STOPPING
        for svc in list(self.services.values()):
            for slot in svc.slots():
                policy = slot.machine.policy
                policy.kill_timeout = min(policy.kill_timeout, timeout)
                policy.finish_timeout = min(policy.finish_timeout, timeout)
                slot.machine.stopping()
                self.apply(slot, [])
        self.advance_shutdown()
        # run's stop, its finish, then the logger's EOF grace and stop: the worst case
        budget = self.init.remaining(3 * timeout + LOG_EOF_GRACE)
        if not self.loop.run_until(self.all_down, budget):
            log.warning("services still running at the end of the shutdown budget")
        self.flush_output()
        self.requests.close()
        self.supervise.close_all()
        if self.notify is not None:
            self.notify.close()

    def freeze(self) -> None:
        """Kill-all has begun: every machine is told (abandon) and starts nothing from
        now on, not even a `finish` or a logger; whatever is still running is left to
        kill-all."""
        self.stage = FROZEN
        now = self.loop.clock()
        for svc in self.services.values():
            if svc.tracker is not None:
                svc.tracker.close()
                svc.tracker = None
            for slot in svc.slots():
                slot.machine.abandon(now)
                if slot.timer is not None:
                    slot.timer.cancel()
                    slot.timer = None

    def advance_shutdown(self) -> None:
        """Stop every service that nothing still running depends on (reverse order)."""
        running = {name for name, svc in self.services.items() if not svc.run.machine.is_down()}
        now = self.loop.clock()
        for name, svc in list(self.services.items()):
            if svc.stop_asked or not deps.may_stop(name, self.graph, running):
                continue
            svc.stop_asked = True
            self.apply(svc.run, svc.run.machine.command("d", now))
            if svc.log is not None and svc.run.machine.is_down():
                self.stop_logger(svc)

    def all_down(self) -> bool:
        return all(slot.machine.is_down() for svc in self.services.values() for slot in svc.slots())

    def flush_output(self) -> None:
        """Every captured line out before exit (bounded by the shutdown budget)."""
        for svc in self.services.values():
            if svc.capture is not None:
                svc.capture.drain()
        sinks = [s for s in (self.sinks or {}).values() if s is not None]
        if not self.loop.run_until(lambda: all(s.empty() for s in sinks),
                                   self.init.remaining(OUTPUT_FLUSH)):
            log.warning("service output still unwritten at exit: dropped")

    def all_started(self) -> bool:
        """Every service wanted up has been ready once, or will not be (the main
        command waits for this)."""
        return all(svc.run.machine.ever_ready or svc.run.machine.want == "d" or svc.defn.error
                   for svc in self.services.values())

    def all_ready(self) -> bool:
        """/readyz: every service passes what `svctl check` asks (svstatus.healthy)."""
        from pyinit.core.svstatus import healthy

        return all(healthy(self.requests.service_record(svc)) for svc in self.services.values())

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
        found, problems = scan(self.config.service_dirs, self.config.service_defaults)
        self.scanned = found
        self.on_demand -= {n for n in self.on_demand
                           if n in self.services and self.services[n].run.machine.is_down()}
        self.sync(problems)
        if self.inotify is not None:
            self.watch_parents()
            self.watch(self.config.service_dirs, "base")
            self.watch([d.path for d in found.values()], "service")
            self.watch([os.path.join(d.path, "log") for d in found.values()], "log")

    def sync(self, problems: Optional[list[str]] = None) -> None:
        """Supervise what the last scan, svctl scale and on-demand instances add up to."""
        self.expansion = instances.expand(self.scanned, self.scaled, self.on_demand)
        self.scaled = {g: s for g, s in self.scaled.items()
                       if self.expansion.configured.get(g) == s[0]}
        self.on_demand &= set(self.expansion.services)  # their template is gone
        found = self.wanted = self.check_dependencies(dict(self.expansion.services))
        for problem in (problems or []) + self.expansion.problems:
            if problem not in self._warned:
                self._warned.add(problem)
                log.warning(problem)
        now = self.loop.clock()
        for name in instances.stop_order(set(self.services) - set(found)):
            svc = self.services[name]
            if svc.defn.instance is not None and not svc.retired:
                self.retiring[name] = instances.group_of(name, svc.defn.instance) or name
            elif not svc.retired:
                self.remove(svc, now)
        for name in [n for n in self.retiring if n in found or n not in self.services]:
            del self.retiring[name]
        self.advance_retiring(now)
        for name, defn in found.items():
            current = self.services.get(name)
            if current is None or current.run.machine.removed:
                if current is not None and not current.run.machine.is_down():
                    continue  # still stopping from an earlier removal
                self.add(defn, now)
            elif current.defn != defn:
                self.update(current, defn, now)
        self.update_gates()

    def advance_retiring(self, now: float) -> None:
        """Stop the instances that are to leave: highest numbers first, one at a time."""
        if self._advancing:
            return
        self._advancing = True
        try:
            while True:
                stopping = {n: instances.group_of(n, s.defn.instance) or n
                            for n, s in self.services.items() if s.retired}
                batch = instances.next_to_stop(self.retiring, stopping)
                if not batch:
                    return
                for name in batch:
                    del self.retiring[name]
                    if name in self.services:
                        self.remove(self.services[name], now)
        finally:
            self._advancing = False

    def scale(self, group: str, count: int) -> None:
        """`svctl scale` of a counted service (a group in expansion.configured)."""
        configured = self.expansion.configured[group]
        self.scaled[group] = (configured, count)
        log.info(f"scaling to {count} instance{'s' if count != 1 else ''}", group)
        self.sync()

    def instantiate(self, name: str) -> Optional[str]:
        """`svctl up T@NAME` for an instance nobody made yet: why it cannot be, or None."""
        if self.shutting_down:
            return "no such service"
        problem = instances.check_on_demand(name, self.expansion.templates, self.on_demand)
        if problem is None:
            self.on_demand.add(name)
            self.sync()
        return problem

    def check_dependencies(self, found: dict[str, ServiceDir]) -> dict[str, ServiceDir]:
        """Build the dependency graph; unknown names and cycles make a service fail."""
        graph = {name: deps.Deps() if d.error else deps.Deps(d.config.after, d.config.requires)
                 for name, d in found.items()}
        graph = deps.expand_groups(graph, self.expansion.groups)
        for name, problem in deps.problems(graph).items():
            where = os.path.join(found[name].path, FILE_NAME)
            found[name] = dataclasses.replace(found[name], error=f"{where}: {problem}")
        self.graph = {name: graph[name] for name in graph if not found[name].error}
        return found

    def add(self, defn: ServiceDir, now: float) -> None:
        svc = Service(defn)
        svc.run = Slot(svc, "run", self.new_machine(defn))
        self.services[defn.name] = svc
        if defn.error:
            for line in defn.error.splitlines():  # each problem of its service.yaml
                log.error(f"cannot supervise: {line}", defn.name)
            svc.run.machine.since = now
            svc.run.machine.hold()
            self.supervise.update(svc.run)
            return
        log.debug(f"supervising {defn.path}", defn.name)
        if defn.has_log and not self.add_logger(svc, now):
            return
        svc.run.machine.gated = bool(self.graph.get(defn.name, deps.Deps()).all)
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
        svc.log = Slot(svc, "log", self.new_machine(None))
        self.apply(svc.log, svc.log.machine.boot(now, True))
        return True

    def update(self, svc: Service, defn: ServiceDir, now: float) -> None:
        """The directory changed (run made executable, log/ added, ...)."""
        broke, fixed = defn.error and not svc.defn.error, svc.defn.error and not defn.error
        svc.defn = defn
        self.apply_policy(svc.run.machine, defn)
        if broke:  # never restart it on a bad definition (e.g. without its user)
            for line in (defn.error or "").splitlines():
                log.error(f"{line}: not restarted until fixed", defn.name)
            svc.run.machine.hold()
            self.arm(svc.run)
        self.supervise.update(svc.run)
        if defn.error:
            return
        if defn.has_log and svc.log is None and not self.add_logger(svc, now):
            return
        if fixed and defn.normally_up:
            log.info("usable again: wanted up", defn.name)
            self.apply(svc.run, svc.run.machine.command("u", now))

    def remove(self, svc: Service, now: float) -> None:
        what = "instance no longer wanted" if svc.defn.instance else "service directory removed"
        log.info(f"{what}: stopping it", svc.name)
        svc.retired = True
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
        self.supervise.close(svc)
        self.close_pipe(svc)
        if svc.capture is not None:
            svc.capture.drain()
            svc.capture.close()
            svc.capture = None
        if not svc.retired:
            self.on_demand.discard(svc.name)  # `svctl exit` of an on-demand instance
            if self.rescan_timer is None and not self.shutting_down:
                self.rescan_timer = self.loop.call_later(EXIT_RESCAN_DELAY, self.rescan)
        elif not self.shutting_down:
            self.advance_retiring(self.loop.clock())
            defn = self.wanted.get(svc.name)
            if defn is not None and svc.name not in self.services:  # wanted again meanwhile
                self.add(defn, self.loop.clock())
                self.update_gates()

    def new_machine(self, defn: Optional[ServiceDir]) -> Machine:
        machine = Machine(Policy(kill_timeout=self.config.kill_timeout))
        if self.stage == STOPPING:
            machine.stopping()
        elif self.stage == FROZEN:
            machine.abandon(self.loop.clock())
        if defn is not None:
            self.apply_policy(machine, defn)
            machine.backoff = machine.policy.backoff_initial
        return machine

    def apply_policy(self, machine: Machine, defn: ServiceDir) -> None:
        """service.yaml's restart and stop settings, from the next event on."""
        c, p = defn.config, machine.policy
        p.restart, p.success_codes, p.oneshot = c.restart, c.success_exit_codes, c.oneshot
        p.backoff_initial, p.backoff_factor, p.backoff_max = (
            c.backoff_initial, c.backoff_factor, c.backoff_max)
        p.max_restarts, p.restart_window = c.max_restarts, c.restart_window
        p.stop_signal, p.stop_group, p.kill_group = c.stop_signal, c.stop_group, c.kill_group
        p.finish_timeout = c.finish_timeout
        p.has_setup = defn.has_setup
        if c.ready is not None and c.ready.start_timeout is not None:
            p.setup_timeout = c.ready.start_timeout
        else:
            p.setup_timeout = SETUP_TIMEOUT
        timeout = self.config.kill_timeout if c.stop_timeout is None else c.stop_timeout
        p.kill_timeout = min(timeout, p.kill_timeout) if self.shutting_down else timeout

    # --- executing actions -------------------------------------------------------
    def apply(self, slot: Slot, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Start):
                self.start_process(slot, action)
            elif isinstance(action, Signal):
                self.send_signal(slot, action)
            elif isinstance(action, ClosePipe):
                self.close_write_end(slot.service)
        self.supervise.update(slot)
        self.arm(slot)
        if slot is slot.service.run:
            self.check_outcome(slot.service)
        self.requests.after_change(slot)
        self.update_gates()

    def start_process(self, slot: Slot, action: Start) -> None:
        svc = slot.service
        is_log = slot.label == "log"
        stdin = svc.pipe[0] if is_log and svc.pipe else self._devnull
        stdout = svc.pipe[1] if not is_log and svc.pipe else None
        stderr = None
        if not is_log and action.finish_args is None:
            self.reconcile_capture(svc)  # before setup too: its output goes there
        if not is_log and svc.capture is not None:
            stdout, stderr = svc.capture.fd("stdout"), svc.capture.fd("stderr")
        argv = ["./run"] if action.finish_args is None else ["./finish", *action.finish_args]
        if action.setup:
            argv = ["./setup"]
        tracker = None
        now = self.loop.clock()
        try:
            spec = self.process_spec(svc, argv, is_log, stdin=stdin, stdout=stdout)
            spec.stderr = stderr
            if not is_log and action.finish_args is None and not svc.config.oneshot \
                    and not action.setup:
                tracker = Tracker(self, svc)
                tracker.prepare(spec)
            pid = spawn.spawn(spec, self.init.inherited)
        except (spawn.SpawnError, launch.LaunchError, OSError) as exc:
            if tracker is not None:
                tracker.close()
            code = exc.exit_code if isinstance(exc, spawn.SpawnError) else spawn.NOT_EXECUTABLE
            if self.start_failures.failed((svc.name, slot.label), str(exc)):
                log.error(f"cannot start {slot.label}: {exc} (retried quietly until it "
                          "starts)", svc.name)
            self.apply(slot, slot.machine.spawn_failed(now, ExitStatus(code=code)))
            return
        if self.start_failures.succeeded((svc.name, slot.label)):
            log.info(f"{slot.label} started again", svc.name)
        slot.machine.spawned(pid, now)
        self.init.reaper.watch(pid, lambda _pid, status: self.on_exit(slot, status))
        what = "finish" if action.finish_args else "setup" if action.setup else slot.label
        log.debug(f"started {what} (pid {pid})", svc.name)
        if tracker is not None:
            svc.tracker = tracker
            tracker.started()

    def process_spec(self, svc: Service, argv: list[str], is_log: bool,
                     stdin: Optional[int], stdout: Optional[int]) -> spawn.Spec:
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
            argv, cwd=cwd, session=True, stdin=stdin, stdout=stdout,
            env=launch.environment(config, svc.defn.path, identity, env, svc.name),
            pre_exec=launch.child_setup(config, identity),
        )

    def capture_settings(self, svc: Service) -> Optional[Settings]:
        """Where run's output goes: None for inherit, and for log/run (which wins over
        a `log: mode`, so pyinit.yaml defaults never break a runit logger)."""
        c = svc.config
        mode = "runit" if svc.defn.has_log else (c.log_mode or self.config.log_mode)
        if mode not in ("prefix", "file"):
            return None
        instance = [svc.defn.instance] if svc.defn.instance else []  # log.dir/INSTANCE
        return Settings(
            mode=mode, fmt=c.log_format or self.config.log_format,
            timestamps=self.config.log_timestamps if c.log_timestamps is None
            else c.log_timestamps,
            directory=os.path.join(svc.defn.path, c.log_dir, *instance) if c.log_dir
            else os.path.join(LOG_ROOT, svc.name),
            max_size=c.log_max_size, max_files=c.log_max_files)

    def reconcile_capture(self, svc: Service) -> None:
        """Before run starts: pipes for prefix or file mode, as service.yaml says now."""
        settings = self.capture_settings(svc)
        current = svc.capture
        if current is not None and current.settings == settings:
            return
        if current is not None:
            current.drain()
            current.close()
            svc.capture = None
        if settings is None:
            return
        if self.sinks is None:
            from pyinit.output import sinks as output

            self.sinks = output.sinks(self.loop)
        try:
            svc.capture = Capture(self.loop, svc.name, settings, self.sinks)
            if current is not None:  # `svctl logs` keeps its history and followers
                svc.capture.ring, svc.capture.followers = current.ring, current.followers
        except OSError as exc:
            log.error(f"cannot capture output ({exc.strerror}): it goes to pyinit's "
                      "stdout and stderr", svc.name)

    def spawn_check(self, svc: Service, argv: list[str],
                    done: Callable[[ExitStatus], None]) -> Optional[int]:
        """Start a readiness or liveness check command; None (logged) if it cannot start,
        and None when the machine says no check may run (at shutdown)."""
        if not svc.run.machine.may_probe():
            return None
        try:
            spec = self.process_spec(svc, argv, False, stdin=self._devnull, stdout=self._devnull)
            pid = spawn.spawn(spec, self.init.inherited)
        except (spawn.SpawnError, launch.LaunchError) as exc:
            log.warning(f"cannot run check: {exc}", svc.name)
            return None
        self.init.reaper.watch(pid, lambda _pid, status: done(status))
        return pid

    def notify_socket_path(self) -> Optional[str]:
        if self.notify is None:
            from pyinit.services.notify import SOCKET_NAME, NotifySocket

            path = os.path.join(self.init.run_dir, SOCKET_NAME)  # what services are told
            try:
                self.notify = NotifySocket(self.loop, path, self.on_notify,
                                           at=self.init.run_path(SOCKET_NAME))
            except OSError as exc:
                problem = f"cannot open the sd_notify socket {path}: {exc.strerror}"
                if problem not in self._warned:  # once, not at every start
                    self._warned.add(problem)
                    log.error(problem)
                return None
        return self.notify.path

    def on_notify(self, pid: int, fields: dict[str, str]) -> None:
        try:
            session = os.getsid(pid)
        except OSError:
            return
        for svc in self.services.values():
            if svc.run.machine.pid in (pid, session) and svc.tracker is not None:
                if "STATUS" in fields:
                    svc.status_text = fields["STATUS"][:200]
                if fields.get("STOPPING") == "1":
                    log.debug("sd_notify: stopping", svc.name)
                svc.tracker.on_notify(fields)
                return
        log.debug(f"sd_notify message from pid {pid}, which is no service: ignored")

    def on_ready(self, svc: Service) -> None:
        svc.run.machine.became_ready()
        level = log.INFO if svc.config.ready is not None else log.DEBUG
        log.emit(level, "ready", svc.name)
        self.apply(svc.run, [])

    def on_unhealthy(self, svc: Service, reason: str) -> None:
        machine = svc.run.machine
        was = machine.unhealthy
        actions = machine.set_unhealthy(reason, self.loop.clock())
        if was is None and machine.unhealthy is not None:  # not when stopping anyway
            log.warning(f"{reason}: restarting it", svc.name)
        self.apply(svc.run, actions)

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
        if machine.state == "setup" and (status.code != 0 or machine.unhealthy):
            stopping = not machine.run_after_setup or self.shutting_down
            why = machine.unhealthy or f"exited with {status.describe()}"
            log.emit(log.DEBUG if stopping else log.WARNING, f"setup {why}", svc.name)
        if machine.state == "run":
            level = log.DEBUG if machine.want == "d" or self.shutting_down else log.INFO
            log.emit(level, f"{slot.label} exited with {status.describe()}", svc.name)
            if slot is svc.run and svc.tracker is not None:
                svc.tracker.close()
                svc.tracker = None
                svc.status_text = None
        self.apply(slot, machine.exited(status, self.loop.clock()))
        if self.shutting_down and slot is svc.run and svc.run.machine.is_down():
            self.stop_logger(svc)
            self.advance_shutdown()
        if machine.removed and svc.run.machine.is_down():
            self.forget(svc)

    def check_outcome(self, svc: Service) -> None:
        """A service the policy gave up on: say so; an essential one ends the container."""
        machine = svc.run.machine
        if machine.outcome == svc.outcome_seen:
            return
        svc.outcome_seen = machine.outcome
        if machine.outcome is None or self.shutting_down:
            return
        if machine.failed:
            log.error(f"failed: {machine.failed}", svc.name)
        elif machine.outcome == "done":
            log.info("done", svc.name)
        if svc.config.essential and not (svc.config.oneshot and machine.outcome == "done"):
            code = machine.last_exit.shell_code if machine.last_exit else 1
            log.error(f"essential service {machine.outcome}: shutting the container down "
                      f"with exit code {code}", svc.name)
            self.init.request_exit(code)

    # --- dependencies --------------------------------------------------------------
    def views(self) -> dict[str, deps.View]:
        out = {}
        for name, svc in self.services.items():
            m = svc.run.machine
            broken = bool(svc.defn.error) or m.failed is not None
            out[name] = deps.View(ready=m.ready, settled=broken or (m.want == "d"),
                                  failed=broken)
        return out

    def update_gates(self) -> None:
        """Start services whose dependencies became ready; stop those whose
        requirement failed for good. Runs after every change, re-entrancy safe."""
        if self._gating or not any(d.all for d in self.graph.values()):
            return
        self._gating = True
        try:
            changed = True
            while changed:
                changed = False
                views = self.views()
                for name, svc in self.services.items():
                    changed = self.update_gate(name, svc, views) or changed
                    if changed:
                        break
        finally:
            self._gating = False

    def update_gate(self, name: str, svc: Service, views: dict[str, deps.View]) -> bool:
        machine = svc.run.machine
        if name not in self.graph or machine.want != "u" or self.shutting_down:
            svc.waiting_for = []
            return False
        failed = deps.failed_requirement(name, self.graph, views)
        if failed is not None:
            log.error(f"stopped: it requires {failed}, which failed", name)
            self.apply(svc.run, machine.fail(f"requires {failed}, which failed",
                                             self.loop.clock()))
            return True
        svc.waiting_for = deps.blockers(name, self.graph, views)
        machine.gated = bool(svc.waiting_for)
        if machine.waiting and not machine.gated:
            self.apply(svc.run, machine.release(self.loop.clock()))
            return True
        return False

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
