"""Boot and shutdown scripts: finding them (the executable files of a directory, in
lexical order) and running one to completion inside the event loop.

A script starts in pyinit's start directory, but only if that path still leads to
the same directory (Origin); else in "/". While it runs the loop keeps reaping and
forwarding. It is stopped (SIGTERM, the kill timeout, SIGKILL) when pyinit is told
to stop meanwhile, or when its own timeout runs out (shutdown scripts).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Callable, Optional

from pyinit.core.exits import ExitStatus
from pyinit.linux.signals import Inherited
from pyinit.runtime import log, spawn
from pyinit.runtime.endgame import Endgame, stop_signal_to
from pyinit.runtime.loop import EventLoop
from pyinit.runtime.reaper import Reaper


def is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def executables(directory: str) -> list[str]:
    """The executable files of directory in lexical order; others are noted and skipped."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning(f"cannot read {directory}: {exc.strerror}; skipping it")
        return []
    out = []
    for name in names:
        path = os.path.join(directory, name)
        if is_executable(path):
            out.append(path)
        elif os.path.isfile(path):
            log.info(f"skipping {path}: not executable")
    return out


@dataclass(frozen=True)
class Origin:
    """pyinit's working directory at start: its path and identity."""

    path: str
    dev: int
    ino: int

    @classmethod
    def capture(cls) -> Optional[Origin]:
        """The cwd, or None when it has no path (deleted, or not reachable from our
        root)."""
        try:
            path = os.getcwd()
            st = os.stat(".")
        except OSError:
            return None
        return cls(path, st.st_dev, st.st_ino)

    def enter(self) -> None:
        """In a script's child: chdir to the start cwd by its path, but only if the
        path still leads to that same directory (device and inode, checked after the
        chdir, so a swapped-in symlink cannot steer root's script); else stay in "/"."""
        try:
            os.chdir(self.path)
            here = os.stat(".")
            if (here.st_dev, here.st_ino) == (self.dev, self.ino):
                return
        except OSError:
            pass
        os.chdir("/")


class ScriptRunner:
    """Runs one script at a time to completion, in the loop."""

    def __init__(
        self,
        loop: EventLoop,
        reaper: Reaper,
        inherited: Inherited,
        endgame: Endgame,
        stopping: Callable[[], bool],
        kill_timeout: float,
        origin: Optional[Origin],
    ) -> None:
        self.loop = loop
        self.reaper = reaper
        self.inherited = inherited
        self.endgame = endgame
        self.stopping = stopping  # pyinit was told to stop: a boot script is stopped too
        self.kill_timeout = kill_timeout
        self.origin = origin

    def run(self, path: str, timeout: float | None) -> ExitStatus | None:
        """Run one script and wait for it. None if pyinit was told to stop meanwhile,
        or timeout passed (the script is then stopped: SIGTERM, kill timeout, SIGKILL)."""
        done: list[ExitStatus] = []
        enter = self.origin.enter if self.origin is not None else None
        try:
            pid = spawn.spawn(spawn.Spec([path], pre_exec=enter), self.inherited)
        except spawn.SpawnError as exc:
            log.error(str(exc))
            return ExitStatus(code=exc.exit_code)
        self.reaper.watch(pid, lambda _pid, status: done.append(status))
        stop_waiting: Callable[[], bool]
        if timeout is None:
            stop_waiting = lambda: bool(done) or self.stopping()  # noqa: E731
        else:
            stop_waiting = lambda: bool(done)  # noqa: E731
        self.loop.run_until(stop_waiting, timeout)
        if done:
            return done[0]
        if timeout is not None:
            log.warning(f"{path} still running after {timeout:g}s: stopping it")
        stop_signal_to(pid, signal.SIGTERM)
        self.endgame.finish(pid, lambda: bool(done), self.kill_timeout, f"{path} (pid {pid})")
        return None

    def run_dir(self, directory: str, stage: str, remaining: Callable[[float], float]) -> None:
        """A shutdown stage: each script of directory gets the kill timeout, cut to what
        is left of the budget; failures are warnings, and none stops the shutdown."""
        for path in executables(directory):
            timeout = remaining(self.kill_timeout)
            if timeout <= 0:
                log.warning(f"no shutdown time left: skipping {stage} script {path}")
                continue
            log.info(f"running {stage} script {path}")
            status = self.run(path, timeout=timeout)
            if status is not None and status.shell_code != 0:
                log.warning(f"{stage} script {path} failed with {status.describe()}")
