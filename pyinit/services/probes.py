"""Readiness and liveness probes: a TCP connect or an HTTP GET, run in the loop.

Everything is non-blocking: the socket, the send of the request and the read
of the status line (at most MAX_STATUS bytes). Hosts must be IP literals or
localhost, because a DNS lookup would block PID 1. A probe reports exactly once
through done(ok, detail), never from inside start(), and never after cancel().
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
from typing import Any, Callable, Optional, Union

from pyinit.core.bounds import is_number, render, small_number
from pyinit.core.protocol import LineTooLong, take_line
from pyinit.runtime.loop import EventLoop, Timer

MAX_STATUS = 4096  # bytes read while looking for the end of the status line
DEFAULT_HOST = "127.0.0.1"
_STATUS = re.compile(rb"HTTP/[0-9]\.[0-9] ([0-9]{3})(?: .*)?")

Done = Callable[[bool, str], None]


# parsing ----------------------------------------------------------------------
def _port(text: str) -> int:
    port = small_number(text, 65535)
    if not port:
        raise ValueError(f"port {render(text)} must be a number from 1 to 65535")
    return port


def _host(text: str, bracketed: bool) -> str:
    """An IP literal as a connectable string; localhost is 127.0.0.1."""
    if not bracketed and text.lower() == "localhost":
        return DEFAULT_HOST
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is None or "%" in text:  # a zone id could smuggle anything into the Host header
        raise ValueError(
            f"host {render(text)} must be an IP address or localhost (pyinit does no DNS lookups)"
        )
    if bracketed and ip.version != 6:
        raise ValueError(f"only IPv6 addresses go in brackets, not {render(text)}")
    return str(ip)


def _address(text: str, default_port: Optional[int]) -> tuple[str, int]:
    """Split HOST[:PORT] or [V6][:PORT]; the port is required without a default."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{render(text)}: expected [IPV6-ADDRESS]:PORT")
        port = rest[1:] if rest else None
        host = _host(host, bracketed=True)
    else:
        host, colon, port = text.rpartition(":")
        if not colon:
            host, port = text, None
        if ":" in host:
            raise ValueError("write IPv6 addresses in brackets, as [ADDRESS]:PORT")
        host = _host(host, bracketed=False)
    if port is None and default_port is None:
        raise ValueError(f"{render(text)} has no port; expected PORT, HOST:PORT or [IPV6]:PORT")
    return host, default_port if port is None else _port(port)


def parse_tcp(value: Any) -> tuple[str, int]:
    """(host, port) from a port number or "PORT", "HOST:PORT", "[V6]:PORT"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return DEFAULT_HOST, _port(str(value))
    if not isinstance(value, str):
        raise ValueError("a tcp probe is a port number or a string PORT, HOST:PORT or [IPV6]:PORT")
    if is_number(value):
        return DEFAULT_HOST, _port(value)
    return _address(value, None)


def parse_http(url: Any) -> tuple[str, int, str, str]:
    """(host, port, path, host_header) from "http://HOST[:PORT][/path][?query]"."""
    if not isinstance(url, str):
        raise ValueError("an http probe is a URL string, like http://127.0.0.1:8080/health")
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() == "https":
        raise ValueError("https probes are not supported; use http:// (or a tcp probe)")
    if not sep or scheme.lower() != "http":
        raise ValueError(f"{render(url)} must start with http://")
    rest = rest.partition("#")[0]
    authority, path = re.fullmatch(r"([^/?]*)(.*)", rest, re.DOTALL).groups()
    if not authority or "@" in authority:
        raise ValueError(f"{render(url)}: expected http://HOST[:PORT][/PATH]")
    if any(c <= " " or c >= "\x7f" for c in path):
        raise ValueError("the URL path must be ASCII without spaces or control characters")
    host, port = _address(authority, 80)
    return host, port, path if path.startswith("/") else "/" + path, authority


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
