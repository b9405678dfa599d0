"""Event hooks, the pure part: which hook wants an event, what it gets on stdin and
in its environment, and whether a run starts now, waits, or is dropped.
runtime/hooks.py runs them. See docs/events.md.

Rules:
- A hook wants an event when it names it (or `*`) and, if it lists services, the
  event is about one of them (core/events.matches: pyinit's own events then never).
- At most MAX_RUNNING hook processes run at once; further runs wait in a FIFO of
  at most MAX_QUEUED; past that a run is dropped. An overflow is said once when it
  begins and once, with the count, when the queue has room again.
- stdin is the event as one JSON line, at most MAX_PAYLOAD bytes (under PIPE_BUF,
  so writing it into a fresh pipe never blocks); the environment has PYINIT_EVENT,
  PYINIT_SERVICE (empty for pyinit's own events), PYINIT_TIME, PYINIT_SEQ and
  PYINIT_<FIELD> for each field (true/false as 1/0, null as empty).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from pyinit.core import events
from pyinit.core.schema import HookSpec

MAX_RUNNING = 4
MAX_QUEUED = 64
MAX_PAYLOAD = 4000  # bytes of the JSON on stdin (PIPE_BUF is 4096)
KILL_GRACE = 2.0  # after the timeout's SIGTERM, SIGKILL
MAX_OUTPUT = 16 * 1024  # bytes of one run's output logged; the rest is dropped
RUN, QUEUE, DROP = "run", "queue", "drop"


def wants(hook: HookSpec, event: dict[str, Any]) -> bool:
    """Does hook run for event?"""
    if events.ANY not in hook.events and event.get("event") not in hook.events:
        return False
    return events.matches(event, hook.services)


def admit(
    running: int, queued: int, max_running: int = MAX_RUNNING, max_queued: int = MAX_QUEUED
) -> str:
    """A new run: RUN now, QUEUE it, or DROP it."""
    if running < max_running and queued == 0:
        return RUN
    return QUEUE if queued < max_queued else DROP


class Overflow:
    """Dropped runs, said once per overflow: `dropped()` is True for the first drop;
    `drained()` the number dropped since, once the queue has room (else 0)."""

    def __init__(self) -> None:
        self.count = 0

    def dropped(self) -> bool:
        self.count += 1
        return self.count == 1

    def drained(self) -> int:
        count, self.count = self.count, 0
        return count


def payload(event: dict[str, Any]) -> bytes:
    """The event as one JSON line, at most MAX_PAYLOAD bytes (string fields are
    bounded by core/events.py; the cut is a safety net)."""
    data = json.dumps(event, separators=(",", ":"), sort_keys=True).encode() + b"\n"
    if len(data) <= MAX_PAYLOAD:
        return data
    small = {k: event.get(k) for k in ("seq", "time", "event", "service")}
    return json.dumps({**small, "truncated": True}, separators=(",", ":")).encode() + b"\n"


def environment(event: dict[str, Any], hook: HookSpec) -> dict[str, str]:
    """The PYINIT_* variables a hook run gets for event."""
    env = {"PYINIT_HOOK": hook.name}
    for key, value in event.items():
        env["PYINIT_" + key.upper()] = _text(value)
    return env


def _text(value: Optional[Any]) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).replace("\0", "")
