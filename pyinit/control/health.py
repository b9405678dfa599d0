"""An optional tiny HTTP server for Kubernetes httpGet probes (`--health-listen ADDR:PORT`).

GET or HEAD /healthz (200 while pyinit runs), /readyz (200 or 503, from ready()),
/status (status() as JSON) and /metrics (metrics(), Prometheus's text format,
core/metrics.py); a query string is ignored, other paths get 404,
other methods 405. Only the request line is read; the head must end within
MAX_HEAD bytes (else 431). Like the control socket it never blocks: sockets are
non-blocking, a reply is written from a buffer, the connection is closed after
it, and any connection is dropped CLIENT_TIMEOUT seconds after it was accepted,
whatever it is doing. Beyond MAX_PER_PEER connections from one source address, a
new one is accepted and closed at once. When all MAX_CLIENTS are taken, a new
connection makes room (listener.admit, with _limits): a connection already
answered (only waiting for its client to close) goes first, else the oldest of
the address holding the most connections. A probe sends its request within
milliseconds of connecting, so peers holding connections open, from however many
addresses, cannot keep it out. Refusals and evictions are logged at most once a
minute. While no client is connected it costs one listening fd, no timer.
"""

from __future__ import annotations

import json
import re
import socket
from typing import Callable, Optional

from pyinit.control.listener import PER_KEY, Caller, Limits, Listener
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop

MAX_HEAD = 8192
MAX_CLIENTS = 64
MAX_PER_PEER = 16  # connections from one source address
CLIENT_TIMEOUT = 5.0  # a connection's whole life: request, reply and close
BACKLOG = 16
TEXT = "text/plain; charset=utf-8"
METRICS = "text/plain; version=0.0.4; charset=utf-8"
_END = re.compile(rb"\r?\n\r?\n")
_LINE = re.compile(r"([A-Za-z0-9!#$%&'*+.^_`|~-]+) ([\x21-\x7e]+) HTTP/[0-9]\.[0-9]")
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_PATHS = ("/healthz", "/readyz", "/status", "/metrics")


class HealthServer:
    """Serve probes on host:port from loop; raises OSError if it cannot bind."""

    def __init__(
        self,
        loop: EventLoop,
        host: str,
        port: int,
        ready: Callable[[], bool],
        status: Callable[[], dict],
        metrics: Optional[Callable[[], str]] = None,
    ) -> None:
        self.loop = loop
        self.ready = ready
        self.status = status
        self.metrics = metrics
        self.clients: set[_Client] = set()
        self.closed = False
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
        bound_host, bound_port = sock.getsockname()[:2]
        self.address: tuple[str, int] = (bound_host, bound_port)
        self.listener = Listener(
            loop,
            sock,
            "health server",
            MAX_CLIENTS,
            limits=_limits,
            seats=lambda: self.clients,
            key_of=_caller,
            on_accept=self.add_client,
            refuse=self.refuse,
            evict=lambda client: client.close(),
        )

    def add_client(self, conn: socket.socket, caller: Caller) -> None:
        self.clients.add(_Client(self, conn, caller))

    def refuse(self, conn: socket.socket, caller: Caller, kind: str) -> str:
        """Why conn is refused (it is closed without a word)."""
        if kind == PER_KEY:
            return f"{MAX_PER_PEER} connections from one address"
        return f"{MAX_CLIENTS} clients connected"  # not reached: newcomers make room

    def answer(self, method: str, path: str) -> tuple[int, str, str]:
        """(status code, content type, body) for a well-formed request."""
        if path not in _PATHS or (path == "/metrics" and self.metrics is None):
            return 404, TEXT, "not found\n"
        if method not in ("GET", "HEAD"):
            return 405, TEXT, "method not allowed\n"
        try:
            if path == "/readyz":
                return (200, TEXT, "ready\n") if self.ready() else (503, TEXT, "not ready\n")
            if path == "/status":
                body = json.dumps(self.status(), separators=(",", ":"))
                return 200, "application/json", body + "\n"
            if path == "/metrics" and self.metrics is not None:
                return 200, METRICS, self.metrics()
        except Exception:
            log.bug(f"health server, {path}")
            return 500, TEXT, "internal error\n"
        return 200, TEXT, "ok\n"

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for client in list(self.clients):
            client.close()
        self.listener.close()


def _caller(conn: socket.socket) -> Caller:
    """Who connected: admitted by source address (an OSError: gone already)."""
    return Caller(conn.getpeername()[0])


def _limits() -> Limits:
    """The caps, read at each accept (so a test can lower them)."""
    return Limits(MAX_CLIENTS, MAX_PER_PEER, newcomers_evict=True, busiest_first=True)


class _Client:
    def __init__(self, server: HealthServer, sock: socket.socket, caller: Caller) -> None:
        self.server = server
        self.loop = server.loop
        self.caller = caller
        self.peer: str = caller.key
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.answered = False
        self.eof = False
        self.closed = False
        self.timer = self.loop.call_later(CLIENT_TIMEOUT, self.close)
        self.loop.add_reader(self.fd, self.readable)

    @property
    def done(self) -> bool:
        """For admission: answered, only waiting for its client to close."""
        return self.answered

    def readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if self.outbuf:  # half-closed by the client: finish the reply first
                self.eof = True
                self.loop.remove(self.fd)
                self.loop.add_writer(self.fd, self.flush)
            else:
                self.close()
            return
        if self.answered:
            return  # discard the rest, so that closing does not reset the connection
        self.inbuf += data
        end = _END.search(self.inbuf)
        if end is not None and end.end() <= MAX_HEAD:
            line = bytes(self.inbuf[: end.start()]).split(b"\n", 1)[0].rstrip(b"\r")
            match = _LINE.fullmatch(line.decode("latin-1"))
            if match is None:
                self.reply(400, TEXT, "bad request\n")
            else:
                method, path = match.group(1), match.group(2).split("?", 1)[0]
                self.reply(*self.server.answer(method, path), head_only=method == "HEAD")
        elif len(self.inbuf) > MAX_HEAD:
            self.reply(431, TEXT, "request head too large\n")

    def reply(self, code: int, ctype: str, body: str, head_only: bool = False) -> None:
        self.answered = True
        self.inbuf = bytearray()
        data = body.encode("utf-8", "replace")
        allow = "Allow: GET, HEAD\r\n" if code == 405 else ""
        head = (
            f"HTTP/1.0 {code} {_REASONS[code]}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(data)}\r\n{allow}Cache-Control: no-store\r\n"
            "Connection: close\r\n\r\n"
        )
        self.outbuf = bytearray(head.encode() + (b"" if head_only else data))
        self.flush()

    def flush(self) -> None:
        while self.outbuf:
            try:
                sent = self.sock.send(self.outbuf, socket.MSG_NOSIGNAL)
            except BlockingIOError:
                self.loop.add_writer(self.fd, self.flush)
                return
            except OSError:
                self.close()
                return
            del self.outbuf[:sent]
        self.loop.remove_writer(self.fd)
        if self.eof:
            self.close()
            return
        try:  # send FIN, then read until the client closes (or the timer fires)
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        self.loop.remove(self.fd)
        self.server.clients.discard(self)
        self.sock.close()
