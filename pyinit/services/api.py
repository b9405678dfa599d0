"""The narrow interface the control requests use to reach the services (Services),
and its one implementation over the service manager (ManagerServices).

The control layer imports this module only: it names services and slots, reads
them through frozen views (core/views.py), sends a slot svctl's letters, scales
a group, rescans, reads a service's captured lines, and hears of every state
change. ManagerServices is the only code that touches the manager for it.

A slot (Handle) is opaque to the caller: a service's run or its logger, compared
with `is`, and only ever passed back to these methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Protocol

from pyinit.core.views import ProcessView, ServiceView

if TYPE_CHECKING:
    from pyinit.services.manager import Service, ServiceManager, Slot

Handle = Any  # a slot, opaque outside the services layer


class Services(Protocol):
    """What the control requests may ask of service supervision."""

    @property
    def shutting_down(self) -> bool: ...

    # --- naming
    def names(self) -> list[str]:
        """Every supervised service, in no particular order."""

    def slot(self, name: str, log: bool = False) -> Optional[Handle]:
        """Service name's run (or its logger), None if it has none."""

    def dirs(self) -> Iterator[tuple[str, str, Optional[str]]]:
        """(name, directory, instance) of every supervised service."""

    def scanned_path(self, name: str) -> Optional[str]:
        """The directory of the service dir `name` as scanned (a group's own dir)."""

    def group(self, name: str) -> Optional[list[str]]:
        """The instances of group name (counted service, template), None if no group."""

    def counted(self, name: str) -> bool:
        """Is name a counted service (`instances:` in its service.yaml)?"""

    # --- reading
    def view(self, slot: Handle) -> ServiceView:
        """The service slot belongs to, as it is now."""

    def is_log(self, slot: Handle) -> bool: ...

    def counters(self) -> dict[str, Any]:
        """ping's figures: wakeups, rescans, rescan_pending, orphans_reaped."""

    # --- acting
    def command(self, slot: Handle, letters: str) -> None:
        """svctl's letters to slot, in order."""

    def instantiate(self, name: str) -> Optional[str]:
        """Make template instance name on demand; None, or why not."""

    def scale(self, group: str, count: int) -> None: ...

    def run_job(self, name: str) -> Optional[str]:
        """`svctl run`: start a scheduled job now under its overlap rule; what was done
        (core/jobs.py: run, skipped, queued, stop-and-run, or "" if one is queued
        already), None if name is not a job."""

    def reload(self) -> None: ...
    def request_exit(self, code: int) -> None: ...

    # --- captured output (prefix and file mode)
    def log_tail(self, name: str, count: int) -> Optional[list[bytes]]:
        """The last count lines pyinit keeps of service name, None if it keeps none."""

    def log_history(self, name: str, count: int) -> Optional[list[tuple[int, bytes]]]:
        """The last count lines pyinit holds in memory of service name, each with its
        place in the order all services' lines arrived; None if it keeps none."""

    def follow_log(self, name: str, send: Callable[[bytes], None]) -> Callable[[], None]:
        """send every new line of name; returns what stops it."""

    def file_log(self, name: str) -> bool:
        """Is service name logging to files (file mode, capturing)?"""

    def rotate_log(self, name: str) -> None: ...

    # --- events
    def subscribe(self, changed: Callable[[Handle], None]) -> None:
        """changed(slot) after every change of any slot's state."""


