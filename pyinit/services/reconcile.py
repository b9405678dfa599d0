"""Scan and reconcile: make the supervised services match what the dirs say.

A scan reads the service dirs (servicedir.scan); instances.expand adds what
templates, counted services, `svctl scale` and on-demand instances make of
them; Gates.build checks their dependencies. Then each service is added,
updated (new settings from the next event on) or removed (stopped for good and
forgotten once down); instances that leave go one at a time, highest first.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

from pyinit.core import instances
from pyinit.core.machine import FROZEN, SETUP_TIMEOUT, STOPPING, Machine, Policy
from pyinit.core.model import ServiceDir
from pyinit.runtime import log
from pyinit.services.captures import Captures
from pyinit.services.gates import Gates
from pyinit.services.host import Options
from pyinit.services.records import Service, Slot, Table
from pyinit.services.runner import SlotRunner
from pyinit.services.servicedir import scan

# after `svctl exit` (sv exit), the rescan that finds the directory again, as runsvdir
# starts a new runsv for it at its next scan, a second after the old one exited
EXIT_RESCAN_DELAY = 1.0


class Reconciler:
    def __init__(
        self,
        table: Table,
        options: Options,
        runner: SlotRunner,
        gates: Gates,
        captures: Captures,
        supervise_update: Callable[[Slot], None],
        supervise_close: Callable[[Service], None],
        schedule_rescan: Callable[[float], None],
    ) -> None:
        self.table = table
        self.options = options
        self.runner = runner
        self.clock = runner.loop.clock
        self.gates = gates
        self.captures = captures
        self.supervise_update = supervise_update  # supervise/ files: after each change
        self.supervise_close = supervise_close
        self.schedule_rescan = schedule_rescan
        self.scanned: dict[str, ServiceDir] = {}  # the service dirs as last read
        self.expansion = instances.Expansion()  # what they mean (instances.expand)
        self.on_demand: set[str] = set()  # instances asked for by `svctl up T@NAME`
        self.scaled: dict[str, tuple[int, int]] = {}  # svctl scale: (configured, count)
        self.retiring: dict[str, str] = {}  # instances waiting to be stopped -> group
        self.wanted: dict[str, ServiceDir] = {}  # what the last sync supervises
        self.warned: set[str] = set()
        self._advancing = False
        # after a service is added, changed or removed: the manager's scheduled jobs
        self.job_changed: Callable[[Service], None] = lambda svc: None

    @property
    def services(self) -> dict[str, Service]:
        return self.table.services

    def rescan(self) -> list[str]:
        """Read the service dirs and reconcile; the paths of the dirs found."""
        found, problems = scan(self.options.service_dirs, self.options.service_defaults)
        self.scanned = found
        self.on_demand -= {
            n
            for n in self.on_demand
            if n in self.services and self.services[n].run.machine.is_down()
        }
        self.sync(problems)
        return [d.path for d in found.values()]

    def sync(self, problems: Optional[list[str]] = None) -> None:
        """Supervise what the last scan, svctl scale and on-demand instances add up to."""
        self.expansion = instances.expand(self.scanned, self.scaled, self.on_demand)
        self.scaled = {
            g: s for g, s in self.scaled.items() if self.expansion.configured.get(g) == s[0]
        }
        self.on_demand &= set(self.expansion.services)  # their template is gone
        found = self.wanted = self.gates.build(dict(self.expansion.services), self.expansion.groups)
        for problem in (problems or []) + self.expansion.problems:
            if problem not in self.warned:
                self.warned.add(problem)
                log.warning(problem)
        now = self.clock()
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
        self.gates.update()

    def advance_retiring(self, now: float) -> None:
        """Stop the instances that are to leave: highest numbers first, one at a time."""
        if self._advancing:
            return
        self._advancing = True
        try:
            while True:
                stopping = {
                    n: instances.group_of(n, s.defn.instance) or n
                    for n, s in self.services.items()
                    if s.retired
                }
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
        if self.table.shutting_down:
            return "no such service"
        problem = instances.check_on_demand(name, self.expansion.templates, self.on_demand)
        if problem is None:
            self.on_demand.add(name)
            self.sync()
        return problem

    # --- one service ---------------------------------------------------------------
    def add(self, defn: ServiceDir, now: float) -> None:
        svc = Service(defn)
        svc.run = Slot(svc, "run", self.new_machine(defn))
        self.services[defn.name] = svc
        if defn.error:
            for line in defn.error.splitlines():  # each problem of its service.yaml
                log.error(f"cannot supervise: {line}", defn.name)
            svc.run.machine.boot(now, normally_up=False)  # held down until fixed
            self.supervise_update(svc.run)
            self.job_changed(svc)
            return
        log.debug(f"supervising {defn.path}", defn.name)
        if defn.has_log and not self.add_logger(svc, now):
            return
        svc.run.machine.set_gate(self.gates.has_dependencies(defn.name))
        up = defn.normally_up and defn.config.schedule is None  # a job runs when due
        self.runner.apply(svc.run, svc.run.machine.boot(now, up))
        self.job_changed(svc)

    def add_logger(self, svc: Service, now: float) -> bool:
        """Create the log pipe and start the logger; False (the service marked
        failed, the others untouched) when no pipe can be had (out of fds)."""
        try:
            svc.pipe = os.pipe()
        except OSError as exc:
            svc.defn = dataclasses.replace(
                svc.defn, error=f"cannot create the log pipe: {exc.strerror}"
            )
            log.error(svc.defn.error or "", svc.name)
            return False
        svc.log = Slot(svc, "log", self.new_machine(None))
        self.runner.apply(svc.log, svc.log.machine.boot(now, True))
        return True

    def update(self, svc: Service, defn: ServiceDir, now: float) -> None:
        """The directory changed (run made executable, log/ added, ...)."""
        broke, fixed = defn.error and not svc.defn.error, svc.defn.error and not defn.error
        svc.defn = defn
        svc.run.machine.configure(self.policy(defn))
        self.job_changed(svc)
        if broke:  # never restart it on a bad definition (e.g. without its user)
            for line in (defn.error or "").splitlines():
                log.error(f"{line}: not restarted until fixed", defn.name)
            svc.run.machine.hold()
            self.runner.arm(svc.run)
        self.supervise_update(svc.run)
        if defn.error:
            return
        if defn.has_log and svc.log is None and not self.add_logger(svc, now):
            return
        if fixed and defn.normally_up and defn.config.schedule is None:
            log.info("usable again: wanted up", defn.name)
            self.runner.apply(svc.run, svc.run.machine.command("u", now))

    def remove(self, svc: Service, now: float) -> None:
        what = "instance no longer wanted" if svc.defn.instance else "service directory removed"
        log.info(f"{what}: stopping it", svc.name)
        svc.retired = True
        self.job_changed(svc)
        self.runner.apply(svc.run, svc.run.machine.retire(now))
        if svc.run.machine.is_down():
            self.forget(svc)

    def forget(self, svc: Service) -> None:
        """Drop a removed service once everything in it is down."""
        if svc.log is not None and not svc.log.machine.is_down():
            self.runner.stop_logger(svc)
            return
        if self.services.get(svc.name) is svc:
            del self.services[svc.name]
            self.job_changed(svc)
        self.supervise_close(svc)
        self.runner.close_pipe(svc)
        self.captures.close(svc)
        if not svc.retired:
            self.on_demand.discard(svc.name)  # `svctl exit` of an on-demand instance
            self.schedule_rescan(EXIT_RESCAN_DELAY)
        elif not self.table.shutting_down:
            self.advance_retiring(self.clock())
            defn = self.wanted.get(svc.name)
            if defn is not None and svc.name not in self.services:  # wanted again meanwhile
                self.add(defn, self.clock())
                self.gates.update()

    # --- machines --------------------------------------------------------------------
    def new_machine(self, defn: Optional[ServiceDir]) -> Machine:
        """A machine for run (defn) or the logger (None), in the stage of the others."""
        policy = self.policy(defn) if defn else Policy(kill_timeout=self.options.kill_timeout)
        machine = Machine(policy)
        if self.table.stage == STOPPING:
            machine.stopping(self.table.limit)
        elif self.table.stage == FROZEN:
            machine.abandon(self.clock())
        return machine

    def policy(self, defn: ServiceDir) -> Policy:
        """service.yaml's restart and stop settings."""
        c = defn.config
        if c.ready is not None and c.ready.start_timeout is not None:
            setup_timeout = c.ready.start_timeout
        else:
            setup_timeout = SETUP_TIMEOUT
        return Policy(
            kill_timeout=self.options.kill_timeout if c.stop_timeout is None else c.stop_timeout,
            finish_timeout=c.finish_timeout,
            stop_signal=c.stop_signal,
            stop_group=c.stop_group,
            kill_group=c.kill_group,
            has_setup=defn.has_setup,
            setup_timeout=setup_timeout,
            restart=c.restart,
            success_codes=c.success_exit_codes,
            oneshot=c.oneshot,
            backoff_initial=c.backoff_initial,
            backoff_factor=c.backoff_factor,
            backoff_max=c.backoff_max,
            max_restarts=c.max_restarts,
            restart_window=c.restart_window,
        )
