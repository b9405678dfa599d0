"""Readiness and liveness probes: a TCP connect or an HTTP GET, run in the loop.

Everything is non-blocking: the socket, the send of the request and the read
of the status line (at most MAX_STATUS bytes). Targets come parsed by
core/addresses.py: hosts are IP literals, because a DNS lookup would block PID 1.
A probe reports exactly once through done(ok, detail), never from inside
start(), and never after cancel().
"""

from __future__ import annotations

import errno
import os
import re
import socket
from typing import Callable, Optional, Union

from pyinit.core.bounds import render
from pyinit.core.lines import LineTooLong, take_line
from pyinit.runtime.loop import EventLoop, Timer

MAX_STATUS = 4096  # bytes read while looking for the end of the status line
_STATUS = re.compile(rb"HTTP/[0-9]\.[0-9] ([0-9]{3})(?: .*)?")

Done = Callable[[bool, str], None]


# probing ----------------------------------------------------------------------
def _why(error: Union[int, OSError]) -> str:
    """A short lowercase reason, like "connection refused"."""
    text = os.strerror(error) if isinstance(error, int) else error.strerror or str(error)
    return text[:1].lower() + text[1:]


def _step(method: Callable[[Probe], None]) -> Callable[[Probe], None]:
    """A loop callback: a no-op once finished; an OSError ends the probe as a failure."""

    def step(self: Probe) -> None:
        if self.finished:
            return
        try:
            method(self)
        except BlockingIOError:
            pass  # not ready after all: stay registered and wait
        except OSError as exc:
            self._finish(False, _why(exc))

    step.__qualname__ = method.__qualname__
    return step


class Probe:
    """One attempt: connect (tcp), or connect and read an HTTP status line (http)."""

    def __init__(
        self, loop: EventLoop, kind: str, target: tuple, timeout: float, done: Done
    ) -> None:
        if kind not in ("tcp", "http"):
            raise ValueError(f"unknown probe kind {render(kind)}")
        self.loop, self.kind, self.target = loop, kind, target
        self.timeout, self.done = timeout, done
        self.sock: Optional[socket.socket] = None
        self.fd = -1
        self.timer: Optional[Timer] = None
        self.finished = False
        self.outbuf = b""
        self.inbuf = bytearray()

    def start(self) -> None:
        """Begin connecting; the result comes later, from the loop, through done()."""
        if self.finished or self.timer is not None:
            return
        self.timer = self.loop.call_later(self.timeout, self._timed_out)
        host, port = self.target[0], self.target[1]
        try:
            self.sock = socket.socket(
                socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM
            )
            self.fd = self.sock.fileno()
            self.sock.setblocking(False)
            err = self.sock.connect_ex((host, port))
            reason = _why(err)
        except OSError as exc:
            err, reason = -1, _why(exc)
        if err in (0, errno.EINPROGRESS):
            self.loop.add_writer(self.fd, self._connected)
            return
        self.timer.cancel()  # fail on the next loop turn, never inside start()
        self.timer = self.loop.call_later(0, lambda: self._finish(False, reason))

    def cancel(self) -> None:
        """Stop and close everything; done() will not be called."""
        self.finished = True
        self._close()

    def _timed_out(self) -> None:
        self.timer = None
        self._finish(False, f"timed out after {self.timeout:g}s")

    @_step
    def _connected(self) -> None:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._finish(False, _why(err))
        elif self.kind == "tcp":
            self._finish(True, "connected")
        else:
            _, _, path, host_header = self.target
            self.outbuf = (
                f"GET {path} HTTP/1.0\r\nHost: {host_header}\r\n"
                "User-Agent: pyinit\r\nConnection: close\r\n\r\n"
            ).encode()
            self.loop.add_writer(self.fd, self._send)
            self._send()

    @_step
    def _send(self) -> None:
        while self.outbuf:
            sent = self.sock.send(self.outbuf, socket.MSG_NOSIGNAL)
            self.outbuf = self.outbuf[sent:]
        self.loop.remove_writer(self.fd)
        self.loop.add_reader(self.fd, self._readable)

    @_step
    def _readable(self) -> None:
        data = self.sock.recv(MAX_STATUS - len(self.inbuf))
        if not data:
            self._finish(False, "connection closed before an HTTP status line")
            return
        self.inbuf += data
        try:  # the line and its newline within MAX_STATUS bytes
            line = take_line(self.inbuf, MAX_STATUS - 1)
        except LineTooLong:
            line = b""
        if line is None:
            return  # the status line is not complete yet
        match = _STATUS.fullmatch(line[:-1].rstrip(b"\r"))
        if match is None:
            self._finish(False, "bad HTTP response")
            return
        code = int(match.group(1))
        self._finish(200 <= code < 400, f"HTTP {code}")

    def _finish(self, ok: bool, detail: str) -> None:
        if self.finished:
            return
        self.finished = True
        self._close()
        self.done(ok, detail)

    def _close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.sock is not None:
            self.loop.remove(self.fd)
            self.sock.close()
            self.sock = None
