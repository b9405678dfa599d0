"""The dir watcher: inotify on the service dirs, their parents and each service's
dir and log/, debounced into one rescan (the caller's callback).

No inotify (out of watches, a kernel without it): one warning, and changes
are picked up by `svctl reload` (or SIGHUP) instead.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Optional

from pyinit.linux.inotify import (
    IN_CREATE,
    IN_IGNORED,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Inotify,
)
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop, Timer
from pyinit.services.host import Options
from pyinit.services.records import Table
from pyinit.services.servicedir import change_matters

RESCAN_DELAY = 0.1  # debounce inotify bursts (mkdir + write run + chmod)


class DirWatcher:
    def __init__(
        self, loop: EventLoop, options: Options, table: Table, rescan: Callable[[], None]
    ) -> None:
        self.loop = loop
        self.options = options
        self.table = table
        self.rescan = rescan
        self.inotify: Optional[Inotify] = None
        # watch descriptor -> "parent", "base", "service" or "log"
        self.watches: dict[int, str] = {}
        self.parent_names: dict[int, set[str]] = {}  # parent wd -> service dir names in it
        self.timer: Optional[Timer] = None  # a rescan is pending

    def start(self) -> None:
        try:
            self.inotify = Inotify()
        except OSError as exc:
            log.warning(f"cannot watch service dirs ({exc}); use svctl reload after changes")
            return
        self.loop.add_reader(self.inotify.fd, self.on_change)

    def schedule(self, delay: float) -> None:
        """A rescan in delay seconds, unless one is pending or services are stopping."""
        if self.timer is None and not self.table.shutting_down:
            self.timer = self.loop.call_later(delay, self.fire)

    def fire(self) -> None:
        self.timer = None
        self.rescan()

    def on_change(self) -> None:
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
        if matters:
            self.schedule(RESCAN_DELAY)

    def watch_found(self, paths: Iterable[str]) -> None:
        """After a scan: watch every service dir found, and where more may appear."""
        if self.inotify is None:
            return
        paths = list(paths)
        self.watch_parents()
        self.watch(self.options.service_dirs, "base")
        self.watch(paths, "service")
        self.watch([os.path.join(p, "log") for p in paths], "log")

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
        for base in self.options.service_dirs:
            parent, name = os.path.split(os.path.abspath(base))
            wd = self.inotify.watch(parent, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR)
            if wd >= 0:
                self.watches[wd] = "parent"
                self.parent_names.setdefault(wd, set()).add(name)
