"""The supervision state machine of one process slot (a service's `run`, or its logger).

Everything that decides what happens to a supervised process lives here, as
pure code: events come in with the current time ("run exited with 1 at
t=12.3", "svctl down", "the timer fired") and actions come out ("start run",
"run finish 1 0", "TERM the process group", "wake me at t=12.4"). The I/O shell
(services.py) executes the actions and feeds the results back. No processes
are needed to test a transition.

States follow runit's `sv status`: DOWN, RUN, FINISH. `want` is 'u' or 'd' as
in runsv; `once` sets want down and starts the service if it is down.

Rules:
- A `run` that exits while wanted up is restarted after its `finish` (if any).
  If it lived less than MIN_UPTIME the restart waits `backoff` seconds, which
  doubles up to BACKOFF_MAX; uptime of BACKOFF_RESET or more resets it. An
  exit after a stop or TERM that svctl asked for restarts at once.
- Stopping sends the stop signal then SIGCONT to the process (as runit and
  s6 do), and SIGKILLs its whole process group after kill_timeout.
- A logger (term_grace > 0) is stopped by closing its pipe first, so it drains
  what is left and exits on EOF; it is signalled only after term_grace.
- `finish` gets finish_timeout, then SIGKILL; it can never wedge supervision.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import Optional, Union

from pyinit.reaper import ExitStatus

DOWN, RUN, FINISH = "down", "run", "finish"
MIN_UPTIME = 1.0
BACKOFF_INITIAL = 0.1
BACKOFF_FACTOR = 2.0
BACKOFF_MAX = 10.0
BACKOFF_RESET = 10.0

# svctl command letters (runit's), and the signal each one sends to `run`.
LETTER_SIGNALS = {
    "p": signal.SIGSTOP,
    "c": signal.SIGCONT,
    "h": signal.SIGHUP,
    "a": signal.SIGALRM,
    "i": signal.SIGINT,
    "q": signal.SIGQUIT,
    "1": signal.SIGUSR1,
    "2": signal.SIGUSR2,
    "t": signal.SIGTERM,
    "k": signal.SIGKILL,
}
LETTERS = frozenset("udox") | frozenset(LETTER_SIGNALS)


# --- actions -------------------------------------------------------------------
@dataclass(frozen=True)
class Start:
    """Start `run` (finish_args is None) or `finish` with the given arguments."""

    finish_args: Optional[tuple[str, str]] = None


@dataclass(frozen=True)
class Signal:
    """Send signum to the process (group=False) or its whole process group."""

    signum: int
    group: bool = True


@dataclass(frozen=True)
class ClosePipe:
    """Close pyinit's write end of the log pipe, so the logger sees EOF."""


Action = Union[Start, Signal, ClosePipe]


@dataclass
class Policy:
    kill_timeout: float = 5.0
    finish_timeout: float = 5.0
    stop_signal: int = signal.SIGTERM
    term_grace: float = 0.0  # loggers: wait this long for EOF before signalling
    has_finish: bool = False


