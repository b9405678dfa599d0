"""Scheduled jobs: core/jobs.py's rules, services/scheduler.py over a fake timer and
loop (the clock-set path: the kernel's ECANCELED cannot be caused without setting the
host's clock), and the real timerfd firing."""

from __future__ import annotations

import select
import time
import types
from datetime import timezone
from typing import Any, Optional

from pyinit.core import cron, jobs
from pyinit.core.exits import ExitStatus
from pyinit.core.machine import Machine, Policy, Start
from pyinit.core.model import ServiceDir
from pyinit.core.schema import ServiceConfig
from pyinit.linux.timerfd import CLOCK_SET, FIRED, NOTHING, WallTimer
from pyinit.services.records import Service, Slot
from pyinit.services.scheduler import Scheduler

UTC = timezone.utc
T0 = 1_800_000_000.0  # a wall-clock instant (2027-01-15 08:00 UTC)


def job(schedule: str, **kw: Any) -> jobs.Job:
    return jobs.Job(cron.parse(schedule), UTC, **kw)


def test_an_interval_counts_from_its_due_time_and_skips_missed_ones() -> None:
    j = job("every 90s")
    j.plan(T0)
    assert j.due == T0 + 90
    j.fire(T0 + 90.2, running=False)
    assert j.due == T0 + 180  # no drift
    j.fire(T0 + 1000, running=False)  # a suspended host: once, then back on the grid
    assert j.due == T0 + 1080


def test_a_cron_job_is_due_at_next_run_plus_its_jitter() -> None:
    j = job("*/15 * * * *", jitter=60)
    j.plan(T0 + 1, fraction=0.5)
    assert j.due == T0 + 900 and j.fire_at == T0 + 930


def test_overlap_rules() -> None:
    skip, queue, replace = (job("every 60s", overlap=o) for o in jobs.OVERLAPS)
    assert skip.request(running=False) == jobs.RUN
    assert skip.request(running=True) == jobs.SKIPPED and skip.skipped == 1
    assert queue.request(running=True) == jobs.QUEUED
    assert queue.request(running=True) == jobs.NOTHING  # at most one pending
    assert queue.ended(T0, 0, None) == jobs.RUN and not queue.pending
    assert queue.ended(T0, 0, None) == jobs.NOTHING
    assert replace.request(running=True) == jobs.STOP_AND_RUN
    assert replace.ended(T0, None, 15) == jobs.RUN


def test_last_run_results() -> None:
    j = job("@daily")
    j.started(T0)
    assert j.view()["last_run"]["result"] == "running"
    j.ended(T0 + 2, 0, None)
    assert j.view()["last_run"] == {
        "start": T0,
        "end": T0 + 2,
        "exit_code": 0,
        "signal": None,
        "result": "success",
    }
    j.started(T0 + 5)
    j.ended(T0 + 6, None, 15, timed_out=True)
    assert j.last is not None and j.last.result == "timeout"
    j.started(T0 + 7)
    j.ended(T0 + 8, 3, None)
    assert j.last.result == "failure" and j.runs == 3


def test_a_clock_set_computes_the_next_run_again() -> None:
    daily = job("0 0 * * *")
    daily.plan(T0)
    daily.clock_set(T0 - 3 * 86400)  # set back three days: due the next midnight from there
    assert daily.due == cron.next_run(cron.parse("0 0 * * *"), UTC, T0 - 3 * 86400)
    every = job("every 60s")
    every.plan(T0)
    every.clock_set(T0 + 30)  # still within the interval: unchanged
    assert every.due == T0 + 60
    every.clock_set(T0 - 3600)  # an hour back: not an hour plus a minute away
    assert every.due == T0 - 3600 + 60


def test_a_disabled_job_has_no_next_run() -> None:
    j = job("@hourly", enabled=False)
    j.plan(T0)
    assert j.due is None and jobs.earliest([j]) is None


