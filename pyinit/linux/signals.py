"""The signal state pyinit inherited, and the signalfd it reads its signals from.

pyinit blocks every signal it handles and reads them from a signalfd, like tini's
sigtimedwait but without a timeout tick: the event loop wakes only when a signal
arrives. The signalfd also reports who sent each signal, so a SIGPIPE that
pyinit's own write caused is not mistaken for one to forward. Which signals
those are, and their names, is pure: core/signames.py.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct
from dataclasses import dataclass

from pyinit.core import signames
from pyinit.linux.libc import libc

# Python ignores these at start-up, so what pyinit inherited cannot be known;
# like subprocess (restore_signals=True) children get the default back.
PYTHON_IGNORED = frozenset({signal.SIGPIPE, signal.SIGXFSZ})
# The mask pyinit was started with, when its entry point (pyinit.entry) blocked
# the handled signals before anything else: Inherited.capture() reports it.
started_with: frozenset[int] | None = None


@dataclass(frozen=True)
class Inherited:
    """The signal state pyinit was started with, to hand on to children unchanged."""

    mask: frozenset[int]
    ignored: frozenset[int]

    @classmethod
    def capture(cls) -> Inherited:
        if started_with is not None:
            mask = started_with
        else:
            mask = frozenset(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
        ignored = frozenset(
            int(s)
            for s in signal.valid_signals()
            if s not in PYTHON_IGNORED
            and s not in (signal.SIGKILL, signal.SIGSTOP)
            and signal.getsignal(s) == signal.SIG_IGN
        )
        return cls(mask, ignored)

    def restore_in_child(self) -> None:
        """In a forked child before exec: dispositions, then the mask, as inherited."""
        for signum in signames.handled() + list(PYTHON_IGNORED) + [int(signal.SIGINT)]:
            if signum in (signal.SIGKILL, signal.SIGSTOP):
                continue
            try:
                signal.signal(signum, signal.SIG_IGN if signum in self.ignored else signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)


# struct signalfd_siginfo starts with: u32 signo, s32 errno, s32 code, u32 pid, u32 uid.
_SIGINFO = struct.Struct("=IiiII")
_SIGINFO_SIZE = 128
SI_USER = 0


@dataclass(frozen=True)
class Received:
    """One signal read from the signalfd."""

    signum: int
    code: int
    pid: int
    uid: int


def block(signums: list[int]) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, signums)


def kill_quietly(pid: int, signum: int, group: bool = False) -> None:
    """kill(2) (killpg with group), ignoring a process already gone or not pyinit's
    to signal: the one place pyinit signals a process and does not care whether it
    was still there."""
    try:
        if group:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


class SignalFd:
    """Blocks the handled signals and exposes them as one readable, non-blocking fd."""

    def __init__(self, signums: list[int]) -> None:
        lib = libc()
        sigset = ctypes.create_string_buffer(128)
        lib.sigemptyset(sigset)
        for s in signums:
            lib.sigaddset(sigset, s)
        block(signums)
        fd = lib.signalfd(-1, sigset, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"signalfd: {os.strerror(err)}")
        self.fd: int = fd

    def read(self) -> list[Received]:
        """Everything pending now; never blocks."""
        out: list[Received] = []
        while True:
            try:
                data = os.read(self.fd, _SIGINFO_SIZE * 32)
            except BlockingIOError:
                return out
            if not data:
                return out
            for off in range(0, len(data) - _SIGINFO_SIZE + 1, _SIGINFO_SIZE):
                signo, _errno, code, pid, uid = _SIGINFO.unpack_from(data, off)
                out.append(Received(signo, code, pid, uid))

    def close(self) -> None:
        os.close(self.fd)
