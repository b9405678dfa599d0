"""Scheduled jobs: the shell around core/jobs.py.

Imported only when some service.yaml has `schedule:` or `every:`. One wall-clock
timerfd (linux/timerfd.py) is armed for the earliest next run of all jobs, so
pyinit sleeps between runs; a setting of the clock cancels it (ECANCELED) and
every job's next run is computed again. Daylight saving time is no clock set: the
next run is an instant computed in the job's time zone (core/cron.py).

A run is the service's machine sent `once` (command "o"): its user, environment,
limits, log mode and `finish` as any oneshot's, never restarted. A run's timeout
sends `down` (the stop signal, the kill grace, SIGKILL). The end of a run (after
its finish) comes from the manager's exited hook.

Control letters to a job (svctl, sv, supervise/control: `command`): `u` resumes the
schedule (no run now), `d` and `x` pause it and stop a run in progress as `down`
does, `o` is a run under the overlap rule as `svctl run`; signal letters go to the
current run. A `down` file pauses a job when it is first seen, as it keeps any
service down at its start; later it only changes what is normal.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Callable, Optional

from pyinit.core import jobs
from pyinit.core.machine import RUN
from pyinit.linux.timerfd import CLOCK_SET, FIRED, WallTimer
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop, Timer
from pyinit.services.records import Service, Slot

Apply = Callable[[Slot, list], None]
EARLY = 0.001  # a timer may report its expiry this much before time.time() reaches it


@dataclass
class Entry:
    """A job and the service it runs."""

    job: jobs.Job
    svc: Service
    timeout: Optional[Timer] = None  # the running run's limit
    timed_out: bool = False
    stopped: bool = False  # the running run was stopped by `svctl down` or `exit`
    key: tuple = ()  # what the job was made from: a change makes it again


class Scheduler:
    def __init__(
        self,
        loop: EventLoop,
        apply: Apply,
        shutting_down: Callable[[], bool],
        wall: Callable[[], float] = time.time,
        new_timer: Callable[[], Any] = WallTimer,
    ) -> None:
        self.loop = loop
        self.apply = apply
        self.shutting_down = shutting_down
        self.wall = wall
        self.new_timer = new_timer
        self.timer: Any = None  # the WallTimer, made with the first job
        self.entries: dict[str, Entry] = {}
        self.clock_sets = 0

    # --- jobs come and go --------------------------------------------------------------
    def sync(self, svc: Service) -> None:
        """svc is a job (added, or its definition changed)."""
        c = svc.config
        key = (c.schedule, c.timezone, c.overlap, c.jitter)
        entry = self.entries.get(svc.name)
        if entry is not None and entry.key == key:
            entry.svc = svc
            return
        paused = not svc.defn.normally_up if entry is None else entry.job.paused
        job = jobs.Job(c.schedule, zone(c.timezone), c.overlap, c.jitter, paused=paused)
        if entry is not None:  # keep its history
            job.runs, job.skipped, job.last = entry.job.runs, entry.job.skipped, entry.job.last
            job.pending = entry.job.pending
        first = entry is None
        entry = self.entries[svc.name] = Entry(
            job,
            svc,
            entry.timeout if entry else None,
            entry.timed_out if entry else False,
            entry.stopped if entry else False,
            key=key,
        )
        job.plan(self.wall(), self.fraction(job))
        if first and c.on_start == "run" and not paused and not self.shutting_down():
            self.start(entry, "at start (on_start: run)")
        self.rearm()

    def remove(self, name: str) -> None:
        entry = self.entries.pop(name, None)
        if entry is not None and entry.timeout is not None:
            entry.timeout.cancel()
        self.rearm()

    def view(self, name: str) -> Optional[dict[str, Any]]:
        entry = self.entries.get(name)
        return None if entry is None else entry.job.view()

    # --- control letters ------------------------------------------------------------------
    def command(self, slot: Slot, letter: str) -> bool:
        """A control letter for slot (svctl, sv, supervise/control): True if this took it
        (u, o of a job's run); d and x pause the job and return False, so that the
        machine then stops the run as for any service; anything else is not for here."""
        entry = self.entries.get(slot.service.name)
        if entry is None or entry.svc.run is not slot or letter not in "udox":
            return False
        if letter == "o":
            self.ask(entry, "on request (once)")
            return True
        if letter == "u":
            if entry.job.paused:
                entry.job.resume(self.wall(), self.fraction(entry.job))
                log.info("schedule resumed", entry.svc.name)
                self.rearm()
            return True
        self.pause(entry)
        return False

    def pause(self, entry: Entry) -> None:
        """`svctl down` (or `exit`): no more runs until `svctl up`; a run in progress is
        stopped by the caller (the machine's `d`: the stop signal, stop_timeout, KILL)."""
        if not entry.job.paused:
            log.info("schedule paused", entry.svc.name)
        entry.job.pause()
        if entry.timeout is not None:  # the stop has its own limit now
            entry.timeout.cancel()
            entry.timeout = None
        last, machine = entry.job.last, entry.svc.run.machine
        if last is not None and last.end is None and machine.state == RUN and machine.pid:
            entry.stopped = True  # (a run that exited already, its finish going, was not)
        self.rearm()

    # --- runs ----------------------------------------------------------------------------
    def run_now(self, name: str) -> Optional[str]:
        """`svctl run NAME`: a run now, under the overlap rule; what happened."""
        entry = self.entries.get(name)
        if entry is None:
            return None
        return self.ask(entry, "on request (svctl run)")

    def ask(self, entry: Entry, why: str) -> str:
        running = not entry.svc.run.machine.is_down()
        decision = entry.job.request(running)
        self.act(entry, decision, why)
        return decision

    def act(self, entry: Entry, decision: str, why: str) -> None:
        name = entry.svc.name
        if decision == jobs.RUN:
            self.start(entry, why)
        elif decision == jobs.SKIPPED:
            log.info(f"still running: skipping the run {why} (overlap: skip)", name)
        elif decision == jobs.QUEUED:
            log.info(f"still running: the run {why} waits for it (overlap: queue)", name)
        elif decision == jobs.STOP_AND_RUN:
            log.info(f"still running: stopping it for the run {why} (overlap: replace)", name)
            run = entry.svc.run
            self.apply(run, run.machine.command("d", self.loop.clock()))

    def start(self, entry: Entry, why: str) -> None:
        run = entry.svc.run
        if self.shutting_down() or entry.svc.defn.error:
            return
        self.apply(run, run.machine.command("o", self.loop.clock()))
        if run.machine.is_down():
            return  # it could not start (the machine said so); logged by the runner
        log.info(f"run started {why}", entry.svc.name)
        entry.job.started(self.wall())
        entry.timed_out = entry.stopped = False
        limit = entry.svc.config.timeout
        if limit is not None:
            name, runs = entry.svc.name, entry.job.runs
            entry.timeout = self.loop.call_later(limit, lambda: self.time_out(name, runs, limit))

    def time_out(self, name: str, runs: int, limit: float) -> None:
        entry = self.entries.get(name)  # by name: a changed service.yaml makes a new Entry
        if entry is None:
            return
        entry.timeout = None
        run = entry.svc.run
        if entry.job.runs != runs or run.machine.is_down():
            return
        log.warning(f"run timed out after {limit:g}s: stopping it", entry.svc.name)
        entry.timed_out = True
        self.apply(run, run.machine.command("d", self.loop.clock()))

    def exited(self, slot: Slot) -> None:
        """A process of some service exited (the manager's hook): a job's run ended?"""
        entry = self.entries.get(slot.service.name)
        if entry is None or slot is not entry.svc.run or not slot.machine.is_down():
            return
        last = entry.job.last
        if last is None or last.end is not None:
            return
        if entry.timeout is not None:
            entry.timeout.cancel()
            entry.timeout = None
        status = slot.machine.last_exit
        code = status.code if status else None
        signum = status.signal if status else None
        decision = entry.job.ended(self.wall(), code, signum, entry.timed_out, entry.stopped)
        if entry.job.last is not None and entry.job.last.result == "failure" and status:
            log.warning(f"run failed: {status.describe()}", entry.svc.name)
        self.act(entry, decision, "that waited")

    # --- the wall-clock timer ---------------------------------------------------------------
    def rearm(self) -> None:
        when = jobs.earliest([e.job for e in self.entries.values()])
        if self.timer is None:
            if when is None:
                return
            self.timer = self.new_timer()
            self.loop.add_reader(self.timer.fd, self.on_timer)
        if when is None:
            self.timer.disarm()
        else:
            self.timer.arm(when)

    def on_timer(self) -> None:
        what = self.timer.read()
        now = self.wall()
        if what == CLOCK_SET:
            self.clock_set(now)
        elif what == FIRED:
            self.fire(now)
        self.rearm()

    def fire(self, now: float) -> None:
        for entry in list(self.entries.values()):
            job = entry.job
            if job.fire_at is None or job.fire_at > now + EARLY:
                continue
            due = job.due
            running = not entry.svc.run.machine.is_down()
            decision = job.fire(now, running, self.fraction(job))
            if self.shutting_down():
                continue
            self.act(entry, decision, f"due at {_clock(due, job.tz)}")

    def clock_set(self, now: float) -> None:
        """The wall clock was set: every next run again from now."""
        self.clock_sets += 1
        log.info("the system clock was set: computing the next runs again")
        for entry in self.entries.values():
            entry.job.clock_set(now, self.fraction(entry.job))

    def close(self) -> None:
        """Shutdown: no more runs."""
        if self.timer is not None:
            self.loop.remove(self.timer.fd)
            self.timer.close()
            self.timer = None
        for entry in self.entries.values():
            if entry.timeout is not None:
                entry.timeout.cancel()
        self.entries.clear()

    @staticmethod
    def fraction(job: jobs.Job) -> float:
        """A random fraction for the jitter (none without one)."""
        if job.jitter <= 0:
            return 0.0
        return int.from_bytes(os.urandom(4), "big") / 2**32


def _clock(when: Optional[float], tz: tzinfo) -> str:
    from datetime import datetime

    if when is None:
        return "now"
    return datetime.fromtimestamp(when, tz).strftime("%H:%M:%S")


def zone(name: Optional[str]) -> tzinfo:
    """The time zone `name` (IANA), or the container's local time: $TZ, else
    /etc/localtime, else UTC. ValueError (one line) for an unknown name."""
    import zoneinfo

    if name is not None:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {name[:64]!r} (is tzdata installed?)") from None
    tz_env = os.environ.get("TZ", "").lstrip(":")
    if tz_env:
        try:
            return zoneinfo.ZoneInfo(tz_env)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f)
    except (OSError, ValueError):
        from datetime import timezone

        return timezone.utc
