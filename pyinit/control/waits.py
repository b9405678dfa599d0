"""svctl -w and svctl check: a reply once a command took effect.

A waiter is re-checked at every state change of one of its slots (Waits.changed,
which the services call), never by polling; it is answered when every target is
done (svstatus.satisfied), or (check, letter C) failed for good, or at its timeout.
Settling changes no state, so a check is also re-checked by a timer when a
restarted run will have settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from pyinit.core.svstatus import hopeless, satisfied, unsettled
from pyinit.services.api import Handle

if TYPE_CHECKING:
    from pyinit.control.server import Client
    from pyinit.control.status import Status
    from pyinit.runtime.loop import EventLoop, Timer

MAX_WAITS = 8  # pending waits per connection: each is re-checked at every state change


@dataclass
class Waiter:
    """A client waiting for its command to take effect (svctl -w)."""

    client: Client
    letters: str
    targets: list[tuple[str, Handle]]
    asked_at: float
    errors: list[dict[str, Any]]
    timer: Optional[Timer] = None
    recheck: Optional[Timer] = None  # svctl check: when a restarted run will have settled


class Waits:
    def __init__(self, status: Status, loop: EventLoop) -> None:
        self.status = status
        self.loop = loop
        self.waiters: list[Waiter] = []

    def pending(self, client: Client) -> int:
        return sum(w.client is client for w in self.waiters)

    def add(self, waiter: Waiter, timeout: float) -> None:
        """Answer waiter when its command took effect, or after timeout seconds."""
        waiter.timer = self.loop.call_later(timeout, lambda: self.finish(waiter, True))
        self.waiters.append(waiter)
        waiter.client.on_close.append(lambda: self.drop(waiter))
        self.check(waiter)

    def changed(self, slot: Handle) -> None:
        """slot's state changed: re-check those waiting on it."""
        for waiter in list(self.waiters):
            if any(s is slot for _, s in waiter.targets):
                self.check(waiter)

    def check(self, waiter: Waiter) -> None:
        """Answer once every target is done, or (svctl check) failed for good."""
        if waiter not in self.waiters:
            return
        checking = "C" in waiter.letters
        if all(
            self.done(waiter, slot) or waiter.letters == "C" and hopeless(self.status.record(slot))
            for slot in _unique(waiter.targets)
        ):
            self.finish(waiter, False)
            return
        if not checking:
            return
        if waiter.recheck is not None:
            waiter.recheck.cancel()
            waiter.recheck = None
        delays = [unsettled(self.status.record(slot)) for _, slot in waiter.targets]
        delay = min((d for d in delays if d > 0), default=None)
        if delay is not None:
            waiter.recheck = self.loop.call_later(delay, lambda: self.check(waiter))

    def done(self, waiter: Waiter, slot: Handle) -> bool:
        rec = self.status.record(slot, loop_clock=True)  # since compared with asked_at
        return satisfied(waiter.letters, rec, waiter.asked_at)

    def finish(self, waiter: Waiter, timed_out: bool) -> None:
        if waiter not in self.waiters:
            return
        self.drop(waiter)
        results = list(waiter.errors)
        for name, slot in waiter.targets:
            done = self.done(waiter, slot)
            rec = self.status.record(slot)
            results.append({"service": name, "ok": True, "done": done, "status": rec})
        waiter.client.send({"ok": True, "timed_out": timed_out, "results": results})

    def drop(self, waiter: Waiter) -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)
            if waiter.timer is not None:
                waiter.timer.cancel()
            if waiter.recheck is not None:
                waiter.recheck.cancel()


def _unique(targets: list[tuple[str, Handle]]) -> list[Handle]:
    """The slots of targets, each once: a name listed 1000 times is checked once."""
    return list({id(slot): slot for _, slot in targets}.values())
