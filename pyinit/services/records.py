"""The records the service parts share: a Service, its Slots, and the Table of them.

Plain data, no behaviour: readiness, supervise/ and the control requests read
these without importing the manager (which builds and changes them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Protocol

from pyinit.core.machine import LIVE, Machine
from pyinit.core.model import ServiceDir
from pyinit.core.schema import ServiceConfig
from pyinit.output.capture import Capture
from pyinit.runtime.loop import Timer


class Tracking(Protocol):
    """What a Service holds of its readiness tracker (readiness.Tracker)."""

    def close(self) -> None: ...
    def on_notify(self, fields: dict[str, str]) -> None: ...


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
    tracker: Optional[Tracking] = None  # readiness of the running `run`
    capture: Optional[Capture] = None  # stdout/stderr pipes in prefix and file mode
    status_text: Optional[str] = None  # sd_notify STATUS=
    waiting_for: list[str] = field(default_factory=list)  # dependencies not ready yet
    stop_asked: bool = False  # at shutdown: its stop was sent
    outcome_seen: Optional[str] = None  # the outcome acted on (essential services)
    retired: bool = False  # removed by a rescan or `svctl scale`, not by `svctl exit`
    last_event: Optional[str] = None  # the last event emitted for it (runner.report)

    @property
    def name(self) -> str:
        return self.defn.name

    @property
    def config(self) -> ServiceConfig:
        return self.defn.config

    def slots(self) -> list[Slot]:
        return [self.run] + ([self.log] if self.log else [])


@dataclass
class Table:
    """The services supervised now, by name, and the shutdown stage they are in:
    the state every part of the manager shares."""

    services: dict[str, Service] = field(default_factory=dict)
    stage: str = LIVE  # STOPPING from stop_all, FROZEN from kill-all (freeze)
    limit: Optional[float] = None  # from stop_all: the longest kill or finish wait

    @property
    def shutting_down(self) -> bool:
        """stop_all has begun: no rescan, control or new service (the machines,
        told the stage, start nothing but a `finish`)."""
        return self.stage != LIVE

    def all_down(self) -> bool:
        return all(slot.machine.is_down() for svc in self.services.values() for slot in svc.slots())
