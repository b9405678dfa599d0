"""Failures that repeat: log the first, stay quiet while the same failure recurs, and say
when it is over; events that may come in floods: say how many, at most once per
interval. Pure: the caller logs what these methods return."""

from __future__ import annotations

from typing import Hashable, Optional


class Repeats:
    """The failure last logged per key (a service's run or log slot, ...)."""

    def __init__(self) -> None:
        self.last: dict[Hashable, str] = {}

    def failed(self, key: Hashable, message: str) -> bool:
        """Whether this failure is new for key (and so should be logged)."""
        if self.last.get(key) == message:
            return False
        self.last[key] = message
        return True

    def succeeded(self, key: Hashable) -> Optional[str]:
        """The failure that just ended for key, if one was logged."""
        return self.last.pop(key, None)


class Throttle:
    """Events of one kind (a refused connection, ...) that a client may cause at will:
    told at most once per interval, with the count since the last telling."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.count = 0  # events since the last telling
        self.told: Optional[float] = None  # when

    def event(self, now: float) -> int:
        """Count one event at now; how many to tell of now (0: stay quiet)."""
        self.count += 1
        if self.told is not None and now - self.told < self.interval:
            return 0
        count, self.count, self.told = self.count, 0, now
        return count
