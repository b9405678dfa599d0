"""pyinit's events: the one list of their names, the record of one event, and who
wants which (pure; runtime/events.py keeps the ring and tells the listeners).

An event is a flat dict, the same one `svctl events` prints as a JSON line and a
hook reads on stdin: `seq` (counts from 1 in this pyinit), `time` (wall clock,
seconds since the epoch, UTC, to the millisecond), `event` (a name below),
`service` (null for pyinit's own events) and the event's fields, each a number,
a string (at most MAX_TEXT characters), true/false or null. See docs/events.md.

To add an event: add its name to SERVICE_EVENTS or PYINIT_EVENTS (the family
before the dot, as `job.` for scheduled jobs), emit it with
`pyinit.runtime.events.emit(name, service, **fields)`, and document it.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

# A service's life, in the order they usually come.
SERVICE_EVENTS = (
    "starting",  # a start begins: setup (if any) or run is spawned
    "up",  # run is running (pid)
    "ready",  # run is ready (its readiness check passed; at once without one)
    "unhealthy",  # readiness timed out or liveness failed: it is being restarted
    "stopping",  # the stop signal was sent (svctl down, shutdown, unhealthy)
    "exited",  # run (or a failed setup) ended: code or signal; or could not start
    "backoff",  # the restart waits `delay` seconds (it ran too briefly)
    "failed",  # the restart policy gave up (supervisord's FATAL); down until svctl up
    "done",  # a oneshot ended with a success code
    "down",  # down, and not restarting (asked for, or given up)
)
# pyinit's own boot and shutdown phases (service is null).
PYINIT_EVENTS = (
    "boot.scripts",  # the startup scripts begin (count)
    "boot.services",  # service supervision begins
    "boot.main",  # the main command started (pid)
    "shutdown.begin",  # the shutdown begins (reason)
    "shutdown.services",  # the services are being stopped
    "shutdown.end",  # the services are down; the control socket closes next
)
# A scheduled job's runs (service.yaml `schedule:`/`every:`; services/scheduler.py).
JOB_EVENTS = (
    "job.run",  # a run started (why: its time, on request, after the one it waited for)
    "job.skipped",  # a run was due while the last one still ran (overlap: skip)
    "job.done",  # a run ended (result: success, failure, timeout, stopped; code, signal)
)
EVENTS = SERVICE_EVENTS + JOB_EVENTS + PYINIT_EVENTS
ANY = "*"  # a hook's `events: ["*"]`: every event
RING = 256  # events pyinit keeps for `svctl events` without -f
MAX_TEXT = 200  # characters of a string field


def record(
    seq: int, name: str, when: float, service: Optional[str] = None, **fields: Any
) -> dict[str, Any]:
    """One event; a string field is cut to MAX_TEXT, anything but a scalar dropped."""
    if name not in EVENTS:
        raise ValueError(f"unknown event name {name[:40]!r}")
    out: dict[str, Any] = {"seq": seq, "time": round(when, 3), "event": name, "service": service}
    for key, value in fields.items():
        if isinstance(value, str):
            out[key] = value[:MAX_TEXT]
        elif value is None or isinstance(value, (bool, int, float)):
            out[key] = value
    return out


def matches(event: dict[str, Any], names: Sequence[str], own: bool = False) -> bool:
    """Is event about one of names (none: every event)? A group's name (a counted
    service `web`, a template `web@`) stands for its instances (`web@1`). With names,
    pyinit's own events (no service) are in only with own (svctl events: yes; a
    hook's `services`: no)."""
    if not names:
        return True
    service = event.get("service")
    if not isinstance(service, str):
        return own
    for name in names:
        if service == name or service.startswith(name if name.endswith("@") else name + "@"):
            return True
    return False
