"""Shutdown order: stop every service, dependents before their dependencies and
loggers after their service, all within the shutdown budget.

stop_all moves every machine to the STOPPING stage (nothing restarts, timeouts
capped by the budget) and sends each service its stop as soon as nothing still
running depends on it (deps.may_stop); when a service is down its logger
drains and goes. freeze is kill-all's stage: no machine starts anything more.
"""

from __future__ import annotations

from typing import Callable

from pyinit.core import deps
from pyinit.core.machine import FROZEN, STOPPING
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop
from pyinit.services.gates import Gates
from pyinit.services.records import Service, Slot, Table
from pyinit.services.runner import LOG_EOF_GRACE, SlotRunner


class ShutdownOrder:
    def __init__(
        self,
        loop: EventLoop,
        table: Table,
        runner: SlotRunner,
        gates: Gates,
        remaining: Callable[[float], float],
    ) -> None:
        self.loop = loop
        self.table = table
        self.runner = runner
        self.gates = gates
        self.remaining = remaining  # the shutdown budget left (Host.remaining)

    def stop_all(self, timeout: float) -> bool:
        """Stop every service in parallel, in dependency order; loggers after their
        service. Each kill and finish waits at most timeout; the whole is bounded by
        the budget. True when everything is down."""
        self.table.stage, self.table.limit = STOPPING, timeout
        for svc in list(self.table.services.values()):
            for slot in svc.slots():
                slot.machine.stopping(timeout)
                self.runner.apply(slot, [])
        self.advance()
        # run's stop, its finish, then the logger's EOF grace and stop: the worst case
        budget = self.remaining(3 * timeout + LOG_EOF_GRACE)
        if self.loop.run_until(self.table.all_down, budget):
            return True
        log.warning("services still running at the end of the shutdown budget")
        return False

    def advance(self) -> None:
        """Stop every service that nothing still running depends on (reverse order)."""
        services = self.table.services
        pending = [(name, svc) for name, svc in services.items() if not svc.stop_asked]
        if not pending:
            return
        needed: set[str] = set()
        if self.gates.any:
            running = {name for name, svc in services.items() if not svc.run.machine.is_down()}
            needed = deps.needed_by(self.gates.graph, running)
        now = self.loop.clock()
        for name, svc in pending:
            if svc.stop_asked or name in needed:
                continue
            svc.stop_asked = True
            self.runner.apply(svc.run, svc.run.machine.command("d", now))
            if svc.log is not None and svc.run.machine.is_down():
                self.runner.stop_logger(svc)

    def after_exit(self, slot: Slot) -> None:
        """A process exited during shutdown: a service now down lets its logger go,
        and may let what it depends on stop."""
        svc: Service = slot.service
        if self.table.shutting_down and slot is svc.run and svc.run.machine.is_down():
            self.runner.stop_logger(svc)
            self.advance()

    def freeze(self) -> None:
        """Kill-all has begun: every machine is told (abandon) and starts nothing from
        now on, not even a `finish` or a logger; whatever is still running is left to
        kill-all."""
        self.table.stage = FROZEN
        now = self.loop.clock()
        for svc in self.table.services.values():
            if svc.tracker is not None:
                svc.tracker.close()
                svc.tracker = None
            for slot in svc.slots():
                slot.machine.abandon(now)
                if slot.timer is not None:
                    slot.timer.cancel()
                    slot.timer = None
