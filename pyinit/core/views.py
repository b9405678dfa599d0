"""Status records: what `svctl status`, `svctl -w` and /status read about a service.

Built from read-only views (ProcessView, ServiceView), which the services layer
fills in from its machines; pure, so the control requests can be tested with views
made by hand. The record's fields are listed in docs/control-protocol.md;
svstatus.py reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from pyinit.core.machine import Machine
from pyinit.core.svstatus import SETTLE

MAX_FIELD = 16384  # characters of any text in a status record


@dataclass(frozen=True)
class ProcessView:
    """One supervised process (a service's run or its logger), as its machine has it."""

    state: str = "down"
    pid: Optional[int] = None
    since: float = 0.0  # on the loop's clock
    uptime: float = 0.0
    want: str = "u"
    paused: bool = False
    got_term: bool = False
    restarts: int = 0
    last_exit_code: Optional[int] = None
    last_signal: Optional[int] = None
    exited_at: Optional[float] = None  # when it last ended (loop clock)
    start_at: Optional[float] = None  # a restart is pending (loop clock)
    down: bool = True  # down, and nothing pending (Machine.is_down)
    ready: bool = False
    failed: Optional[str] = None
    outcome: Optional[str] = None
    waiting: bool = False  # wanted up, held back by a dependency
    removed: bool = False

    @classmethod
    def of(cls, m: Machine, now: float) -> ProcessView:
        return cls(
            state=m.state,
            pid=m.pid if m.pid and m.pid > 0 else None,
            since=m.since,
            uptime=m.uptime(now),
            want=m.want,
            paused=m.paused,
            got_term=m.got_term,
            restarts=m.restarts,
            last_exit_code=m.last_exit.code if m.last_exit else None,
            last_signal=m.last_exit.signal if m.last_exit else None,
            exited_at=m.exited_at if m.last_exit else None,
            start_at=m.start_at,
            down=m.is_down(),
            ready=m.ready,
            failed=m.failed,
            outcome=m.outcome,
            waiting=m.waiting,
            removed=m.removed,
        )


@dataclass(frozen=True)
class ServiceView:
    """A supervised service: its definition's facts, its run and its logger (log/run)."""

    name: str
    run: ProcessView
    log: Optional[ProcessView] = None
    path: str = ""
    normally_up: bool = True
    error: Optional[str] = None  # why its definition cannot run
    user: Optional[str] = None
    settle: float = SETTLE
    waiting_for: tuple[str, ...] = ()
    status_text: Optional[str] = None  # sd_notify STATUS=
    oneshot: bool = False
    essential: bool = False
    log_mode: str = "inherit"
    dropped_bytes: int = 0
    instance: Optional[str] = None
    group: Optional[str] = None
    job: Optional[dict[str, Any]] = None  # a scheduled job: core/jobs.py's Job.view()


def process_record(p: ProcessView, now: float, wall: float) -> dict[str, Any]:
    """The record of one process; `since` on the wall clock (wall is time.time() at now)."""
    return {
        "state": p.state,
        "pid": p.pid,
        "since": wall - (now - p.since),
        "uptime": round(p.uptime, 3),
        "want": p.want,
        "paused": p.paused,
        "got_term": p.got_term,
        "restarts": p.restarts,
        "last_exit_code": p.last_exit_code,
        "last_signal": p.last_signal,
        "last_exit_at": None if p.exited_at is None else wall - (now - p.exited_at),
        "next_start_in": round(p.start_at - now, 3) if p.start_at else None,
    }


def service_record(s: ServiceView, now: float, wall: float) -> dict[str, Any]:
    """The record of a service (its run's, with the service's facts), capped."""
    rec = process_record(s.run, now, wall)
    rec.update(
        name=s.name,
        path=s.path,
        normally_up=s.normally_up,
        error=s.error,
        user=s.user,
        settle=max(SETTLE, s.settle),
        ready=s.run.ready,
        failed=s.run.failed,
        outcome=s.run.outcome,
        waiting_for=list(s.waiting_for) if s.run.waiting else [],
        status_text=s.status_text,
        oneshot=s.oneshot,
        essential=s.essential,
        log=None,
        log_mode=s.log_mode,
        dropped_bytes=s.dropped_bytes,
        instance=s.instance,
        group=s.group,
    )
    if s.job is not None:  # wall-clock times; next_run_in from now
        nxt = s.job.get("next_run")
        rec["job"] = dict(s.job, next_run_in=None if nxt is None else round(nxt - wall, 3))
    if s.log is not None:
        rec["log"] = process_record(s.log, now, wall)
        rec["log"]["normally_up"] = True
    return capped(rec)


def capped(rec: dict[str, Any]) -> dict[str, Any]:
    """rec with every text (and every text in a list) cut to MAX_FIELD characters,
    so no file or datagram can make a status reply unbounded."""
    for key, value in rec.items():
        kind = type(value)
        if kind in _PLAIN:  # most fields: nothing to cut (a type test, not isinstance)
            continue
        if kind is str or isinstance(value, str):
            if len(value) > MAX_FIELD:
                rec[key] = value[: MAX_FIELD - 3] + "..."
        elif isinstance(value, list):
            rec[key] = [v[:MAX_FIELD] if isinstance(v, str) else v for v in value[:1000]]
    return rec


_PLAIN = frozenset({int, float, bool, type(None), dict})
