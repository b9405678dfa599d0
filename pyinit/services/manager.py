"""Service supervision: the parts, wired together, and what boot calls.

One Machine (core/machine.py) per process slot decides; the parts do the rest,
each with one job, and talk back through the callbacks wired here:

- watcher.DirWatcher: inotify on the service dirs, debounced into a rescan;
- reconcile.Reconciler: scan, expand instances, add/update/remove/forget;
- runner.SlotRunner: executes the machines' actions (spawn, signal, timers, exits);
- captures.Captures: output capture in prefix and file mode;
- readyhost.ReadyHost: readiness trackers and the sd_notify socket;
- gates.Gates: `after` and `requires`;
- shutdown.ShutdownOrder: stop_all in dependency order, freeze for kill-all;
- supervise.SuperviseDirs: runit's supervise/ files.

The Host (host.py) is what it needs of boot. Control requests reach the services
through the members below (control/ is above this layer and registers
`on_change` to hear of every state change).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

from pyinit.core import instances
from pyinit.core.model import ServiceDir
from pyinit.output.capture import Settings
from pyinit.runtime import log
from pyinit.runtime.loop import Timer
from pyinit.services.captures import Captures
from pyinit.services.gates import Gates
from pyinit.services.host import Host
from pyinit.services.readyhost import ReadyHost
from pyinit.services.reconcile import Reconciler
from pyinit.services.records import Service, Slot, Table
from pyinit.services.runner import SlotRunner
from pyinit.services.shutdown import ShutdownOrder
from pyinit.services.supervise import SuperviseDirs
from pyinit.services.watcher import DirWatcher

if TYPE_CHECKING:
    from pyinit.services.scheduler import Scheduler


class ServiceManager:
    def __init__(self, host: Host) -> None:
        self.init = host  # the Host (services/api.py reads request_exit, reaper)
        self.loop = host.loop
        self.config = host.config
        self.table = Table()
        self.services = self.table.services
        self.on_change: list[Callable[[Slot], None]] = []  # after every state change
        self.rescans = 0
        self.captures = Captures(self.loop, self.config, host.remaining)
        self.runner = SlotRunner(host, self.table, self.captures, self.changed, self.exited)
        self.ready = ReadyHost(
            self.loop,
            self.table,
            host.run_dir,
            host.run_path,
            self.runner.apply,
            self.runner.spawn_check,
        )
        self.runner.new_tracker = self.ready.tracker
        self.gates = Gates(self.table, self.runner.apply, self.loop.clock)
        self.supervise = SuperviseDirs(self, run_dir=host.run_dir)  # runit's supervise/ dirs
        self.watcher = DirWatcher(self.loop, self.config, self.table, self.rescan)
        self.reconciler = Reconciler(
            self.table,
            self.config,
            self.runner,
            self.gates,
            self.captures,
            self.supervise.update,
            self.supervise.close,
            self.watcher.schedule,
        )
        self.order = ShutdownOrder(self.loop, self.table, self.runner, self.gates, host.remaining)
        self.scheduler: Optional[Scheduler] = None  # made for the first scheduled job
        self.reconciler.job_changed = self.job_changed

    # --- what boot calls ---------------------------------------------------------------
    def start(self, scan: bool = True) -> None:
        """Supervise the service dirs (unless scan is False: --skip-runit)."""
        if scan:
            self.watcher.start()
            self.rescan()

    def reload(self) -> None:
        """`svctl rescan` (and SIGHUP): rescan the service dirs."""
        if not self.shutting_down and not self.config.skip_services:
            log.info("rescanning service directories")
            self.rescan()

    def hangup(self) -> None:
        """SIGHUP to pyinit: rescan, and start new files for every file-mode log."""
        self.reload()
        self.captures.rotate(self.services.values())

    def stop_all(self, timeout: float) -> None:
        """Stop every service, in order and bounded (ShutdownOrder); every captured line
        out; the supervise/ fds and the sd_notify socket closed."""
        if self.scheduler is not None:
            self.scheduler.close()  # no more runs
        self.order.stop_all(timeout)
        self.captures.flush(self.services.values())
        self.supervise.close_all()
        self.ready.close()

    def freeze(self) -> None:
        """Kill-all has begun: no machine starts anything any more."""
        self.order.freeze()

    def all_started(self) -> bool:
        """Every service wanted up has been ready once, or will not be (the main
        command waits for this)."""
        return all(_started(svc) for svc in self.services.values())

    def not_started(self) -> list[str]:
        """The services all_started still waits for, in name order."""
        return sorted(svc.name for svc in self.services.values() if not _started(svc))

    # --- what control requests and supervise/ call ------------------------------------
    @property
    def stage(self) -> str:
        return self.table.stage

    @property
    def shutting_down(self) -> bool:
        return self.table.shutting_down

    def apply(self, slot: Slot, actions: list) -> None:
        """Execute a machine's actions (after an event the caller sent it)."""
        self.runner.apply(slot, actions)

    def command(self, slot: Slot, letter: str) -> None:
        """One control letter (svctl, sv, supervise/control) to slot; a scheduled job's
        up, down, once and exit go through the scheduler first (scheduler.command)."""
        if self.scheduler is None or not self.scheduler.command(slot, letter):
            self.apply(slot, slot.machine.command(letter, self.loop.clock()))

    def forget(self, svc: Service) -> None:
        self.reconciler.forget(svc)

    def scale(self, group: str, count: int) -> None:
        self.reconciler.scale(group, count)

    def instantiate(self, name: str) -> Optional[str]:
        return self.reconciler.instantiate(name)

    def capture_settings(self, svc: Service) -> Optional[Settings]:
        return self.captures.settings(svc)

    @property
    def expansion(self) -> instances.Expansion:
        return self.reconciler.expansion

    @property
    def scanned(self) -> dict[str, ServiceDir]:
        return self.reconciler.scanned

    @property
    def rescan_timer(self) -> Optional[Timer]:
        """The pending rescan, if any."""
        return self.watcher.timer

    # --- the wiring: what each part calls back ------------------------------------------
    def rescan(self) -> None:
        self.rescans += 1
        if self.shutting_down:
            return  # a debounced rescan armed before shutdown must not start services
        self.watcher.watch_found(self.reconciler.rescan())

    def changed(self, slot: Slot) -> None:
        """After every action a slot's machine asked for."""
        self.supervise.soon(slot)
        if slot is slot.service.run:
            self.check_outcome(slot.service)
        for listener in self.on_change:
            listener(slot)
        self.gates.update()

    def exited(self, slot: Slot) -> None:
        """After a process in slot exited (and its machine was told)."""
        svc = slot.service
        if self.scheduler is not None:
            self.scheduler.exited(slot)
        self.order.after_exit(slot)
        if slot.machine.removed and svc.run.machine.is_down():
            self.forget(svc)

    def job_changed(self, svc: Service) -> None:
        """svc was added, changed or removed: schedule it if it is a usable job."""
        is_job = (
            svc.config.schedule is not None
            and not svc.defn.error
            and not svc.retired
            and self.services.get(svc.name) is svc
        )
        if is_job and not self.shutting_down:
            if self.scheduler is None:
                from pyinit.services.scheduler import Scheduler  # only with a job

                self.scheduler = Scheduler(self.loop, self.runner.apply, lambda: self.shutting_down)
            self.scheduler.sync(svc)
        elif self.scheduler is not None:
            self.scheduler.remove(svc.name)

    def run_job(self, name: str) -> Optional[str]:
        """`svctl run NAME`: what the overlap rule made of it; None if not a job."""
        return self.scheduler.run_now(name) if self.scheduler is not None else None

    def job_view(self, name: str) -> Optional[dict[str, Any]]:
        return self.scheduler.view(name) if self.scheduler is not None else None

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
            log.error(
                f"essential service {machine.outcome}: shutting the container down "
                f"with exit code {code}",
                svc.name,
            )
            self.init.request_exit(code)


def _started(svc: Service) -> bool:
    """Ready once, or never will be (wanted down, or its definition cannot run)."""
    return bool(svc.run.machine.ever_ready or svc.run.machine.want == "d" or svc.defn.error)
