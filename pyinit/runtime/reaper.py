"""Reaping: drain waitpid(-1) on every SIGCHLD and route each status to its owner.

Processes pyinit started register a callback; anything else (adopted orphans)
is a stray and is only counted.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

from pyinit.core.exits import ExitStatus

OnExit = Callable[[int, ExitStatus], None]


class Reaper:
    def __init__(self) -> None:
        self._owners: dict[int, OnExit] = {}
        self.strays = 0
        self.has_children = True
        self.on_stray: Optional[OnExit] = None  # called for each adopted orphan reaped

    def watch(self, pid: int, on_exit: OnExit) -> None:
        """Call on_exit(pid, status) when pid is reaped."""
        self._owners[pid] = on_exit
        self.has_children = True

    def owned(self) -> set[int]:
        return set(self._owners)

    def reap(self) -> int:
        """Collect every exited child now; returns how many. Never blocks."""
        count = 0
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.has_children = False
                return count
            except InterruptedError:
                continue
            if pid == 0:
                self.has_children = True
                return count
            count += 1
            owner = self._owners.pop(pid, None)
            if owner is None:
                self.strays += 1
                owner = self.on_stray
            if owner is None:
                continue
            try:
                owner(pid, ExitStatus.decode(status))
            except Exception:
                from pyinit.runtime import log

                log.bug(f"exit handler for pid {pid}")
