"""Writing service lines to the container's stdout or stderr without ever blocking PID 1.

fd 1 and fd 2 are shared with processes that expect them to block, so pyinit
writes through a private non-blocking description of the same pipe or terminal
(log.nonblocking_writer). Lines wait in one queue per destination, in arrival
order; each source (service) may have at most `limit` bytes waiting. Beyond
that its new lines are dropped and counted, with one warning when dropping
starts and one when it ends; other services and the loop are not held up.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Callable, Optional

from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop

LIMIT = 1024 * 1024  # bytes a service may have waiting per destination
CHUNK = 1024 * 1024  # most bytes handed to one write()

Writer = Callable[[bytes], int]


class Sink:
    """One destination (the container's stdout or stderr) with a bounded queue."""

    def __init__(self, loop: EventLoop, fd: int, limit: int = LIMIT) -> None:
        self.loop = loop
        self.fd = fd
        self.limit = limit
        self.write, self.poll_fd = log.nonblocking_writer(fd)
        self.buffer = bytearray()
        self.owners: deque[list] = deque()  # [source, bytes of it still in buffer], in order
        self.pending: dict[str, int] = {}  # source -> bytes waiting
        self.dropped: dict[str, int] = {}  # source -> bytes dropped, ever
        self.dropping: set[str] = set()
        self.waiting = False  # registered for writability
        self.broken: Optional[str] = None  # the destination failed for good (EPIPE)

    def put(self, source: str, data: bytes) -> None:
        """Queue data (whole lines) from source, or drop and count it."""
        if self.broken is not None:
            self.dropped[source] = self.dropped.get(source, 0) + len(data)
            return
        waiting = self.pending.get(source, 0)
        if waiting and waiting + len(data) > self.limit:  # one block always gets a chance
            self.dropped[source] = self.dropped.get(source, 0) + len(data)
            if source not in self.dropping:
                self.dropping.add(source)
                log.warning(f"output is not being read fast enough: dropping lines "
                            f"(limit {self.limit} bytes waiting)", source)
            return
        self.buffer += data
        self.pending[source] = self.pending.get(source, 0) + len(data)
        if self.owners and self.owners[-1][0] == source:
            self.owners[-1][1] += len(data)
        else:
            self.owners.append([source, len(data)])
        if not self.waiting:
            self.flush()

    def flush(self) -> None:
        """Write what the destination takes now; wait for writability for the rest."""
        while self.buffer:
            try:
                n = self.write(bytes(self.buffer[:CHUNK]))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # EPIPE: nobody will ever read; drop it all from now on
                self.broken = exc.strerror or str(exc)
                self.discard(f"cannot write: {self.broken}; dropping service output to it")
                return
            self.consume(n)
        self.set_waiting(bool(self.buffer))

    def consume(self, n: int) -> None:
        del self.buffer[:n]
        while n and self.owners:
            owner = self.owners[0]
            take = min(n, owner[1])
            owner[1] -= take
            n -= take
            self.pending[owner[0]] -= take
            if owner[1] == 0:
                self.owners.popleft()
                self.caught_up(owner[0])

    def caught_up(self, source: str) -> None:
        if source in self.dropping and self.pending.get(source, 0) <= self.limit // 2:
            self.dropping.discard(source)
            log.warning(f"output flowing again; {self.dropped[source]} bytes dropped so far",
                        source)

    def discard(self, why: str) -> None:
        for source, count in self.pending.items():
            if count:
                self.dropped[source] = self.dropped.get(source, 0) + count
        log.warning(f"service output to fd {self.fd} lost: {why}")
        self.buffer.clear()
        self.owners.clear()
        self.pending = {source: 0 for source in self.pending}
        self.set_waiting(False)

    def set_waiting(self, wanted: bool) -> None:
        if wanted == self.waiting or self.poll_fd is None:
            return
        self.waiting = wanted
        if wanted:
            self.loop.add_writer(self.poll_fd, self.flush)
        else:
            self.loop.remove_writer(self.poll_fd)

    def empty(self) -> bool:
        return not self.buffer

    def close(self) -> None:
        self.set_waiting(False)


def sinks(loop: EventLoop) -> dict[str, Optional[Sink]]:
    """The container's stdout and stderr, for services in prefix mode."""
    out: dict[str, Optional[Sink]] = {}
    for name, fd in (("stdout", 1), ("stderr", 2)):
        try:
            os.fstat(fd)
            out[name] = Sink(loop, fd)
        except OSError:
            out[name] = None  # closed: lines to it are dropped
    return out
