"""child_init's forwarding, shared by the tini and dumb-init personalities, with a fake
signalfd and kill and a recording voice, running no process: rewrites, dropped
signals, the process group, ignore-once, pyinit stopping itself, SIGTERM when the
child exits, and nothing forwarded after that."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from pyinit.linux import signals
from pyinit.runtime import child_init, spawn
from pyinit.runtime.reaper import ExitStatus

CHILD = 4242
USR1, USR2, TERM, HUP = (
    int(s) for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGHUP)
)
TSTP, STOP = int(signal.SIGTSTP), int(signal.SIGSTOP)


class Recorder:
    """A Voice that notes each call."""

    def __init__(self) -> None:
        self.said: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        def note(*args: Any, **kw: Any) -> int:
            self.said.append((name, *args, *kw.values()))
            return 0

        return note


class FakeSignalFd:
    def __init__(self, signums: list[int]) -> None:
        self.fd = -1
        self.pending: list[signals.Received] = []

    def read(self) -> list[signals.Received]:
        out, self.pending = self.pending, []
        return out


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(signals, "SignalFd", FakeSignalFd)
    monkeypatch.setattr(signals, "kill_quietly", lambda pid, signum: sent.append((pid, signum)))
    return sent


def make(**options: Any) -> tuple[child_init.ChildInit, Recorder]:
    voice = Recorder()
    opts = child_init.Options(spec=spawn.Spec(["child"]), signals=[], **options)
    return child_init.ChildInit(opts, voice, CHILD), voice


def receive(init: child_init.ChildInit, *signums: int) -> None:
    fd = init.signalfd
    assert isinstance(fd, FakeSignalFd)
    fd.pending = [signals.Received(s, 0, 1, 0) for s in signums]
    init.on_signals()


def test_rewritten_dropped_and_passed_on_to_the_group(kills: list) -> None:
    init, voice = make(group=True, rewrite={USR1: USR2, TERM: 0})
    receive(init, USR1, TERM, HUP)
    assert kills == [(-CHILD, USR2), (-CHILD, HUP)]
    assert ("dropped", TERM) in voice.said


def test_to_the_child_alone_without_group(kills: list) -> None:
    init, _ = make()
    receive(init, HUP)
    assert kills == [(CHILD, HUP)]


def test_ignore_once_ignores_the_first_only(kills: list) -> None:
    init, voice = make(ignore_once={HUP})
    receive(init, HUP, HUP)
    assert kills == [(CHILD, HUP)]
    assert voice.said.count(("ignored", HUP)) == 1


def test_a_suspending_signal_stops_pyinit_after_passing_it_on(kills: list) -> None:
    init, _ = make(rewrite={TSTP: STOP}, suspend_on=frozenset({TSTP}))
    receive(init, TSTP)
    assert kills == [(CHILD, STOP), (os.getpid(), STOP)]


def test_the_childs_exit_sends_sigterm_then_nothing_more_is_forwarded(kills: list) -> None:
    init, voice = make(group=True, term_on_exit=True)
    init.on_child(CHILD, ExitStatus(code=3))
    assert kills == [(-CHILD, TERM)]
    assert [s[0] for s in voice.said] == ["reaped", "passing", "child_ended"]
    receive(init, USR1)
    assert kills == [(-CHILD, TERM)]  # exiting: the rest is not handled


def test_without_term_on_exit_the_exit_sends_nothing(kills: list) -> None:
    init, _ = make()
    init.on_child(CHILD, ExitStatus(signal=9))
    assert kills == [] and init.ended == [ExitStatus(signal=9)]
