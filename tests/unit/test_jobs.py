"""Scheduled jobs: core/jobs.py's rules, services/scheduler.py over a fake timer and
loop (the clock-set path: the kernel's ECANCELED cannot be caused without setting the
host's clock), and the real timerfd firing."""

from __future__ import annotations

import select
import signal
import time
import types
from datetime import timezone
from typing import Any, Optional

import pytest

from pyinit.core import cron, jobs
from pyinit.core.exits import ExitStatus
from pyinit.core.machine import Machine, Policy, Signal, Start
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


def test_a_paused_job_has_no_next_run() -> None:
    j = job("@hourly", paused=True)
    j.plan(T0)
    assert j.due is None and jobs.earliest([j]) is None


def dues_fired(j: jobs.Job, start: float, count: int, fraction: float) -> list[float]:
    """The due times a job fires for, in order, when each fires at its fire_at (the
    timer) with the given jitter fraction."""
    j.plan(start, fraction)
    seen = []
    for _ in range(count):
        assert j.due is not None and j.fire_at is not None
        seen.append(j.due)
        j.fire(j.fire_at, running=False, fraction=fraction)
    return seen


@pytest.mark.parametrize(
    "expr,jitter,tz",
    [
        ("* * * * *", 300, "UTC"),
        ("0,5 * * * *", 600, "UTC"),  # gaps of 5 and 55 minutes
        ("*/7 * * * *", 3600, "UTC"),  # 7 minutes, and 4 across the hour
        ("30 1 * * *", 10 * 86400, "America/New_York"),  # a fall-back day on the way
        ("0 0 29 2 *", 5 * 366 * 86400, "UTC"),  # leap days
    ],
)
def test_a_jitter_longer_than_a_gap_never_loses_a_due_time(
    expr: str, jitter: float, tz: str
) -> None:
    """Each due time gets its run, before the following one: the delay is cut to the gap
    (core/jobs.py). The reference is cron.next_run, one due time after another."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    schedule = cron.parse(expr)
    start = 1_793_000_000.0  # 2026-10-26: the fall-back of 2026-11-01 is ahead
    expected, t = [], start
    for _ in range(12):
        t = cron.next_run(schedule, zone, t)  # type: ignore[assignment]
        expected.append(t)
    for fraction in (0.0, 0.5, 0.999999):
        j = jobs.Job(schedule, zone, jitter=jitter)
        assert dues_fired(j, start, 12, fraction) == expected, fraction


def test_pause_and_resume() -> None:
    every = job("every 60s", overlap="queue")
    every.plan(T0)
    assert every.request(running=True) == jobs.QUEUED
    every.pause()
    assert every.paused and every.due is None and not every.pending  # no queued run either
    assert jobs.earliest([every]) is None and every.view()["paused"] is True
    every.resume(T0 + 1000)
    assert not every.paused and every.due == T0 + 1060  # an interval from now, no run now
    daily = job("0 3 * * *", paused=True)
    daily.plan(T0)
    assert daily.due is None
    daily.resume(T0)
    assert daily.due == cron.next_run(cron.parse("0 3 * * *"), UTC, T0)
    daily.started(T0 + 1)
    daily.ended(T0 + 2, None, 15, stopped=True)
    assert daily.view()["last_run"]["result"] == "stopped"  # type: ignore[index]


def test_an_interval_jitter_of_the_interval_or_more_is_refused() -> None:
    from pyinit.core.schema import ConfigError, validate

    assert validate({"every": "1m", "jitter": 59}, "f").jitter == 59
    assert validate({"schedule": "*/5 * * * *", "jitter": 600}, "f").jitter == 600  # cut per run
    for yaml, defaults, where in (
        ({"every": 60, "jitter": 60}, None, ""),
        ({"schedule": "every 10s", "jitter": 30}, None, ""),
        ({"every": "1m"}, {"jitter": 300}, ", from pyinit.yaml's defaults"),
    ):
        with pytest.raises(ConfigError) as exc:
            validate(yaml, "f", defaults)
        jitter = yaml.get("jitter") or (defaults or {})["jitter"]
        step = 10 if "schedule" in yaml else 60
        assert str(exc.value) == (
            f"f: key 'jitter' ({jitter}s{where}) must be less than the interval ({step}s): "
            "a run would be delayed past the next one"
        )


def test_status_line_and_waits_of_a_paused_job() -> None:
    from pyinit.core.svstatus import satisfied, sv_status_line

    rec: dict[str, Any] = {
        "state": "down",
        "pid": None,
        "since": 10.0,
        "want": "d",
        "normally_up": False,
        "job": {"paused": True, "next_run_in": None},
    }
    assert sv_status_line("backup", rec, 15.0) == "down: backup: 5s; paused"
    assert not satisfied("u", rec, 12.0) and satisfied("d", rec, 12.0)
    rec["job"] = {"paused": False, "next_run_in": 41.2}
    assert sv_status_line("backup", rec, 15.0) == "down: backup: 5s; next run in 42s"
    assert satisfied("u", rec, 12.0) and satisfied("tcu", rec, 12.0)  # up: no run now


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


def make(
    yaml: dict[str, Any], normally_up: bool = True
) -> tuple[Scheduler, Service, FakeTimer, list, list[float]]:
    from pyinit.core.schema import validate

    config: ServiceConfig = validate(yaml, "f")
    svc = Service(ServiceDir("job", "/srv/job", normally_up, False, config=config))
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


def letter(sched: Scheduler, svc: Service, applied: list, which: str) -> None:
    """A control letter as the manager sends it (ServiceManager.command)."""
    if not sched.command(svc.run, which):
        actions = svc.run.machine.command(which, 100.0)
        applied.append(actions)


def test_down_pauses_and_stops_the_run_up_resumes_without_a_run() -> None:
    sched, svc, timer, applied, wall = make({"every": 60, "timeout": 30, "stop_signal": "INT"})
    svc.run.machine.configure(Policy(oneshot=True, restart="never", stop_signal=signal.SIGINT))
    assert sched.run_now("job") == jobs.RUN and svc.run.machine.pid == 1234
    letter(sched, svc, applied, "d")
    assert applied[-1][0] == Signal(signal.SIGINT, group=False)  # the job's stop signal
    assert timer.armed is None and sched.view("job")["paused"] is True  # type: ignore[index]
    svc.run.machine.exited(ExitStatus(signal=signal.SIGINT), 101.0)
    sched.exited(svc.run)
    assert sched.view("job")["last_run"]["result"] == "stopped"  # type: ignore[index]
    wall[0] = T0 + 500
    count = len(applied)
    letter(sched, svc, applied, "u")
    assert len(applied) == count and svc.run.machine.is_down()  # no run now
    assert timer.armed == T0 + 560 and sched.view("job")["paused"] is False  # type: ignore[index]


def test_once_goes_through_the_overlap_rule() -> None:
    sched, svc, timer, applied, wall = make({"every": 60})
    letter(sched, svc, applied, "o")
    assert applied == [[Start()]] and sched.view("job")["runs"] == 1  # type: ignore[index]
    letter(sched, svc, applied, "o")  # still running: overlap: skip
    assert len(applied) == 1 and sched.view("job")["skipped"] == 1  # type: ignore[index]
    letter(sched, svc, applied, "t")  # signals go to the current run, schedule untouched
    assert applied[-1] == [Signal(signal.SIGTERM, group=False)] and timer.armed == T0 + 60


def test_a_down_file_pauses_at_first_sight_only() -> None:
    """A `down` file keeps a job paused when first seen (on_start: run included); a
    later service.yaml change keeps whatever svctl up/down made of it."""
    sched, svc, timer, applied, wall = make({"every": 60, "on_start": "run"}, normally_up=False)
    assert not applied and timer.armed is None
    letter(sched, svc, applied, "u")
    assert timer.armed == T0 + 60 and not applied
    from pyinit.core.schema import validate

    svc.defn = ServiceDir("job", "/srv/job", False, False, config=validate({"every": 90}, "f"))
    sched.sync(svc)  # the yaml changed, the down file is still there: not paused again
    assert sched.view("job")["paused"] is False and timer.armed == T0 + 90  # type: ignore[index]


def test_a_timeout_after_a_service_yaml_change_is_still_a_timeout() -> None:
    from pyinit.core.schema import validate

    sched, svc, timer, applied, wall = make({"every": 60, "timeout": 5})
    assert sched.run_now("job") == jobs.RUN
    svc.defn = ServiceDir("job", "/srv/job", True, False, config=validate({"every": 90}, "f"))
    sched.sync(svc)  # a new schedule while the run goes on: the run keeps its limit
    ((_, fire),) = sched.loop.timers  # type: ignore[attr-defined]
    fire()
    assert applied[-1][0].signum == 15
    svc.run.machine.exited(ExitStatus(signal=15), 101.0)
    sched.exited(svc.run)
    assert sched.view("job")["last_run"]["result"] == "timeout"  # type: ignore[index]
