"""Accepting connections in the event loop, for the control socket and the health endpoint.

Non-blocking accepts until EAGAIN (at most `burst` per wake-up, so one busy
listener cannot starve the loop). Each new connection is identified once
(key_of: who it is, for the caps), then admitted, refused or made room for by
`admit`, one pure decision for both servers (see its docstring); refusals and
evictions are logged at most once per NOTE_INTERVAL for each kind, with the
count since. When accept fails for lack of fds (EMFILE/ENFILE) the listening
socket stays readable, so it is not watched for ACCEPT_PAUSE seconds instead of
spinning on accept(); the failure is logged once per outage, and once more when
accepting works again.
"""

from __future__ import annotations

import socket
from typing import Any, Callable, Collection, Hashable, NamedTuple, Optional, Protocol

from pyinit.core.repeats import Throttle
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop

ACCEPT_PAUSE = 0.5
NOTE_INTERVAL = 60.0  # a kind of refusal or eviction is logged at most this often

# Verdicts of admit()
ACCEPT = "accept"
EVICT = "evict"  # accept, after closing the victim
PER_KEY = "per-key"  # refused: the key holds its cap
SHARED = "shared"  # refused: the unreserved keys hold all but the reserve
FULL = "full"  # refused: every connection taken, none the newcomer may evict


class Caller(NamedTuple):
    """Who connected, learned once at accept (key_of) and passed on to the server."""

    key: Hashable  # whom the per-key cap counts: a uid, a source address
    reserved: bool = False  # may use the reserve, is never evicted (a privileged uid)
    serial: int = 0  # order of acceptance, lower is older (set by the Listener)
    info: Any = None  # whatever else key_of learned (the control socket: pid and gid)


class Seat(Protocol):
    """An open connection, as admission sees it."""

    caller: Caller
    done: bool  # answered, only waiting for its client to close: evicted first


class Limits(NamedTuple):
    total: int  # connections in all
    per_key: int  # connections of one unreserved key
    reserve: int = 0  # of total, only for reserved callers
    newcomers_evict: bool = False  # when all are taken, an unreserved newcomer makes room
    busiest_first: bool = False  # make room from the key holding the most (else the oldest)


class Verdict(NamedTuple):
    kind: str  # ACCEPT, EVICT, PER_KEY, SHARED or FULL
    victim: Optional[Seat] = None  # EVICT: the connection to close first


def admit(limits: Limits, seats: Collection[Seat], new: Caller) -> Verdict:
    """Whether a new connection from `new` may join the open `seats` (pure).

    An unreserved caller is refused at `per_key` connections of its key, and (with a
    reserve) when the unreserved ones hold `total - reserve`. When all `total` are taken, a
    reserved caller, or any caller with `newcomers_evict`, takes the place of an
    unreserved connection: one already done first, then (`busiest_first`) one of the
    key holding the most, then the oldest. Otherwise it is refused (FULL)."""
    if not new.reserved:
        if sum(1 for s in seats if s.caller.key == new.key) >= limits.per_key:
            return Verdict(PER_KEY)
        shared = limits.total - limits.reserve
        if limits.reserve and sum(1 for s in seats if not s.caller.reserved) >= shared:
            return Verdict(SHARED)
    if len(seats) < limits.total:
        return Verdict(ACCEPT)
    others = [s for s in seats if not s.caller.reserved]
    if not others or not (new.reserved or limits.newcomers_evict):
        return Verdict(FULL)
    held: dict[Hashable, int] = {}
    if limits.busiest_first:
        for s in others:
            held[s.caller.key] = held.get(s.caller.key, 0) + 1
    victim = max(others, key=lambda s: (s.done, held.get(s.caller.key, 0), -s.caller.serial))
    return Verdict(EVICT, victim)


class Listener:
    """Accept on sock, admitting by limits() over seats() (both read at each accept).

    key_of(conn) identifies a connection (an OSError: it is already gone, closed
    unlogged); refuse(conn, caller, kind) tells a refused caller why and returns that
    reason for the log (the Listener closes conn); evict(seat) closes a victim;
    on_accept(conn, caller) takes an admitted, non-blocking connection."""

    def __init__(
        self,
        loop: EventLoop,
        sock: socket.socket,
        name: str,
        burst: int,
        *,
        limits: Callable[[], Limits],
        seats: Callable[[], Collection[Seat]],
        key_of: Callable[[socket.socket], Caller],
        on_accept: Callable[[socket.socket, Caller], None],
        refuse: Callable[[socket.socket, Caller, str], str],
        evict: Callable[[Any], None],
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.name = name
        self.burst = burst
        self.limits = limits
        self.seats = seats
        self.key_of = key_of
        self.on_accept = on_accept
        self.refuse = refuse
        self.evict = evict
        self.accepted = 0  # connections accepted so far (each caller's serial)
        self.notes: dict[str, Throttle] = {}  # by kind
        self.failing = False  # accept() failed and has not succeeded since
        self.closed = False
        sock.setblocking(False)
        loop.add_reader(self.fd, self.accept)

    def accept(self) -> None:
        for _ in range(self.burst):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if not self.failing:
                    log.warning(
                        f"{self.name}: accept failed: {exc.strerror}; "
                        f"pausing accepts for {ACCEPT_PAUSE:g}s at a time until it works"
                    )
                self.failing = True
                self.loop.remove(self.fd)
                self.loop.call_later(ACCEPT_PAUSE, self.resume)
                return
            if self.failing:
                self.failing = False
                log.warning(f"{self.name}: accepting connections again")
            self.admit(conn)

    def admit(self, conn: socket.socket) -> None:
        try:
            caller = self.key_of(conn)
        except OSError:  # gone already
            conn.close()
            return
        self.accepted += 1
        caller = caller._replace(serial=self.accepted)
        limits = self.limits()
        verdict = admit(limits, self.seats(), caller)
        if verdict.kind not in (ACCEPT, EVICT):
            why = self.refuse(conn, caller, verdict.kind)
            conn.close()
            self.note(verdict.kind, lambda n: f"refused {n} {_plural(n, 'connection')}: {why}")
            return
        if verdict.kind == EVICT:
            self.evict(verdict.victim)
            self.note(
                EVICT,
                lambda n: (
                    f"{limits.total} clients connected: closed {n} "
                    f"{_plural(n, 'connection')} to make room for new ones"
                ),
            )
        conn.setblocking(False)
        self.on_accept(conn, caller)

    def note(self, kind: str, text: Callable[[int], str]) -> None:
        """Log text(n) at most once per NOTE_INTERVAL for each kind, n: the events of
        that kind since (whoever may connect cannot flood pyinit's log)."""
        n = self.notes.setdefault(kind, Throttle(NOTE_INTERVAL)).event(self.loop.clock())
        if n:
            log.warning(f"{self.name}: {text(n)}")

    def resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.fd, self.accept)

    def close(self) -> None:
        self.closed = True
        self.loop.remove(self.fd)
        self.sock.close()


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"
