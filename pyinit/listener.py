"""Accepting connections in the event loop, for the control socket and the health endpoint.

Non-blocking accepts until EAGAIN (at most `limit` per wake-up, so one busy
listener cannot starve the loop). Beyond `limit` open clients a new connection
is closed at once, with one warning until the count drops again. A listener
with `admit` hands that decision to it instead (the control socket's per-user
pools): admit(conn) is False when it refused conn (closed and logged it). When accept
fails for lack of fds (EMFILE/ENFILE) the listening socket stays readable, so
it is not watched for ACCEPT_PAUSE seconds instead of spinning on accept(); the
failure is logged once per outage, and once more when accepting works again.
"""

from __future__ import annotations

import socket
from typing import Callable

from pyinit import log
from pyinit.loop import EventLoop

ACCEPT_PAUSE = 0.5


class Listener:
    def __init__(self, loop: EventLoop, sock: socket.socket, name: str, limit: int,
                 open_clients: Callable[[], int],
                 on_accept: Callable[[socket.socket], None],
                 admit: Callable[[socket.socket], bool] | None = None) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.name = name
        self.limit = limit
        self.open_clients = open_clients
        self.on_accept = on_accept
        self.admit = admit
        self.refusing = False
        self.failing = False  # accept() failed and has not succeeded since
        self.closed = False
        sock.setblocking(False)
        loop.add_reader(self.fd, self.accept)

    def accept(self) -> None:
        for _ in range(self.limit):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if not self.failing:
                    log.warning(f"{self.name}: accept failed: {exc.strerror}; "
                                f"pausing accepts for {ACCEPT_PAUSE:g}s at a time until it works")
                self.failing = True
                self.loop.remove(self.fd)
                self.loop.call_later(ACCEPT_PAUSE, self.resume)
                return
            if self.failing:
                self.failing = False
                log.warning(f"{self.name}: accepting connections again")
            if self.admit is not None:
                if not self.admit(conn):
                    continue  # refused, closed and logged by admit
            elif self.open_clients() >= self.limit:
                if not self.refusing:
                    log.warning(f"{self.name}: more than {self.limit} clients, refusing")
                self.refusing = True
                conn.close()
                continue
            self.refusing = False
            conn.setblocking(False)
            self.on_accept(conn)

    def resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.fd, self.accept)

    def close(self) -> None:
        self.closed = True
        self.loop.remove(self.fd)
        self.sock.close()
