"""Hosting readiness: the sd_notify socket, check commands, and what trackers report.

Each running `run` has a readiness.Tracker; this is its Host. It opens the
sd_notify socket on first need, routes each datagram to the service whose
session sent it, and turns "ready" and "unhealthy" into machine events.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from pyinit.core.exits import ExitStatus
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop
from pyinit.services.readiness import Tracker
from pyinit.services.records import Service, Slot, Table
from pyinit.services.runner import report

Apply = Callable[[Slot, list], None]
SpawnCheck = Callable[[Service, list, Callable[[ExitStatus], None]], Optional[int]]


class ReadyHost:
    def __init__(
        self,
        loop: EventLoop,
        table: Table,
        run_dir: Optional[str],
        bind_at: Callable[[str], str],
        apply: Apply,
        spawn_check: SpawnCheck,
    ) -> None:
        self.loop = loop
        self.table = table
        self.run_dir = run_dir  # where services are told the socket is (None: no socket)
        self.bind_at = bind_at  # where to bind it (Host.run_path)
        self.apply = apply
        self._spawn_check = spawn_check
        self.notify: Any = None  # notify.NotifySocket, opened when a service needs it

    def tracker(self, svc: Service) -> Tracker:
        return Tracker(self, svc)

    def close(self) -> None:
        if self.notify is not None:
            self.notify.close()

    # --- readiness.Host ------------------------------------------------------------
    def notify_socket_path(self) -> Optional[str]:
        if self.notify is None:
            from pyinit.services.notify import SOCKET_NAME, NotifySocket

            if self.run_dir is None:  # no usable run dir: no socket to offer
                log.once(
                    log.ERROR,
                    "no usable run dir: no sd_notify socket (NOTIFY_SOCKET is "
                    "not set; sd_notify readiness and the watchdog cannot work)",
                )
                return None
            path = os.path.join(self.run_dir, SOCKET_NAME)  # what services are told
            try:
                self.notify = NotifySocket(
                    self.loop, path, self.on_notify, at=self.bind_at(SOCKET_NAME)
                )
            except OSError as exc:
                problem = f"cannot open the sd_notify socket {path}: {exc.strerror}"
                log.once(log.ERROR, problem)  # once, not at every start
                return None
        return self.notify.path

    def spawn_check(
        self, svc: Service, argv: list[str], done: Callable[[ExitStatus], None]
    ) -> Optional[int]:
        return self._spawn_check(svc, argv, done)

    def on_ready(self, svc: Service) -> None:
        svc.run.machine.became_ready()
        level = log.INFO if svc.config.ready is not None else log.DEBUG
        log.emit(level, "ready", svc.name)
        if svc.run.machine.ready:
            report(svc, "ready", pid=svc.run.machine.pid)
        self.apply(svc.run, [])

    def on_unhealthy(self, svc: Service, reason: str) -> None:
        machine = svc.run.machine
        was = machine.unhealthy
        actions = machine.set_unhealthy(reason, self.loop.clock())
        if was is None and machine.unhealthy is not None:  # not when stopping anyway
            log.warning(f"{reason}: restarting it", svc.name)
            report(svc, "unhealthy", pid=machine.pid, reason=reason)
        self.apply(svc.run, actions)

    # --- the socket ------------------------------------------------------------------
    def on_notify(self, pid: int, fields: dict[str, str]) -> None:
        try:
            session = os.getsid(pid)
        except OSError:
            return
        for svc in self.table.services.values():
            if svc.run.machine.pid in (pid, session) and svc.tracker is not None:
                if "STATUS" in fields:
                    svc.status_text = fields["STATUS"][:200]
                if fields.get("STOPPING") == "1":
                    log.debug("sd_notify: stopping", svc.name)
                svc.tracker.on_notify(fields)
                return
        log.debug(f"sd_notify message from pid {pid}, which is no service: ignored")
