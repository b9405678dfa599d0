"""The end of a process, from PID 1's side: a stop signal, a grace period cut to the
shutdown budget, SIGKILL, and the wait for the killed process to be reaped; and
kill-all's TERM and CONT to every process left, a wait, then KILL.

Every wait is `loop.run_until`, so reaping and signal handling go on meanwhile.
The budget belongs to the caller (boot): `remaining(wanted)` cuts a wait to it.
"""

from __future__ import annotations

import os
import signal
from typing import Callable

from pyinit.linux import proctree, signals
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop
from pyinit.runtime.reaper import Reaper

REAP_AFTER_KILL = 5.0  # the most a SIGKILLed process is waited for (stuck in the kernel?)

Remaining = Callable[[float], float]  # wanted seconds -> what the budget leaves of them


def stop_signal_to(pid: int, signum: int) -> None:
    """A stop signal, then SIGCONT, so a stopped process acts on it (as sv does)."""
    signals.kill_quietly(pid, signum)
    signals.kill_quietly(pid, signal.SIGCONT)


class Endgame:
    """Killing for good, within the shutdown budget, while the loop keeps reaping."""

    def __init__(
        self, loop: EventLoop, reaper: Reaper, remaining: Remaining, is_pid1: bool
    ) -> None:
        self.loop = loop
        self.reaper = reaper
        self.remaining = remaining
        self.is_pid1 = is_pid1

    def finish(
        self, pid: int, done: Callable[[], bool], grace: float, what: str, warn: bool = False
    ) -> None:
        """Wait grace seconds (cut to the budget) for done(); then SIGKILL pid (with a
        warning when warn) and wait for it to be reaped."""
        if self.loop.run_until(done, self.remaining(grace)):
            return
        if warn:
            log.warning(f"{what} still running: sending SIGKILL")
        signals.kill_quietly(pid, signal.SIGKILL)
        self.reap_after_kill(done, what)

    def reap_after_kill(self, reaped: Callable[[], bool], what: str) -> None:
        """Wait for a SIGKILLed process to be reaped: what is left of the budget, at most
        REAP_AFTER_KILL, at least 1 s. One that is not (stuck in the kernel, held by a
        tracer) is left behind with one warning: reaped later, or at exit."""
        wait = max(self.remaining(REAP_AFTER_KILL), 1.0)
        if not self.loop.run_until(reaped, wait):
            log.warning(
                f"{what} not reaped {wait:g}s after SIGKILL (stuck in the kernel?): "
                "going on without it"
            )

    def kill_all(self, grace: float) -> None:
        """TERM (and CONT) every process left, wait grace (cut to the budget), then
        KILL, reaping throughout."""
        self.reaper.reap()
        if not self.leftovers():
            return
        log.debug("sending SIGTERM to all remaining processes")
        self.signal_all(signal.SIGTERM)
        self.signal_all(signal.SIGCONT)
        if self.loop.run_until(lambda: not self.leftovers(), self.remaining(grace)):
            return
        log.warning("processes still running after SIGTERM: sending SIGKILL")
        self.signal_all(signal.SIGKILL)
        if not self.loop.run_until(
            lambda: not self.leftovers(), max(self.remaining(REAP_AFTER_KILL), 1.0)
        ):
            log.warning("some processes did not die after SIGKILL (stuck in the kernel?)")

    def leftovers(self) -> bool:
        """Any process left to wait for: a child (as PID 1, orphans are children too),
        or, as a subreaper, a descendant not yet reparented to pyinit."""
        if self.is_pid1:
            return self.reaper.has_children
        return bool(
            self.reaper.has_children or proctree.descendants(proctree.parent_map(), os.getpid())
        )

    def signal_all(self, signum: int) -> None:
        """Every process (PID 1: kill(-1)), else every descendant of pyinit."""
        if self.is_pid1:
            signals.kill_quietly(-1, signum)
            return
        for pid in proctree.descendants(proctree.parent_map(), os.getpid()):
            signals.kill_quietly(pid, signum)
