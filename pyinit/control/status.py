"""Finding what a control request names, and its status records.

A request names a service by name, `name/log`, or path (as `sv` users type it);
a group's name (a counted service, a template; core/instances.py) stands for all
of its instances. Records are built by core/views.py from the services' views.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

from pyinit.core import instances
from pyinit.core.svstatus import healthy
from pyinit.core.views import process_record, service_record
from pyinit.services.api import Handle, Services


class Status:
    def __init__(self, services: Services, clock: Callable[[], float]) -> None:
        self.services = services
        self.clock = clock  # the loop's

    def resolve(self, arg: str) -> Optional[Handle]:
        """The slot a service's name, `name/log`, or path names; None if none."""
        if "\0" in arg:
            return None  # no path holds a NUL (and os.path would raise)
        text = arg.rstrip("/")
        is_log = text.endswith("/log")
        base = text[: -len("/log")] if is_log else text
        name: Optional[str] = base if self.services.slot(base) is not None else None
        if name is None and "/" in base:  # instances share a dir: their own entry's path only
            name = self.by_path(base)
        if name is None and is_log and self.services.slot(arg) is not None:
            name, is_log = arg, False
        return None if name is None else self.services.slot(name, log=is_log)

    def by_path(self, path: str) -> Optional[str]:
        real, wanted = os.path.realpath(path), os.path.abspath(path)
        for name, directory, instance in self.services.dirs():
            own = os.path.basename(directory) == name  # not a counted/on-demand one
            if (own and os.path.abspath(directory) == wanted) or (
                instance is None and os.path.realpath(directory) == real
            ):
                return name
        return None

    def members(self, name: str) -> Optional[list[Handle]]:
        """The runs of a group's instances (by the group's name or the path of its
        directory), or None when name is no group."""
        if "/" in name and "\0" not in name:
            group = os.path.basename(name.rstrip("/"))
            path = self.services.scanned_path(group)
            if path is not None and os.path.abspath(path) == os.path.abspath(name):
                name = group
        if self.services.slot(name) is not None:
            return None
        names = self.services.group(name)
        if names is None:
            return None
        runs = (self.services.slot(n) for n in names)
        return [run for run in runs if run is not None]

    def all_runs(self) -> list[Handle]:
        """Every service's run, in name order (NAME@2 before NAME@10)."""
        names = sorted(self.services.names(), key=instances.sort_key)
        runs = (self.services.slot(n) for n in names)
        return [run for run in runs if run is not None]

    def record(self, slot: Handle, loop_clock: bool = False) -> dict[str, Any]:
        """slot's status record: a service's for its run, a process's for a logger.
        With loop_clock, `since` is on the loop's clock (to compare with it)."""
        view, now = self.services.view(slot), self.clock()
        process = view.log if self.services.is_log(slot) and view.log else None
        if process is not None:
            rec = process_record(process, now, time.time())
        else:
            rec = service_record(view, now, time.time())
        if loop_clock:
            rec["since"] = (process or view.run).since
        return rec

    def status(self, names: list[str]) -> list[dict[str, Any]]:
        """`status`: every service (no names), or those named, groups expanded."""
        if not names:
            return [self.record(run) for run in self.all_runs()]
        out = []
        for name in names:
            found = self.resolve(name)
            members = self.members(name) if found is None else None
            if members is not None:
                out.extend({**self.record(run), "expanded": True} for run in members)
            elif found is None:
                out.append({"name": name, "missing": True})
            elif self.services.is_log(found):
                rec = self.record(found)
                rec.update(
                    name=f"{self.services.view(found).name}/log",
                    normally_up=True,
                    log=None,
                    error=None,
                )
                out.append(rec)
            else:
                out.append(self.record(found))
        return out

    def all_ready(self) -> bool:
        """/readyz: every service passes what `svctl check` asks (svstatus.healthy)."""
        return all(healthy(self.record(run)) for run in self.all_runs())
