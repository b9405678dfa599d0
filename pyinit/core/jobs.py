"""A scheduled job's decisions: when it is due, what a due time or `svctl run` does
while a run is still going (the overlap rule), and the record of its last run.

Pure, like machine.py: the shell (services/scheduler.py) passes the wall-clock time
(epoch seconds), whether a run is going, and a random fraction for the jitter; it
executes what comes back (RUN, STOP_AND_RUN) by sending the service's machine
events, and arms one wall-clock timer for the earliest `fire_at` of all jobs.

Rules:
- A cron job is due at cron.next_run; an interval (`every`) job first one
  interval after it is added, then every interval after the time it was due
  (no drift), skipping the times already past (a suspended host runs it once).
- Each due time gets its own jitter: it fires at due + jitter * fraction. The
  delay is always less than the time to the following due time (a cron job's
  `jitter` longer than a gap between its times is cut to that gap; schema.py
  refuses an `every` job's jitter of an interval or more), so no due time is lost.
- Paused (`svctl down`, or a `down` file when the job is first seen): no due
  time; resume (`svctl up`) plans from now, an interval job one interval ahead.
- When it fires (or on `svctl run`) and no run is going: RUN. While one is
  going: `skip` does nothing (counted, the shell logs it); `queue` keeps one
  pending run (never more) that starts when the current one ends; `replace`
  stops the current run (STOP_AND_RUN) and starts a new one when it has ended.
- The wall clock was set (a jump either way): every job's due time is computed
  again from now; an interval job keeps its due time unless it now lies more
  than an interval ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Optional

from pyinit.core import cron

RUN, STOP_AND_RUN, SKIPPED, QUEUED, NOTHING = "run", "stop-and-run", "skipped", "queued", ""
OVERLAPS = ("skip", "queue", "replace")


@dataclass(frozen=True)
class LastRun:
    """How the last run went (wall-clock times)."""

    start: float
    end: Optional[float] = None  # None while it runs
    code: Optional[int] = None
    signal: Optional[int] = None
    timed_out: bool = False
    stopped: bool = False  # by `svctl down` (or exit): the schedule was paused

    @property
    def result(self) -> str:
        if self.end is None:
            return "running"
        if self.timed_out:
            return "timeout"
        if self.stopped:
            return "stopped"
        return "success" if self.code == 0 and self.signal is None else "failure"


@dataclass
class Job:
    schedule: cron.Schedule
    tz: tzinfo
    overlap: str = "skip"
    jitter: float = 0.0
    paused: bool = False  # svctl down (or a `down` file): no scheduled runs; svctl run works
    due: Optional[float] = None  # the next due time (wall clock), before jitter
    fire_at: Optional[float] = None  # due plus this run's jitter
    pending: bool = False  # queue and replace: a run waits for the current one
    runs: int = 0
    skipped: int = 0
    last: Optional[LastRun] = None

    def plan(self, now: float, fraction: float = 0.0) -> None:
        """The next due time after now (and the jitter for it)."""
        if self.paused:
            self.due = self.fire_at = None
            return
        if isinstance(self.schedule, cron.Every):
            step = self.schedule.seconds
            if self.due is None:
                due = now + step
            else:
                due = self.due + step
                if due <= now:  # behind (a suspended host, a clock jump): the next one
                    due += ((now - due) // step + 1) * step
        else:
            due = cron.next_run(self.schedule, self.tz, now)
        self.due = due
        self.fire_at = None if due is None else due + self.delay(due) * fraction

    def delay(self, due: float) -> float:
        """The most this due time may be delayed: the jitter, cut to less than the
        time to the following due time (a cron job's gaps vary: `0,5 * * * *`)."""
        if self.jitter <= 0 or isinstance(self.schedule, cron.Every):
            return self.jitter
        following = cron.next_run(self.schedule, self.tz, due)
        return self.jitter if following is None else min(self.jitter, following - due)

    def pause(self) -> None:
        """`svctl down`: no due time, and no run queued."""
        self.paused, self.pending = True, False
        self.due = self.fire_at = None

    def resume(self, now: float, fraction: float = 0.0) -> None:
        """`svctl up`: due again, from now (no run now)."""
        if self.paused:
            self.paused = False
            self.due = None
            self.plan(now, fraction)

    def clock_set(self, now: float, fraction: float = 0.0) -> None:
        """The wall clock jumped: due again from now."""
        if isinstance(self.schedule, cron.Every) and self.due is not None:
            if self.due - now <= self.schedule.seconds:
                return  # still within an interval (a due time now past fires at once)
            self.due = None
        self.plan(now, fraction)

    def fire(self, now: float, running: bool, fraction: float = 0.0) -> str:
        """The timer reached fire_at: what to do, and plan the next one."""
        self.plan(max(now, self.due or now), fraction)
        return self.request(running)

    def request(self, running: bool) -> str:
        """A run is asked for (due, or `svctl run`): RUN, STOP_AND_RUN, SKIPPED, QUEUED
        or NOTHING (one is queued already)."""
        if not running:
            return RUN
        if self.overlap == "skip":
            self.skipped += 1
            return SKIPPED
        if self.pending:
            return NOTHING
        self.pending = True
        return STOP_AND_RUN if self.overlap == "replace" else QUEUED

    def started(self, now: float) -> None:
        self.runs += 1
        self.last = LastRun(start=now)

    def ended(
        self,
        now: float,
        code: Optional[int],
        signum: Optional[int],
        timed_out: bool = False,
        stopped: bool = False,
    ) -> str:
        """The run (and its finish) ended: RUN if one is pending, else NOTHING."""
        start = self.last.start if self.last else now
        self.last = LastRun(start, now, code, signum, timed_out, stopped)
        if self.pending:
            self.pending = False
            return RUN
        return NOTHING

    def view(self) -> dict[str, object]:
        """The fields status records carry (wall-clock times)."""
        last = self.last
        return {
            "schedule": self.schedule.text,
            "next_run": self.fire_at,
            "paused": self.paused,
            "overlap": self.overlap,
            "runs": self.runs,
            "skipped": self.skipped,
            "pending": self.pending,
            "last_run": None
            if last is None
            else {
                "start": last.start,
                "end": last.end,
                "exit_code": last.code,
                "signal": last.signal,
                "result": last.result,
            },
        }


def earliest(jobs: list[Job]) -> Optional[float]:
    """The one time the shell's timer is armed for."""
    times = [j.fire_at for j in jobs if j.fire_at is not None]
    return min(times) if times else None
