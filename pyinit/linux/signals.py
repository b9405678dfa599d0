"""Which signals pyinit forwards, what it inherited, and the signalfd it reads them from.

pyinit blocks every signal it handles and reads them from a signalfd, like tini's
sigtimedwait but without a timeout tick: the event loop wakes only when a signal
arrives. The signalfd also reports who sent each signal, so a SIGPIPE that
pyinit's own write caused is not mistaken for one to forward.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct
from dataclasses import dataclass

from pyinit.linux.libc import libc

# Synchronous faults are about pyinit itself; SIGKILL/SIGSTOP cannot be caught.
NOT_FORWARDED = frozenset(
    {
        signal.SIGCHLD,
        signal.SIGKILL,
        signal.SIGSTOP,
        signal.SIGSEGV,
        signal.SIGBUS,
        signal.SIGILL,
        signal.SIGFPE,
        signal.SIGABRT,
        signal.SIGTRAP,
        signal.SIGSYS,
    }
)
SHUTDOWN_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
# Python ignores these at start-up, so what pyinit inherited cannot be known;
# like subprocess (restore_signals=True) children get the default back.
PYTHON_IGNORED = frozenset({signal.SIGPIPE, signal.SIGXFSZ})
# The mask pyinit was started with, when its entry point (pyinit.entry) blocked
# the handled signals before anything else: Inherited.capture() reports it.
started_with: frozenset[int] | None = None


def forwardable() -> list[int]:
    """Every signal pyinit passes on to the main command, in number order."""
    return sorted(int(s) for s in signal.valid_signals() if s not in NOT_FORWARDED)


def handled() -> list[int]:
    """Every signal pyinit blocks and reads from its signalfd."""
    return sorted(forwardable() + [int(signal.SIGCHLD)])


def name(signum: int) -> str:
    """SIGTERM, SIGRTMIN+3, or the number when it has no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        pass
    rtmin, rtmax = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
    if rtmin < signum <= rtmax:
        return f"SIGRTMIN+{signum - rtmin}"
    return str(signum)


def parse(text: str) -> int:
    """A signal from 'TERM', 'SIGTERM', 'term', '15' or 'RTMIN+2' (ASCII only: 'ıNT'
    is not INT); ValueError, one line with the text cut, otherwise."""
    from pyinit.core.bounds import render, small_number

    t = text.strip().upper() if text.isascii() else ""
    if t.isdigit():
        num = small_number(t, signal.NSIG - 1)
        if num is not None and num in {int(s) for s in signal.valid_signals()}:
            return num
        raise ValueError(f"no signal number {render(text)}")
    if t and not t.startswith("SIG"):
        t = "SIG" + t
    if t.startswith("SIGRTMIN+"):
        offset = small_number(t[9:], int(signal.SIGRTMAX) - int(signal.SIGRTMIN))
        if offset is not None:
            return int(signal.SIGRTMIN) + offset
    try:
        return int(signal.Signals[t])
    except KeyError:
        raise ValueError(f"unknown signal {render(text)}") from None


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
        for signum in handled() + list(PYTHON_IGNORED) + [int(signal.SIGINT)]:
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
