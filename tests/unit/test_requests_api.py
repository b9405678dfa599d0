"""services/api.ManagerServices, the one adapter between the control requests and the
service manager: over a stand-in manager (the attributes it reads), with real Service,
Slot and Machine records. No loop runs and no process starts."""

from __future__ import annotations

import types
from typing import Any, Optional

from pyinit.core.instances import Expansion
from pyinit.core.machine import Machine
from pyinit.core.schema import Probe, ServiceConfig
from pyinit.core.views import service_record
from pyinit.runtime.reaper import ExitStatus
from pyinit.services.api import ManagerServices
from pyinit.services.manager import Service, Slot
from pyinit.services.servicedir import ServiceDir

# every field of a service's status record (docs/control-protocol.md)
RECORD = {
    "state", "pid", "since", "uptime", "want", "paused", "got_term", "restarts",
    "last_exit_code", "last_signal", "last_exit_at", "next_start_in", "name", "path",
    "normally_up", "error",
    "user", "settle", "ready", "failed", "outcome", "waiting_for", "status_text", "oneshot",
    "essential", "log", "log_mode", "dropped_bytes", "instance", "group",
}  # fmt: skip


def service(
    name: str,
    config: Optional[ServiceConfig] = None,
    log: bool = False,
    instance: Optional[str] = None,
) -> Service:
    defn = ServiceDir(
        name=name,
        path=f"/srv/{name}",
        normally_up=True,
        has_log=log,
        config=config or ServiceConfig(),
        instance=instance,
        user="nobody",
    )
    svc = Service(defn)
    svc.run = Slot(svc, "run", Machine())
    if log:
        svc.log = Slot(svc, "log", Machine())
    return svc


class Manager:
    """The members of ServiceManager the adapter reads and calls."""

    def __init__(self, *services: Service) -> None:
        self.services = {s.name: s for s in services}
        self.loop = types.SimpleNamespace(clock=lambda: 50.0, wakeups=4)
        self.expansion = Expansion()
        self.scanned: dict[str, Any] = {}
        self.rescans, self.rescan_timer, self.shutting_down = 1, None, False
        self.init = types.SimpleNamespace(reaper=types.SimpleNamespace(strays=6))
        self.on_change: list[Any] = []
        self.applied: list[tuple[str, list[Any]]] = []
        self.forgotten: list[str] = []

    def capture_settings(self, svc: Service) -> None:
        return None

    def apply(self, slot: Slot, actions: list[Any]) -> None:
        self.applied.append((slot.label, actions))

    def command(self, slot: Slot, letter: str) -> None:  # ServiceManager.command, no job
        self.apply(slot, slot.machine.command(letter, self.loop.clock()))

    def forget(self, svc: Service) -> None:
        self.forgotten.append(svc.name)

    def job_view(self, name: str) -> Optional[dict[str, Any]]:
        return {"next_run": 1042.5, "runs": 1} if name == "job" else None


def test_a_view_gives_every_field_of_the_record() -> None:
    ready = Probe("tcp", settle=3.0)
    svc = service("web", ServiceConfig(ready=ready, essential=True), log=True, instance="1")
    m = svc.run.machine
    m.state, m.pid, m.since, m.restarts, m.waiting = "run", 9, 40.0, 2, True
    m.last_exit = ExitStatus(code=3)
    svc.waiting_for, svc.status_text = ["db"], "warming up"
    manager = Manager(svc)
    manager.expansion.member_of["web"] = "w"
    api = ManagerServices(manager)  # type: ignore[arg-type]
    view = api.view(svc.run)
    assert api.view(svc.log) == view and api.is_log(svc.log) and not api.is_log(svc.run)
    rec = service_record(view, now=50.0, wall=1000.0)
    assert set(rec) == RECORD
    assert rec["pid"] == 9 and rec["uptime"] == 10.0 and rec["since"] == 990.0
    assert rec["last_exit_code"] == 3 and rec["settle"] == 3.0 and rec["waiting_for"] == ["db"]
    assert rec["group"] == "w" and rec["instance"] == "1" and rec["essential"] is True
    assert rec["log_mode"] == "runit" and rec["user"] == "nobody"
    assert rec["log"]["state"] == "down" and rec["log"]["normally_up"] is True


def test_a_job_view_carries_the_next_run() -> None:
    svc = service("job", ServiceConfig(schedule=object(), oneshot=True))
    rec = service_record(ManagerServices(Manager(svc)).view(svc.run), now=50.0, wall=1000.0)
    assert rec["job"] == {"next_run": 1042.5, "runs": 1, "next_run_in": 42.5}
    assert rec["normally_up"] is False  # down between runs, not "want up"


def test_names_slots_and_counters() -> None:
    web, db = service("web", log=True), service("db")
    api = ManagerServices(Manager(web, db))  # type: ignore[arg-type]
    assert sorted(api.names()) == ["db", "web"]
    assert api.slot("web") is web.run and api.slot("web", log=True) is web.log
    assert api.slot("db", log=True) is None and api.slot("nope") is None
    assert list(api.dirs()) == [("web", "/srv/web", None), ("db", "/srv/db", None)]
    assert api.counters() == {
        "wakeups": 4,
        "rescans": 1,
        "rescan_pending": False,
        "orphans_reaped": 6,
    }


def test_command_applies_each_letter_and_forgets_a_removed_service() -> None:
    svc = service("gone")
    manager = Manager(svc)
    api = ManagerServices(manager)  # type: ignore[arg-type]
    api.command(svc.run, "dx")
    assert [label for label, _ in manager.applied] == ["run", "run"]
    assert svc.run.machine.removed and manager.forgotten == ["gone"]


def test_subscribe_hears_the_managers_changes() -> None:
    manager = Manager()
    heard: list[Any] = []
    ManagerServices(manager).subscribe(heard.append)  # type: ignore[arg-type]
    for changed in manager.on_change:
        changed("slot")
    assert heard == ["slot"]
