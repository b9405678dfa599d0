"""supervisord's eventlistener protocol over pyinit's events: pure (no I/O).

An [eventlistener:x] runs as a pyinit service whose `run` execs the bridge
(foreign/supervisord_bridge.py): it starts the listener program, follows pyinit's
events on the control socket and speaks supervisord's protocol (its
supervisor/dispatchers.py, process.py, events.py) on the listener's stdin and
stdout. This module holds the rules:

- `subscription`: the `events=` names, the ones pyinit provides and the rest;
- `States`: pyinit's events as supervisord's PROCESS_STATE_* changes, with the
  from_state of each process tracked;
- `envelope`: `ver:3.0 server:ID serial:N pool:NAME poolserial:N eventname:E len:N\\n`
  and the payload;
- `Listener`: the listener's side (READY, then `RESULT N\\n` and N bytes; `OK`
  acknowledges, anything else rejects: the event is sent again, as supervisord's
  default result handler does; a protocol error ends events for it: UNKNOWN);
- `Buffer`: buffer_size events waiting, the oldest dropped past it;
- `Ticks`: TICK_5/60/3600, when the listener subscribed to them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Optional

STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN")
PROCESS_STATE = tuple(f"PROCESS_STATE_{s}" for s in STATES)
TICKS = {"TICK_5": 5, "TICK_60": 60, "TICK_3600": 3600}
PROVIDED = frozenset(PROCESS_STATE[:-1]) | frozenset(TICKS)  # UNKNOWN never happens here
# every event type supervisord 4 knows (supervisor/events.py EventTypes), and the
# abstract ones: each stands for the names starting with it
KNOWN = frozenset(
    PROCESS_STATE
    + tuple(TICKS)
    + tuple(
        """EVENT PROCESS_STATE TICK PROCESS_COMMUNICATION PROCESS_COMMUNICATION_STDOUT
    PROCESS_COMMUNICATION_STDERR PROCESS_LOG PROCESS_LOG_STDOUT PROCESS_LOG_STDERR
    REMOTE_COMMUNICATION SUPERVISOR_STATE_CHANGE SUPERVISOR_STATE_CHANGE_RUNNING
    SUPERVISOR_STATE_CHANGE_STOPPING PROCESS_GROUP PROCESS_GROUP_ADDED
    PROCESS_GROUP_REMOVED""".split()  # noqa: SIM905
    )
)
ABSTRACT = ("EVENT", "PROCESS_STATE", "TICK")
MAX_EVENTS = 64  # names in one events= line
MAX_BUFFER = 100_000  # buffer_size
MAX_RESULT = 64 * 1024  # bytes of a RESULT body
READY = b"READY\n"


class EventsError(ValueError):
    """A bad events= value: one line."""


def subscription(text: str) -> tuple[frozenset[str], list[str]]:
    """events= (comma-separated, case-blind, as supervisord's list_of_strings) ->
    (the concrete names pyinit provides that it covers, the names it gives that
    pyinit does not provide). Unknown names and an empty list are errors."""
    names = [n.strip().upper() for n in text.split(",") if n.strip()]
    if not names:
        raise EventsError("requires an events line (supervisord requires one)")
    if len(names) > MAX_EVENTS:
        raise EventsError(f"more than {MAX_EVENTS} event names")
    wanted: set[str] = set()
    missing: list[str] = []
    for name in names:
        if name not in KNOWN:
            raise EventsError(f"unknown event type {name[:60]!r}")
        if name == "EVENT":
            covered = set(PROVIDED)
            missing.append("EVENT (only PROCESS_STATE_* and TICK_* are provided)")
        elif name in ABSTRACT:
            covered = {p for p in PROVIDED if p.startswith(name + "_")}
        else:
            covered = {name} & PROVIDED
            if not covered and name not in missing:
                missing.append(name)
        wanted |= covered
    return frozenset(wanted), missing


def process_names(service: str) -> tuple[str, str]:
    """(processname, groupname) of a pyinit service: `GROUP:NAME`, or NAME in its
    own group (as supervisord names a program without a [group:x])."""
    group, sep, name = service.partition(":")
    return (name, group) if sep else (service, service)


@dataclass
class States:
    """Each process's supervisord state, moved by pyinit's events; exitcodes:
    a service's success codes (supervisord's `expected`), 0 when not given."""

    exitcodes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    pids: dict[str, Optional[int]] = field(default_factory=dict)
    MAX_TRACKED = 10_000

    def apply(self, event: dict[str, Any]) -> Optional[tuple[str, str]]:
        """The (PROCESS_STATE_X, payload) pyinit's event means, or None."""
        service, name = event.get("service"), event.get("event")
        if not isinstance(service, str) or not isinstance(name, str):
            return None
        before = self.state.get(service, "STOPPED")
        pid = event.get("pid") if isinstance(event.get("pid"), int) else None
        if pid is not None:
            self.pids[service] = pid
        new, extra = self.next_state(service, name, before, event)
        if new is None:
            return None
        if service not in self.state and len(self.state) >= self.MAX_TRACKED:
            return None  # bounded: a pyinit with more services than this is not tracked
        self.state[service] = new
        proc, group = process_names(service)
        values = [("processname", proc), ("groupname", group), ("from_state", before)]
        values += extra
        return f"PROCESS_STATE_{new}", " ".join(f"{k}:{v}" for k, v in values)

    def next_state(
        self, service: str, name: str, before: str, event: dict[str, Any]
    ) -> tuple[Optional[str], list[tuple[str, Any]]]:
        """supervisord's transition for one pyinit event (docs/migration.md's table):
        an exit while STARTING is BACKOFF, while STOPPING is STOPPED."""
        pid = self.pids.get(service) or 0
        tries = event.get("restarts") if isinstance(event.get("restarts"), int) else 0
        if name == "starting":
            return "STARTING", [("tries", tries)]
        if name == "ready" and before == "STARTING":
            return "RUNNING", [("pid", pid)]
        if name == "stopping" and before in ("STARTING", "RUNNING", "BACKOFF"):
            return "STOPPING", [("pid", pid)]
        if name == "exited":
            if before == "STOPPING" or event.get("expected") is True:
                return "STOPPED", [("pid", pid)]
            if before == "STARTING":
                return "BACKOFF", [("tries", tries + 1)]
            code = event.get("code")
            ok = isinstance(code, int) and code in self.exitcodes.get(service, (0,))
            return "EXITED", [("expected", int(ok)), ("pid", pid)]
        if name == "failed" and before in ("BACKOFF", "STARTING"):
            return "FATAL", []
        if name == "down" and before in ("STARTING", "RUNNING", "STOPPING", "BACKOFF"):
            return "STOPPED", [("pid", pid)]
        return None, []


