"""The one event loop: a selector over fds plus a heap of timers, no periodic tick.

Idle means blocked in select() with no timeout. Every callback is guarded: an
exception is logged with its traceback and the loop goes on, because PID 1 must
never die of a bug in one handler.
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import time
from typing import Callable

from pyinit.runtime import log

# The longest single wait: epoll_wait's timeout is an int of milliseconds (24.8 days);
# a timer further away (a services-ready timeout of a year) is reached in such turns.
MAX_WAIT = (2**31 - 1) / 1000 - 1

Callback = Callable[[], None]


class Timer:
    """A handle for a scheduled call; cancel() makes it a no-op."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class EventLoop:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self.wakeups = 0

    # fds -------------------------------------------------------------------
    def add_reader(self, fd: int, callback: Callback) -> None:
        self._selector.register(fd, selectors.EVENT_READ, (callback, None))

    def add_writer(self, fd: int, callback: Callback) -> None:
        self._set(fd, write=callback)

    def remove_writer(self, fd: int) -> None:
        self._set(fd, write=None)

    def remove(self, fd: int) -> None:
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def _set(self, fd: int, write: Callback | None) -> None:
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            if write is not None:
                self._selector.register(fd, selectors.EVENT_WRITE, (None, write))
            return
        reader = key.data[0]
        events = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if write else 0)
        if events:
            self._selector.modify(fd, events, (reader, write))
        else:
            self._selector.unregister(fd)

    # timers ----------------------------------------------------------------
    def call_at(self, when: float, callback: Callback) -> Timer:
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def call_later(self, delay: float, callback: Callback) -> Timer:
        return self.call_at(self.clock() + delay, callback)

    def _next_timeout(self, deadline: float | None) -> float | None:
        """Seconds to wait for the nearest timer or the deadline, at most MAX_WAIT
        (epoll takes an int of milliseconds: a later timer is waited for in turns)."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        nearest = self._timers[0][0] if self._timers else None
        if deadline is not None and (nearest is None or deadline < nearest):
            nearest = deadline
        if nearest is None:
            return None
        return min(MAX_WAIT, max(0.0, nearest - self.clock()))

    # running ---------------------------------------------------------------
    def run_once(self, deadline: float | None = None) -> None:
        """Wait for the next fd event, due timer or the deadline, and dispatch."""
        timeout = self._next_timeout(deadline)
        events = self._selector.select(timeout)
        self.wakeups += 1
        for key, mask in events:
            current = self._selector.get_map().get(key.fd)
            if current is None:
                continue  # removed by an earlier callback of this batch
            reader, writer = current.data
            if mask & selectors.EVENT_READ and reader:
                _guarded(reader)
            if mask & selectors.EVENT_WRITE and writer:
                _guarded(writer)
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.cancelled = True
                _guarded(timer.callback)

    def run_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Dispatch events until done() is true (True) or timeout seconds pass (False)."""
        deadline = None if timeout is None else self.clock() + timeout
        while not done():
            if deadline is not None and self.clock() >= deadline:
                return False
            self.run_once(deadline)
        return True


def _guarded(callback: Callback) -> None:
    try:
        callback()
    except Exception:
        log.bug(getattr(callback, "__qualname__", repr(callback)))
