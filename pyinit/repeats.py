"""Failures that repeat: log the first, stay quiet while the same failure recurs, and say
when it is over. Pure: the caller logs what these methods return."""

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