def envelope(
    name: str, payload: str, serial: int, pool: str, poolserial: int, server: str
) -> bytes:
    """supervisord's header line and payload (process.py _eventEnvelope); len is
    the payload's length in bytes, as supervisord counts the bytes it writes for
    ASCII names."""
    body = payload.encode("utf-8", "surrogateescape")
    head = (
        f"ver:3.0 server:{server} serial:{serial} pool:{pool} poolserial:{poolserial} "
        f"eventname:{name} len:{len(body)}\n"
    )
    return head.encode("utf-8", "surrogateescape") + body


class ProtocolError(Exception):
    """The listener broke the protocol: it gets no more events (UNKNOWN)."""


class Listener:
    """The listener's state, as supervisord's dispatcher keeps it: ACKNOWLEDGED
    (waiting for READY), READY, BUSY (an event sent, its RESULT awaited), UNKNOWN."""

    def __init__(self) -> None:
        self.state = "ACKNOWLEDGED"
        self.data = b""
        self.resultlen: Optional[int] = None

    def sent(self) -> None:
        self.state = "BUSY"

    def feed(self, data: bytes) -> list[bytes]:
        """Take what the listener wrote; returns the RESULT bodies it completed.
        Raises ProtocolError for what supervisord would put it in UNKNOWN for."""
        if self.state == "UNKNOWN":
            return []
        self.data += data
        out: list[bytes] = []
        while self.data and self.state != "UNKNOWN":
            if self.state == "ACKNOWLEDGED":
                if len(self.data) < len(READY):
                    if READY.startswith(self.data):
                        break
                    self.fail("expected READY, got " + show(self.data))
                if not self.data.startswith(READY):
                    self.fail("expected READY, got " + show(self.data))
                self.data = self.data[len(READY) :]
                self.state = "READY"
            elif self.state == "READY":
                self.fail("wrote " + show(self.data) + " while no event was sent")
            else:
                body = self.result()
                if body is None:
                    break
                out.append(body)
                self.state = "ACKNOWLEDGED"
        return out

    def result(self) -> Optional[bytes]:
        """`RESULT N\\n` and N bytes, or None until they are all there."""
        if self.resultlen is None:
            line, sep, rest = self.data.partition(b"\n")
            if not sep:
                if len(self.data) > 64:
                    self.fail("bad result line " + show(self.data))
                return None
            number = line[len(b"RESULT ") :] if line.startswith(b"RESULT ") else b"x"
            if not number.isdigit() or len(number) > 9 or int(number) > MAX_RESULT:
                self.fail("bad result line " + show(line))
            self.resultlen, self.data = int(number), rest
        if len(self.data) < self.resultlen:
            return None
        body, self.data = self.data[: self.resultlen], self.data[self.resultlen :]
        self.resultlen = None
        return body

    def fail(self, why: str) -> None:
        self.state = "UNKNOWN"
        self.data = b""
        raise ProtocolError(why)


