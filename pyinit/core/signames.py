"""Signal names and the tables of which signals pyinit forwards (pure, stdlib only).

`name` and `parse` turn numbers into SIGTERM / SIGRTMIN+3 and back; `forwardable`
and `handled` say which signals pyinit passes on to the main command and which
it reads from its signalfd (linux/signals.py keeps the signalfd and the masks).
"""

from __future__ import annotations

import signal

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
