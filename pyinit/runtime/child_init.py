"""The single-child init of the tini and dumb-init personalities, read top to bottom.

One child, in its own process group (the terminal's foreground group when
there is a terminal): every forwardable signal is passed on (to the group with
`group`), every zombie is reaped, and the run ends as soon as the child
exits, with its exit code or 128+signal (remapped to 0 when listed in
`expect`). Same loop, signalfd, reaper and spawn as pyinit itself; no startup
scripts, services, control socket or kill-all.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Callable, Optional

from pyinit.core import signames
from pyinit.core.exits import ExitStatus
from pyinit.linux import prctl, signals
from pyinit.runtime import spawn
from pyinit.runtime.loop import EventLoop
from pyinit.runtime.reaper import Reaper

Say = Callable[[int, str], None]  # (level, text): the personality's message format
FATAL, WARN, INFO, DEBUG, TRACE = 0, 1, 2, 3, 4
NOT_FORWARDED_HERE = frozenset({signal.SIGTTIN, signal.SIGTTOU})  # tini ignores these


@dataclass
class Options:
    argv: list[str]
    say: Say
    subreaper: bool = False
    pdeathsig: Optional[int] = None
    group: bool = False  # signal the child's process group, not just the child
    warn_reaped: bool = False  # a warning for each zombie other than the child
    expect: frozenset[int] = field(default_factory=frozenset)  # exit codes reported as 0
    not_reaping_warning: str = ""


def run(opts: Options, inherited: signals.Inherited) -> int:
    """Spawn the child, forward and reap until it exits; returns the exit code."""
    loop, reaper = EventLoop(), Reaper()
    fd = signals.SignalFd(signames.handled())
    become_reaper(opts)
    if opts.pdeathsig is not None:
        prctl.set_pdeathsig(opts.pdeathsig)
    try:
        child = spawn.spawn(spawn.Spec(opts.argv, pgroup=True, foreground=True), inherited)
    except spawn.SpawnError as exc:
        reason = "No such file or directory" if exc.exit_code == spawn.NOT_FOUND else (
            "Permission denied")
        opts.say(FATAL, f"exec {opts.argv[0]} failed: {reason}")
        return exc.exit_code
    opts.say(INFO, f"Spawned child process '{opts.argv[0]}' with pid '{child}'")
    spawn.leave_cwd()  # the child started in the original cwd
    ended: list[ExitStatus] = []

    def on_child(pid: int, status: ExitStatus) -> None:
        opts.say(DEBUG, f"Reaped child with pid: '{pid}'")
        how = (f"normally (with status '{status.code}')" if status.signal is None
               else f"with signal '{status.signal}'")
        opts.say(INFO, f"Main child exited {how}")
        ended.append(status)

    def on_stray(pid: int, _status: ExitStatus) -> None:
        if opts.warn_reaped:
            opts.say(WARN, f"Reaped zombie process with pid={pid}")
        else:
            opts.say(DEBUG, f"Reaped child with pid: '{pid}'")

    def on_signals() -> None:
        for got in fd.read():
            if got.signum == signal.SIGCHLD:
                opts.say(DEBUG, "Received SIGCHLD")
            elif got.signum not in NOT_FORWARDED_HERE and not ended:
                opts.say(DEBUG, f"Passing signal: '{signal.strsignal(got.signum)}'")
                _kill(-child if opts.group else child, got.signum)
        reaper.reap()

    reaper.watch(child, on_child)
    reaper.on_stray = on_stray
    loop.add_reader(fd.fd, on_signals)
    reaper.reap()
    loop.run_until(lambda: bool(ended))
    reaper.reap()  # zombies that are already there
    opts.say(TRACE, "Exiting: child has exited")
    code = ended[0].shell_code
    return 0 if code in opts.expect else code


def become_reaper(opts: Options) -> None:
    if os.getpid() == 1:
        return
    if opts.subreaper:
        try:
            prctl.set_child_subreaper(True)
            opts.say(TRACE, "Registered as child subreaper")
            return
        except OSError as exc:
            opts.say(WARN, f"Failed to register as child subreaper: {exc.strerror}")
    try:
        inherited_bit = prctl.get_child_subreaper()
    except OSError:
        inherited_bit = False
    if not inherited_bit and opts.not_reaping_warning:
        opts.say(WARN, opts.not_reaping_warning)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