@dataclass
class Machine:
    """One supervised process slot. Times are monotonic seconds."""

    policy: Policy = field(default_factory=Policy)
    state: str = DOWN
    want: str = "u"
    pid: Optional[int] = None
    since: float = 0.0
    started_at: Optional[float] = None
    paused: bool = False
    got_term: bool = False
    removed: bool = False  # the service left the service dir (or got `exit`)
    restarts: int = 0
    last_exit: Optional[ExitStatus] = None
    backoff: float = BACKOFF_INITIAL
    delay: float = 0.0  # the wait before the pending restart
    start_at: Optional[float] = None  # a delayed restart is pending
    term_at: Optional[float] = None  # a logger's graceful stop: signal at this time
    kill_at: Optional[float] = None  # SIGKILL the run group (or finish) at this time

    # --- queries -------------------------------------------------------------
    def deadline(self) -> Optional[float]:
        """The earliest time this machine needs a tick(), or None."""
        times = [t for t in (self.start_at, self.term_at, self.kill_at) if t is not None]
        return min(times) if times else None

    def is_down(self) -> bool:
        return self.state == DOWN and self.start_at is None

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.since)

    # --- events --------------------------------------------------------------
    def boot(self, now: float, normally_up: bool) -> list[Action]:
        """First sight of the service: start it unless it has a `down` file."""
        self.since = now
        self.want = "u" if normally_up else "d"
        return self._start(now) if normally_up else []

    def command(self, letter: str, now: float) -> list[Action]:
        """An svctl letter: u d o x, or a signal letter (see LETTER_SIGNALS)."""
        if letter == "u":
            self.want = "u"
            self.removed = False
            if self.state == DOWN:
                self.start_at = None
                return self._start(now)
            return []
        if letter in "dx":
            self.want = "d"
            self.removed = self.removed or letter == "x"
            self.start_at = None
            return self._stop(now)
        if letter == "o":
            self.want = "d"
            if self.state == DOWN:  # down, or waiting out a backoff: start it now
                self.start_at = None
                return self._start(now)
            return []
        return self._signal(LETTER_SIGNALS[letter])

    def hold(self) -> None:
        """Do not start or restart (the service dir became unusable); a running
        process is left alone until it exits."""
        self.want = "d"
        self.start_at = None

    def spawned(self, pid: int, now: float) -> None:
        """The shell started the process asked for by the last Start."""
        self.pid = pid
        self.since = now
        if self.state == RUN:
            self.started_at = now

    def spawn_failed(self, now: float, status: ExitStatus) -> list[Action]:
        """The shell could not start it (e.g. `run` vanished): like an instant exit."""
        self.pid = -1
        return self.exited(status, now)

    def exited(self, status: ExitStatus, now: float) -> list[Action]:
        """The process in this slot (run or finish) was reaped."""
        if self.state == RUN:
            return self._run_exited(status, now)
        if self.state == FINISH:
            return self._after_finish(now)
        return []

    def tick(self, now: float) -> list[Action]:
        """A timer fired: do whatever is due."""
        actions: list[Action] = []
        if self.start_at is not None and now >= self.start_at:
            self.start_at = None
            if self.want == "u" and self.state == DOWN:
                actions += self._start(now)
        if self.term_at is not None and now >= self.term_at:
            self.term_at = None
            actions += self._send_stop(now)
        if self.kill_at is not None and now >= self.kill_at:
            self.kill_at = None
            if self.pid is not None and self.pid > 0:
                actions.append(Signal(signal.SIGKILL, group=self.state == RUN))
        return actions

    # --- transitions -----------------------------------------------------------
    def _start(self, now: float) -> list[Action]:
        self.state = RUN
        self.pid = None
        self.since = now
        self.paused = False
        self.got_term = False
        return [Start()]

    def _stop(self, now: float) -> list[Action]:
        if self.state != RUN or self.pid is None:
            return []
        if self.kill_at is not None or self.term_at is not None:
            return []  # already stopping (got_term alone may come from `svctl term`)
        self.got_term = True
        if self.policy.term_grace > 0:
            self.term_at = now + self.policy.term_grace
            return [ClosePipe()]
        return self._send_stop(now)

    def _send_stop(self, now: float) -> list[Action]:
        if self.state != RUN:
            return []
        self.paused = False
        self.kill_at = now + self.policy.kill_timeout
        return [Signal(self.policy.stop_signal, group=False), Signal(signal.SIGCONT, group=False)]

    def _signal(self, signum: int) -> list[Action]:
        if self.state != RUN or self.pid is None:
            return []
        if signum == signal.SIGSTOP:
            self.paused = True
        elif signum == signal.SIGCONT:
            self.paused = False
        elif signum == signal.SIGTERM:
            self.got_term = True
        return [Signal(signum, group=False)]

    def _run_exited(self, status: ExitStatus, now: float) -> list[Action]:
        uptime = now - (self.started_at if self.started_at is not None else now)
        self.last_exit = status
        self.kill_at = None
        self.term_at = None
        asked_to_stop = self.got_term or self.want == "d"
        self.paused = False
        self.got_term = False
        self.started_at = None
        if asked_to_stop:
            self.delay = 0.0  # a stop someone asked for is not a crash
        elif uptime < MIN_UPTIME:
            self.delay = self.backoff
            self.backoff = min(self.backoff * BACKOFF_FACTOR, BACKOFF_MAX)
        else:
            self.delay = 0.0
            if uptime >= BACKOFF_RESET:
                self.backoff = BACKOFF_INITIAL
        if self.policy.has_finish:
            self.state = FINISH
            self.pid = None
            self.since = now
            self.kill_at = now + self.policy.finish_timeout
            return [Start(finish_args=finish_args(status))]
        return self._after_finish(now)

    def _after_finish(self, now: float) -> list[Action]:
        self.state = DOWN
        self.pid = None
        self.since = now
        self.kill_at = None
        if self.want != "u" or self.removed:
            return []
        self.restarts += 1
        if self.delay > 0:
            self.start_at = now + self.delay
            return []
        return self._start(now)


def finish_args(status: ExitStatus) -> tuple[str, str]:
    """runit's arguments to `finish`: exit code (-1 if signalled), signal (0 if exited)."""
    if status.signal is not None:
        return ("-1", str(status.signal))
    return (str(status.code), "0")