def show(data: bytes) -> str:
    return repr(data[:40])[1:] + ("..." if len(data) > 40 else "")


def accepted(body: bytes) -> bool:
    """supervisord's default_handler: `OK` acknowledges; anything else rejects
    (the event is buffered again at the head and sent again)."""
    return body == b"OK"


class Buffer:
    """At most size events waiting for the listener, oldest first; past it the
    oldest is dropped (supervisord's buffer_size), said once until it has room."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: deque[tuple[str, str, int]] = deque()
        self.dropped = 0
        self.full_said = False

    def push(self, item: tuple[str, str, int], head: bool = False) -> Optional[str]:
        """Add item (at the head: a rejected event); returns a warning to log, or None."""
        said = None
        if len(self.items) >= self.size:
            self.items.popleft()
            self.dropped += 1
            if not self.full_said:
                self.full_said = True
                said = (
                    f"event buffer overflowed ({self.size} events, buffer_size): dropping "
                    "the oldest (said once until the listener catches up)"
                )
        if head:
            self.items.appendleft(item)
        else:
            self.items.append(item)
        return said

    def pop(self) -> tuple[Optional[tuple[str, str, int]], Optional[str]]:
        """The oldest event, and a note with the count dropped when the buffer drains."""
        item = self.items.popleft() if self.items else None
        note = None
        if not self.items and self.full_said:
            note = f"event buffer has room again: {self.dropped} events were dropped"
            self.full_said, self.dropped = False, 0
        return item, note


@dataclass
class Ticks:
    """TICK_5/60/3600 for the subscribed periods: supervisord's timeslice rule (an
    event when now enters a new multiple of the period, with `when:` that multiple)."""

    periods: dict[str, int]
    last: dict[str, int] = field(default_factory=dict)

    def start(self, now: float) -> None:
        self.last = {name: int(now) // p * p for name, p in self.periods.items()}

    def due(self, now: float) -> list[tuple[str, str]]:
        out = []
        for name, period in self.periods.items():
            this = int(now) // period * period
            if this != self.last.get(name):
                self.last[name] = this
                out.append((name, f"when:{this}"))
        return out

    def next_at(self) -> Optional[float]:
        """When the next tick is due (seconds since the epoch), or None."""
        if not self.periods:
            return None
        return float(min(self.last[n] + p for n, p in self.periods.items()))