class ManagerServices:
    """Services over a ServiceManager (the one adapter; keep it to plain reads and
    calls)."""

    def __init__(self, manager: ServiceManager) -> None:
        self.m = manager

    @property
    def shutting_down(self) -> bool:
        return self.m.shutting_down

    def names(self) -> list[str]:
        return list(self.m.services)

    def slot(self, name: str, log: bool = False) -> Optional[Slot]:
        svc = self.m.services.get(name)
        if svc is None:
            return None
        return svc.log if log else svc.run

    def dirs(self) -> Iterator[tuple[str, str, Optional[str]]]:
        for svc in self.m.services.values():
            yield svc.name, svc.defn.path, svc.defn.instance

    def scanned_path(self, name: str) -> Optional[str]:
        defn = self.m.scanned.get(name)
        return defn.path if defn is not None else None

    def group(self, name: str) -> Optional[list[str]]:
        return self.m.expansion.groups.get(name)

    def counted(self, name: str) -> bool:
        return name in self.m.expansion.configured

    def view(self, slot: Slot) -> ServiceView:
        svc, now = slot.service, self.m.loop.clock()
        c = svc.config
        return ServiceView(
            name=svc.name,
            run=ProcessView.of(svc.run.machine, now),
            log=ProcessView.of(svc.log.machine, now) if svc.log else None,
            path=svc.defn.path,
            normally_up=svc.defn.normally_up and c.schedule is None,  # a job: down between runs
            error=svc.defn.error,
            user=svc.defn.user,
            settle=c.ready.settle if c.ready else 0.0,
            waiting_for=tuple(svc.waiting_for),
            status_text=svc.status_text,
            oneshot=c.oneshot,
            essential=c.essential,
            log_mode=self.log_mode(svc),
            dropped_bytes=svc.capture.dropped() if svc.capture else 0,
            instance=svc.defn.instance,
            group=self.m.expansion.member_of.get(svc.name),
            job=self.m.job_view(svc.name),
        )

    def log_mode(self, svc: Service) -> str:
        if svc.capture is not None:
            return svc.capture.mode
        settings = self.m.capture_settings(svc)
        if settings is not None:
            return settings.mode
        return "runit" if svc.defn.has_log else "inherit"

    def is_log(self, slot: Slot) -> bool:
        return slot is not slot.service.run

    def counters(self) -> dict[str, Any]:
        return {
            "wakeups": self.m.loop.wakeups,
            "rescans": self.m.rescans,
            "rescan_pending": self.m.rescan_timer is not None,
            "orphans_reaped": self.m.init.reaper.strays,
        }

    def command(self, slot: Slot, letters: str) -> None:
        for letter in letters:
            self.m.command(slot, letter)
        svc = slot.service
        if svc.run.machine.removed and svc.run.machine.is_down():
            self.m.forget(svc)

    def instantiate(self, name: str) -> Optional[str]:
        return self.m.instantiate(name)

    def run_job(self, name: str) -> Optional[str]:
        return self.m.run_job(name)

    def scale(self, group: str, count: int) -> None:
        self.m.scale(group, count)

    def reload(self) -> None:
        self.m.reload()

    def request_exit(self, code: int) -> None:
        self.m.init.request_exit(code)

    def log_tail(self, name: str, count: int) -> Optional[list[bytes]]:
        svc = self.m.services.get(name)
        return svc.capture.tail(count) if svc and svc.capture else None

    def log_history(self, name: str, count: int) -> Optional[list[tuple[int, bytes]]]:
        svc = self.m.services.get(name)
        return svc.capture.ring.history(count) if svc and svc.capture else None

    def follow_log(self, name: str, send: Callable[[bytes], None]) -> Callable[[], None]:
        svc = self.m.services[name]
        assert svc.capture is not None
        svc.capture.followers.append(send)

        def stop() -> None:  # the capture may have been replaced (it keeps its followers)
            if svc.capture is not None and send in svc.capture.followers:
                svc.capture.followers.remove(send)

        return stop

    def file_log(self, name: str) -> bool:
        svc = self.m.services.get(name)
        return bool(svc and svc.capture and svc.capture.file is not None)

    def rotate_log(self, name: str) -> None:
        svc = self.m.services.get(name)
        if svc is not None and svc.capture is not None:
            svc.capture.rotate()

    def subscribe(self, changed: Callable[[Slot], None]) -> None:
        self.m.on_change.append(changed)