# --- the shell, with fakes -----------------------------------------------------------------
class FakeTimer:
    def __init__(self) -> None:
        self.fd = 99
        self.armed: Optional[float] = None
        self.next_read = FIRED

    def arm(self, at: float) -> None:
        self.armed = at

    def disarm(self) -> None:
        self.armed = None

    def read(self) -> str:
        return self.next_read

    def close(self) -> None:
        self.fd = -1


class FakeLoop:
    def __init__(self) -> None:
        self.readers: dict[int, Any] = {}
        self.timers: list[tuple[float, Any]] = []

    def clock(self) -> float:
        return 100.0

    def add_reader(self, fd: int, cb: Any) -> None:
        self.readers[fd] = cb

    def remove(self, fd: int) -> None:
        self.readers.pop(fd, None)

    def call_later(self, delay: float, cb: Any) -> Any:
        self.timers.append((delay, cb))
        return types.SimpleNamespace(cancel=lambda: None)


def make(yaml: dict[str, Any]) -> tuple[Scheduler, Service, FakeTimer, list, list[float]]:
    from pyinit.core.schema import validate

    config: ServiceConfig = validate(yaml, "f")
    svc = Service(ServiceDir("job", "/srv/job", True, False, config=config))
    svc.run = Slot(svc, "run", Machine(Policy(oneshot=True, restart="never")))
    svc.run.machine.boot(0.0, normally_up=False)
    timer, applied, wall = FakeTimer(), [], [T0]
    loop = FakeLoop()

    def apply(slot: Slot, actions: list) -> None:
        applied.append(actions)
        for action in actions:
            if isinstance(action, Start):
                slot.machine.spawned(1234, 100.0)

    sched = Scheduler(
        loop,
        apply,
        lambda: False,
        wall=lambda: wall[0],  # type: ignore[arg-type]
        new_timer=lambda: timer,
    )
    sched.sync(svc)
    return sched, svc, timer, applied, wall


def test_one_timer_armed_for_the_next_run_and_a_run_when_it_fires() -> None:
    sched, svc, timer, applied, wall = make({"every": 60})
    assert timer.armed == T0 + 60 and not applied
    wall[0] = T0 + 60
    sched.on_timer()
    assert applied == [[Start()]] and svc.run.machine.pid == 1234
    assert timer.armed == T0 + 120
    svc.run.machine.exited(ExitStatus(code=0), 101.0)
    sched.exited(svc.run)
    assert sched.view("job")["last_run"]["result"] == "success"  # type: ignore[index]


def test_clock_set_recomputes_and_rearms_without_running() -> None:
    sched, svc, timer, applied, wall = make({"schedule": "0 0 * * *"})
    before = timer.armed
    timer.next_read = CLOCK_SET  # the kernel's ECANCELED: someone set the clock
    wall[0] = T0 + 5 * 86400
    sched.on_timer()
    assert sched.clock_sets == 1 and not applied
    assert timer.armed == cron.next_run(cron.parse("0 0 * * *"), UTC, T0 + 5 * 86400) != before


def test_timeout_stops_the_run() -> None:
    sched, svc, timer, applied, wall = make({"every": 60, "timeout": 5})
    assert sched.run_now("job") == jobs.RUN
    ((delay, fire),) = sched.loop.timers  # type: ignore[attr-defined]
    assert delay == 5
    fire()
    assert applied[-1][0].signum == 15  # the stop signal, then SIGCONT; SIGKILL after grace


def test_skip_while_running_and_on_start_run() -> None:
    sched, svc, timer, applied, wall = make({"every": 60, "on_start": "run"})
    assert applied == [[Start()]]  # at start
    assert sched.run_now("job") == jobs.SKIPPED
    assert sched.run_now("nope") is None


def test_the_real_timerfd_fires_at_an_absolute_wall_time() -> None:
    timer = WallTimer()
    try:
        assert timer.read() == NOTHING
        timer.arm(time.time() + 0.05)
        ready, _, _ = select.select([timer.fd], [], [], 5)
        assert ready and timer.read() == FIRED
        timer.arm(time.time() + 3600)
        timer.disarm()
        assert select.select([timer.fd], [], [], 0.1)[0] == []
    finally:
        timer.close()
