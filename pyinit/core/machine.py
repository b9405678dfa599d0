"""The supervision state machine of one process slot (a service's `run`, or its logger).

Everything that decides what happens to a supervised process lives here, as
pure code: events come in with the current time ("run exited with 1 at
t=12.3", "svctl down", "the timer fired") and actions come out ("start run",
"run finish 1 0", "TERM the process group", "wake me at t=12.4"). The I/O shell
(services/runner.py) executes the actions and feeds the results back. No processes
are needed to test a transition.

States follow runit's `sv status`: DOWN, RUN, FINISH, plus SETUP (nitro's):
`setup` runs before `run`. `want` is 'u' or 'd' as in runsv; `once` sets want
down and starts the service if it is down.

Rules:
- A `run` that exits while wanted up is restarted after its `finish` (if any),
  as the restart policy says: `always`, `on-failure` (an exit code outside
  success_codes, or a signal) or `never`. If it lived less than MIN_UPTIME
  the restart waits `backoff` seconds, multiplied by backoff_factor up to
  backoff_max; uptime of BACKOFF_RESET or more resets it. An exit after a stop
  or TERM that svctl asked for restarts at once and is no failure.
- More than max_restarts restarts within restart_window: the service is
  `failed` (supervisord's FATAL) and stays down until `svctl up`. A service
  the policy does not restart gets an `outcome` ("done", "exited", "failed"),
  which the shell acts on (essential services end the container).
- A oneshot that exits with a success code is done and ready, and stays down.
- `unhealthy` (readiness timed out, liveness failed) stops the process; its
  exit then counts as a failure.
- Stopping sends the stop signal then SIGCONT to the process, or its group
  with stop_group (runit and s6 signal the process), and SIGKILLs the whole
  process group (kill_group) or just the process after kill_timeout.
- A logger (term_grace > 0) is stopped by closing its pipe first, so it drains
  what is left and exits on EOF; it is signalled only after term_grace.
- `finish` gets finish_timeout, then SIGKILL; it can never wedge supervision.
- With has_setup, each start runs `setup` first; `run` starts once it exits 0.
  A setup that fails, or is still running after setup_timeout (then SIGKILLed
  with its group), is a failed start: no `finish`, the restart policy and
  backoff apply. A stop during setup TERMs it (SIGKILL after kill_timeout) and
  `run` is not started.
- The shell changes a machine only through these events and methods, never by
  writing its fields: configure() (new settings), set_gate(), set_has_finish(),
  retire(), hold(), stopping(limit) and abandon() among them.
- Shutdown is a stage the shell moves every machine through, in this order:
  `stopping(limit)` when services are being stopped: from then on the machine starts
  nothing but the `finish` of a `run` that exited (runit runs it on every stop):
  a pending restart or gated start is dropped, a running `setup` is not followed
  by `run`, an exit is never restarted, `unhealthy` is ignored (the stop is
  coming anyway) and no readiness or liveness check may start (may_probe).
  `abandon()` when kill-all begins: the machine starts nothing at all and goes
  DOWN for good itself; whatever still runs is left to kill-all.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field, replace
from typing import Optional, Union

from pyinit.core.exits import ExitStatus
from pyinit.core.svstatus import MIN_UPTIME

DOWN, RUN, FINISH, SETUP = "down", "run", "finish", "setup"
# shutdown stages, in order: normal supervision, services being stopped, kill-all
LIVE, STOPPING, FROZEN = "live", "stopping", "frozen"
BACKOFF_INITIAL = 0.1
BACKOFF_FACTOR = 2.0
BACKOFF_MAX = 10.0
BACKOFF_RESET = 10.0
SETUP_TIMEOUT = 60.0  # setup's limit when the service has no ready.start_timeout
# the restart and stop defaults: schema.ServiceConfig (service.yaml) takes them from here
RESTART = "always"
SUCCESS_CODES = (0,)
MAX_RESTARTS = 0  # 0: no limit
RESTART_WINDOW = 60.0
KILL_TIMEOUT = 5.0
FINISH_TIMEOUT = 5.0

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
    """Start `run` (finish_args is None), `finish` with the given arguments, or `setup`."""

    finish_args: Optional[tuple[str, str]] = None
    setup: bool = False


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
    kill_timeout: float = KILL_TIMEOUT
    finish_timeout: float = FINISH_TIMEOUT
    stop_signal: int = signal.SIGTERM
    stop_group: bool = False
    kill_group: bool = True
    term_grace: float = 0.0  # loggers: wait this long for EOF before signalling
    has_finish: bool = False
    has_setup: bool = False
    setup_timeout: float = SETUP_TIMEOUT
    restart: str = RESTART  # always, on-failure, never
    success_codes: tuple[int, ...] = SUCCESS_CODES
    oneshot: bool = False
    backoff_initial: float = BACKOFF_INITIAL
    backoff_factor: float = BACKOFF_FACTOR
    backoff_max: float = BACKOFF_MAX
    max_restarts: int = MAX_RESTARTS  # 0: no limit
    restart_window: float = RESTART_WINDOW

    def succeeded(self, status: ExitStatus) -> bool:
        return status.signal is None and status.code in self.success_codes


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
    exited_at: Optional[float] = None  # when last_exit happened
    backoff: float = -1.0  # set from the policy
    ready: bool = False  # up and ready (or a oneshot that is done)
    ever_ready: bool = False  # ready at least once since boot (or `svctl up`)
    outcome: Optional[str] = None  # not restarted by policy: done, exited or failed
    failed: Optional[str] = None  # why it is `failed` (shown by svctl status)
    unhealthy: Optional[str] = None  # stopping because a probe failed
    restart_times: list[float] = field(default_factory=list)
    gated: bool = False  # kept current by the shell: dependencies not ready yet
    waiting: bool = False  # wanted up, held back by the gate
    delay: float = 0.0  # the wait before the pending restart
    start_at: Optional[float] = None  # a delayed restart is pending
    term_at: Optional[float] = None  # a logger's graceful stop: signal at this time
    kill_at: Optional[float] = None  # SIGKILL the run group (or finish, setup) at this time
    run_after_setup: bool = False  # the running setup is followed by run
    stage: str = LIVE  # LIVE, STOPPING or FROZEN: set by stopping() and abandon()
    limit: Optional[float] = None  # at shutdown: the most kill_timeout and finish_timeout get

    def __post_init__(self) -> None:
        if self.backoff < 0:
            self.backoff = self.policy.backoff_initial

    # --- queries -------------------------------------------------------------
    def deadline(self) -> Optional[float]:
        """The earliest time this machine needs a tick(), or None."""
        times = [t for t in (self.start_at, self.term_at, self.kill_at) if t is not None]
        return min(times) if times else None

    def is_down(self) -> bool:
        return self.state == DOWN and self.start_at is None and not self.waiting

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.since)

    def may_probe(self) -> bool:
        """A readiness or liveness check of the running `run` may start now."""
        return self.stage == LIVE and self.state == RUN and self.pid is not None

    # --- events --------------------------------------------------------------
    def boot(self, now: float, normally_up: bool) -> list[Action]:
        """First sight of the service: start it unless it has a `down` file."""
        self.since = now
        self.want = "u" if normally_up else "d"
        return self._start(now) if normally_up else []

    def command(self, letter: str, now: float) -> list[Action]:
        """An svctl letter: u d o x, or a signal letter (see LETTER_SIGNALS)."""
        if letter in "uo":
            self.forget_outcome()
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
            self.waiting = False
            return self._stop(now)
        if letter == "o":
            self.want = "d"
            if self.state == DOWN:  # down, or waiting out a backoff: start it now
                self.start_at = None
                return self._start(now)
            return []
        return self._signal(LETTER_SIGNALS[letter])

    def forget_outcome(self) -> None:
        """`svctl up` or `once`: a failed or finished service gets a fresh start."""
        if self.outcome is not None or self.failed is not None:
            self.outcome = self.failed = None
            self.restart_times.clear()
            self.backoff = self.policy.backoff_initial
        if self.state == DOWN and self.ready:
            self.ready = False  # a oneshot runs again

    def became_ready(self) -> None:
        """The shell saw the readiness signal of the running process."""
        if self.state == RUN and self.pid is not None:
            self.ready = self.ever_ready = True

    def set_unhealthy(self, reason: str, now: float) -> list[Action]:
        """A readiness timeout or failed liveness: stop it; the exit is a failure."""
        if self.state != RUN or self.pid is None or self.unhealthy is not None:
            return []
        if self.want == "d" or self.got_term or self.stage != LIVE:
            return []  # already stopping on request, or at shutdown: no failure
        self.unhealthy = reason
        return self._stop(now)

    def fail(self, reason: str, now: float) -> list[Action]:
        """Failed for good from outside (a `requires` target failed): stop, stay down
        until `svctl up`."""
        self.failed, self.outcome = reason, "failed"
        return self.command("d", now)

    def hold(self) -> None:
        """Do not start or restart (the service dir became unusable); a running
        process is left alone until it exits."""
        self.want = "d"
        self.start_at = None
        self.waiting = False
        self.run_after_setup = False

    def stopping(self, limit: Optional[float] = None) -> None:
        """Services are being stopped (shutdown): from now on only the `finish` of a
        `run` that exits starts; nothing is restarted. Each stop itself still comes
        as command("d"), in dependency order. With a limit, no kill or finish waits
        longer than that (the shutdown budget), also after a later configure()."""
        if self.stage == LIVE:
            self.stage = STOPPING
        if limit is not None:
            self.limit = limit if self.limit is None else min(self.limit, limit)
            _cap(self.policy, self.limit)
        self.start_at = None
        self.waiting = False
        self.run_after_setup = False

    def abandon(self, now: float) -> None:
        """Kill-all has begun: start nothing ever again, and be down for good now.
        Any process still running is left to kill-all; its exit changes nothing."""
        self.stage = FROZEN
        self.hold()
        self.removed = True
        self.state = DOWN
        self.pid = self.started_at = self.unhealthy = None
        self.paused = self.got_term = False
        self.since = now
        self.term_at = self.kill_at = None

    def configure(self, policy: Policy) -> None:
        """New restart and stop settings, from the next event on; what the shell learnt
        (has_finish, a logger's term_grace) stays, and the shutdown limit still caps."""
        policy = replace(policy, has_finish=self.policy.has_finish,
                         term_grace=self.policy.term_grace)
        self.policy = _cap(policy, self.limit)

    def set_has_finish(self, has_finish: bool) -> None:
        """Whether a `finish` runs after `run` exits (the shell looks just before)."""
        self.policy.has_finish = has_finish

    def set_gate(self, closed: bool) -> None:
        """The dependencies are not ready (closed) or are (open); release() then
        starts a service that waited."""
        self.gated = closed

    def retire(self, now: float, grace: Optional[float] = None) -> list[Action]:
        """Stop for good (the service left, or its logger goes after it): `svctl exit`.
        A grace makes it a logger's stop: close its pipe, signal only after grace."""
        if grace is not None:
            self.policy.term_grace = grace
        return self.command("x", now)

    def release(self, now: float) -> list[Action]:
        """The gate opened: start a service that waited for its dependencies."""
        if not self.waiting or self.gated:
            return []
        self.waiting = False  # waiting: wanted up, or `once` (want down, start it once)
        return self._start(now) if self.state == DOWN else []

    def spawned(self, pid: int, now: float) -> None:
        """The shell started the process asked for by the last Start."""
        self.pid = pid
        self.since = now
        if self.state == RUN:
            self.started_at = now
        elif self.state == SETUP:
            self.kill_at = now + self.policy.setup_timeout

    def spawn_failed(self, now: float, status: ExitStatus) -> list[Action]:
        """The shell could not start it (e.g. `run` vanished): like an instant exit."""
        self.pid = -1
        return self.exited(status, now)

    def exited(self, status: ExitStatus, now: float) -> list[Action]:
        """The process in this slot (run or finish) was reaped."""
        if self.state == RUN:
            return self._run_exited(status, now)
        if self.state == SETUP:
            return self._setup_exited(status, now)
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
            if self.state == SETUP and not self.got_term:
                self.unhealthy = f"did not exit within {self.policy.setup_timeout:g}s"
            if self.pid is not None and self.pid > 0:
                group = self.state == SETUP or (self.state == RUN and self.policy.kill_group)
                actions.append(Signal(signal.SIGKILL, group=group))
        return actions

    # --- transitions -----------------------------------------------------------
    def _start(self, now: float) -> list[Action]:
        if self.stage != LIVE:
            return []  # shutdown: nothing but a `finish` starts
        if self.gated:
            self.waiting = True
            return []
        self.state = SETUP if self.policy.has_setup else RUN
        self.run_after_setup = self.policy.has_setup
        self.pid = None
        self.since = now
        self.paused = False
        self.got_term = False
        self.ready = False
        self.unhealthy = None
        return [Start(setup=self.policy.has_setup)]

    def _stop(self, now: float) -> list[Action]:
        if self.state == SETUP:
            return self._stop_setup(now)
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
        group = self.policy.stop_group
        return [Signal(self.policy.stop_signal, group=group), Signal(signal.SIGCONT, group=group)]

    def _stop_setup(self, now: float) -> list[Action]:
        """Stop during setup: run will not follow; TERM the setup (not the stop signal,
        which is for the service's program)."""
        self.run_after_setup = False
        if self.pid is None or self.pid <= 0 or (self.got_term and self.kill_at is not None):
            return []  # already stopping
        self.got_term = True
        self.kill_at = min(self.kill_at or now + self.policy.kill_timeout,
                           now + self.policy.kill_timeout)
        return [Signal(signal.SIGTERM, group=True), Signal(signal.SIGCONT, group=True)]

    def _setup_exited(self, status: ExitStatus, now: float) -> list[Action]:
        self.kill_at = None
        self.pid = None
        self.since = now
        succeeded = status.signal is None and status.code == 0 and self.unhealthy is None
        if not self.run_after_setup:  # stopped (or put on hold) meanwhile
            self.got_term = False
            self.delay = 0.0
        elif succeeded:
            self.state = RUN
            self.run_after_setup = False
            return [Start()]
        else:  # a failed start
            self.last_exit, self.exited_at = status, now
            reason = self.unhealthy or f"exited with {status.describe()}"
            self._plan_restart(False, 0.0, now, what=f"setup {reason}")
        self.run_after_setup = False
        self.unhealthy = None
        return self._after_finish(now)

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
        self.last_exit, self.exited_at = status, now
        self.kill_at = None
        self.term_at = None
        asked_to_stop = (self.got_term or self.want == "d") and self.unhealthy is None
        succeeded = self.policy.succeeded(status) and self.unhealthy is None
        self.paused = False
        self.got_term = False
        self.started_at = None
        self.ready = False
        self.unhealthy = None
        if self.policy.oneshot and succeeded:  # also when run by `once` (want down)
            self.want, self.outcome, self.delay = "d", "done", 0.0
            self.ready = self.ever_ready = True
        elif asked_to_stop:
            self.delay = 0.0  # a stop someone asked for is not a crash
        else:
            self._plan_restart(succeeded, uptime, now)
        if self.policy.has_finish:
            self.state = FINISH
            self.pid = None
            self.since = now
            self.kill_at = now + self.policy.finish_timeout
            return [Start(finish_args=finish_args(status))]
        return self._after_finish(now)

    def _plan_restart(self, succeeded: bool, uptime: float, now: float,
                      what: Optional[str] = None) -> None:
        """After an exit nobody asked for: the restart policy, limit and backoff."""
        why = what or f"exited with {self.last_exit.describe() if self.last_exit else '?'}"
        plan = plan_restart(self.policy, self.backoff, self.restart_times, succeeded, uptime,
                            now, why)
        self.delay, self.backoff, self.restart_times = plan.delay, plan.backoff, plan.times
        if plan.outcome is not None:
            self.want, self.outcome = "d", plan.outcome
            self.failed = plan.failed or self.failed

    def _after_finish(self, now: float) -> list[Action]:
        self.state = DOWN
        self.pid = None
        self.since = now
        self.kill_at = None
        if self.want != "u" or self.removed or self.stage != LIVE:
            return []
        self.restarts += 1
        if self.delay > 0:
            self.start_at = now + self.delay
            return []
        return self._start(now)


@dataclass(frozen=True)
class Restart:
    """What the restart policy says after an exit nobody asked for."""

    delay: float  # before the restart (0: at once)
    backoff: float  # the delay the next short run will get
    times: list[float]  # the restarts within the window, this one included
    outcome: Optional[str] = None  # not restarted: "exited" or "failed"
    failed: Optional[str] = None  # why it failed


def plan_restart(policy: Policy, backoff: float, times: list[float], succeeded: bool,
                 uptime: float, now: float, why: str) -> Restart:
    """The restart policy (restart, max_restarts in restart_window, backoff), pure."""
    if policy.restart == "never" or (succeeded and policy.restart == "on-failure"):
        return Restart(0.0, backoff, times, "exited" if succeeded else "failed",
                       None if succeeded else why)
    if policy.max_restarts:
        times = [t for t in times if now - t < policy.restart_window]
        if len(times) >= policy.max_restarts:
            n = len(times)
            return Restart(0.0, backoff, times, "failed", f"{n} restart{'s' if n != 1 else ''} "
                           f"within {policy.restart_window:g}s; svctl up to retry")
        times = times + [now]
    if uptime < MIN_UPTIME:
        return Restart(backoff, min(backoff * policy.backoff_factor, policy.backoff_max), times)
    if uptime >= BACKOFF_RESET:
        backoff = policy.backoff_initial
    return Restart(0.0, backoff, times)


def _cap(policy: Policy, limit: Optional[float]) -> Policy:
    """policy with no kill or finish wait longer than limit (changed in place)."""
    if limit is not None:
        policy.kill_timeout = min(policy.kill_timeout, limit)
        policy.finish_timeout = min(policy.finish_timeout, limit)
    return policy


def finish_args(status: ExitStatus) -> tuple[str, str]:
    """runit's arguments to `finish`: exit code (-1 if signalled), signal (0 if exited)."""
    if status.signal is not None:
        return ("-1", str(status.signal))
    return (str(status.code), "0")
