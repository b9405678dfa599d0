"""The single-child init of the tini and dumb-init personalities, read top to bottom.

One child: every signal received is passed on (rewritten first, and to the child's
whole process group with `group`), every zombie is reaped, and the run ends as soon
as the child exits. Same loop, signalfd, reaper and spawn as pyinit itself; no
startup scripts, services, control socket or kill-all.

What differs between the two tools is data (`Options`: how the child starts, which
signals are rewritten, dropped or stop pyinit too) and what they say (`Voice`: each
tool's own messages, and the exit code it makes of the child's status).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from typing import Mapping, Protocol, Sequence

from pyinit.core.exits import ExitStatus
from pyinit.linux import signals
from pyinit.runtime import spawn
from pyinit.runtime.loop import EventLoop
from pyinit.runtime.reaper import Reaper


class Voice(Protocol):
    """A personality's messages at each step, and its exit code."""

    def spawn_failed(self, argv0: str, exc: spawn.SpawnError) -> int: ...
    def spawned(self, argv0: str, pid: int) -> None: ...
    def received(self, signum: int) -> None: ...
    def ignored(self, signum: int) -> None: ...  # a signal in `ignore_once`
    def dropped(self, signum: int) -> None: ...  # rewritten to 0: not passed on
    def passing(self, signum: int, target: int) -> None: ...  # signum goes on as target
    def suspending(self) -> None: ...
    def reaped(self, pid: int, status: ExitStatus, child: bool) -> None: ...
    def child_ended(self, status: ExitStatus) -> None: ...
    def exit_code(self, status: ExitStatus) -> int: ...


@dataclass
class Options:
    spec: spawn.Spec  # how the child starts (its own group or session, the terminal)
    signals: Sequence[int]  # read from a signalfd; the caller has blocked them
    group: bool = False  # signal the child's process group, not just the child
    rewrite: Mapping[int, int] = field(default_factory=dict)  # received -> sent; 0: dropped
    suspend_on: frozenset[int] = frozenset()  # after passing these on, pyinit stops too
    ignore_once: set[int] = field(default_factory=set)  # the first of each is ignored
    term_on_exit: bool = False  # SIGTERM (rewritten) to the child's group when it exits
    drain_at_exit: bool = False  # reap the zombies already there before exiting


def run(opts: Options, voice: Voice, inherited: signals.Inherited) -> int:
    """Spawn the child, forward and reap until it exits; returns the exit code."""
    argv0 = opts.spec.argv[0]
    try:
        child = spawn.spawn(opts.spec, inherited)
    except spawn.SpawnError as exc:
        return voice.spawn_failed(argv0, exc)
    voice.spawned(argv0, child)
    spawn.leave_cwd()  # the child started in the original cwd; pyinit keeps no hold on it
    return ChildInit(opts, voice, child).wait()


def why(exc: spawn.SpawnError) -> str:
    """The failed exec's reason, as both tools print it (their errno's text)."""
    return (
        "No such file or directory" if exc.exit_code == spawn.NOT_FOUND else ("Permission denied")
    )


class ChildInit:
    """The loop around one running child."""

    def __init__(self, opts: Options, voice: Voice, child: int) -> None:
        self.opts, self.voice, self.child = opts, voice, child
        self.loop, self.reaper = EventLoop(), Reaper()
        self.signalfd = signals.SignalFd(list(opts.signals))
        self.ended: list[ExitStatus] = []

    def wait(self) -> int:
        self.reaper.watch(self.child, self.on_child)
        self.reaper.on_stray = self.on_stray
        self.loop.add_reader(self.signalfd.fd, self.on_signals)
        self.loop.run_until(lambda: bool(self.ended))
        if self.opts.drain_at_exit:
            self.reaper.reap()  # zombies that are already there
        return self.voice.exit_code(self.ended[0])

    def on_signals(self) -> None:
        for got in self.signalfd.read():
            if self.ended:
                return  # exiting: the rest is not handled
            signum = got.signum
            self.voice.received(signum)
            if signum in self.opts.ignore_once:
                self.voice.ignored(signum)
                self.opts.ignore_once.discard(signum)
            elif signum == signal.SIGCHLD:
                self.reaper.reap()
            else:
                self.forward(signum)
                if signum in self.opts.suspend_on:
                    self.voice.suspending()
                    signals.kill_quietly(os.getpid(), signal.SIGSTOP)

    def forward(self, signum: int) -> None:
        target = self.opts.rewrite.get(signum, signum)
        if target == 0:
            self.voice.dropped(signum)
            return
        self.voice.passing(signum, target)
        signals.kill_quietly(-self.child if self.opts.group else self.child, target)

    def on_child(self, pid: int, status: ExitStatus) -> None:
        self.voice.reaped(pid, status, child=True)
        if self.opts.term_on_exit:
            self.forward(int(signal.SIGTERM))
        self.voice.child_ended(status)
        self.ended.append(status)

    def on_stray(self, pid: int, status: ExitStatus) -> None:
        self.voice.reaped(pid, status, child=False)
