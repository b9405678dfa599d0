"""The event source of PID 1: a bounded ring of recent events and the listeners
told of each new one (`svctl events -f`, hooks).

`emit(name, service, **fields)` is the one call; the names and the record are
core/events.py's. Emitting does no I/O: a listener must not block (each one
queues, bounded, and drops what it cannot take). A listener that raises is a
bug: logged, and the others are still told.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Optional

from pyinit.core import events
from pyinit.runtime import log

Listener = Callable[[dict], None]


class Bus:
    def __init__(self, clock: Callable[[], float] = time.time, size: int = events.RING) -> None:
        self.clock = clock
        self.ring: deque[dict[str, Any]] = deque(maxlen=size)
        self.listeners: list[Listener] = []
        self.seq = 0

    def emit(self, name: str, service: Optional[str] = None, **fields: Any) -> None:
        self.seq += 1
        event = events.record(self.seq, name, self.clock(), service, **fields)
        self.ring.append(event)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.bug(f"event listener for {name}")

    def recent(self) -> list[dict[str, Any]]:
        return list(self.ring)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """listener(event) for every new event; returns what stops it."""
        self.listeners.append(listener)

        def stop() -> None:
            if listener in self.listeners:
                self.listeners.remove(listener)

        return stop


BUS = Bus()


def emit(name: str, service: Optional[str] = None, **fields: Any) -> None:
    """Record an event and tell the listeners (see core/events.py for the names)."""
    BUS.emit(name, service, **fields)
