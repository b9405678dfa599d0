"""Probes: tcp/http probes against real sockets in a real loop (their targets are parsed
by core/addresses.py: tests/unit/test_addresses.py)."""

from __future__ import annotations

import errno
import socket
import time
from typing import Iterator, Optional

import pytest

from pyinit.core.addresses import parse_http, parse_tcp
from pyinit.runtime.loop import EventLoop
from pyinit.services import probes
from pyinit.services.probes import Probe

REQUEST = b"GET /health?x=1 HTTP/1.0\r\nHost: localhost:%d\r\nUser-Agent: pyinit\r\n"


# probing ------------------------------------------------------------------------
class Result:
    """Collects done() calls; truthy once one arrived."""

    def __init__(self) -> None:
        self.calls: list[tuple[bool, str]] = []

    def __call__(self, ok: bool, detail: str) -> None:
        self.calls.append((ok, detail))

    def __bool__(self) -> bool:
        return bool(self.calls)


class SkippingLoop(EventLoop):
    """A real loop whose clock the test can move on, so a timeout falls due at once."""

    def __init__(self) -> None:
        self.skipped = 0.0
        super().__init__(clock=lambda: time.monotonic() + self.skipped)

    def past(self, seconds: float) -> None:
        """Move the clock on and run until a marker due then has run: by then every fd
        already readable and every timer due before it has run too (the positive event
        that proves the window passed, instead of a fixed wait)."""
        self.skipped += seconds
        passed: list[bool] = []
        self.call_later(0, lambda: passed.append(True))
        assert self.run_until(lambda: bool(passed), timeout=5)


@pytest.fixture
def loop() -> SkippingLoop:
    return SkippingLoop()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


class Server:
    """A one-shot HTTP server driven by the same loop: reads the request, replies, closes."""

    def __init__(self, loop: EventLoop, sock: socket.socket, response: bytes) -> None:
        self.loop, self.sock, self.response = loop, sock, response
        self.request = bytearray()
        self.conn: Optional[socket.socket] = None
        loop.add_reader(sock.fileno(), self.accept)

    def accept(self) -> None:
        self.conn, _ = self.sock.accept()
        self.loop.remove(self.sock.fileno())
        self.loop.add_reader(self.conn.fileno(), self.read)

    def read(self) -> None:
        assert self.conn is not None
        data = self.conn.recv(65536)
        self.request += data
        if b"\r\n\r\n" in self.request or not data:
            self.loop.remove(self.conn.fileno())
            self.conn.setblocking(True)
            self.conn.sendall(self.response)
            self.conn.close()


def run(loop: SkippingLoop, kind: str, target: tuple, timeout: float = 3.0) -> tuple[bool, str]:
    result = Result()
    probe = Probe(loop, kind, target, timeout, result)
    probe.start()
    assert not result, "done() must not be called from inside start()"
    assert loop.run_until(lambda: bool(result), timeout=5)
    loop.past(timeout + 1)  # nothing further may arrive, not even at the timeout
    assert len(result.calls) == 1
    assert probe.sock is None and probe.timer is None
    return result.calls[0]


def free_port() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_tcp_connects(loop: EventLoop, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    assert run(loop, "tcp", parse_tcp(f"localhost:{port}")) == (True, "connected")


def test_tcp_refused(loop: EventLoop) -> None:
    assert run(loop, "tcp", parse_tcp(free_port())) == (False, "connection refused")


def test_http_ok_and_request_format(loop: EventLoop, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    server = Server(loop, listener, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    target = parse_http(f"http://localhost:{port}/health?x=1")
    assert run(loop, "http", target) == (True, "HTTP 200")
    assert bytes(server.request) == REQUEST % port + b"Connection: close\r\n\r\n"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (b"HTTP/1.0 204 No Content\r\n\r\n", (True, "HTTP 204")),
        (b"HTTP/1.1 302\r\n", (True, "HTTP 302")),
        (b"HTTP/1.1 399 Odd\n", (True, "HTTP 399")),
        (b"HTTP/1.1 503 Service Unavailable\r\n\r\n", (False, "HTTP 503")),
        (b"HTTP/1.1 404 Not Found\r\n\r\n", (False, "HTTP 404")),
        (b"HTTP/1.1 199 Early\r\n\r\n", (False, "HTTP 199")),
        (b"garbage\r\n", (False, "bad HTTP response")),
        (b"HTTP/1.1 2000 OK\r\n", (False, "bad HTTP response")),
        (b"X" * 5000, (False, "bad HTTP response")),
        (b"X" * 4095 + b"\n", (False, "bad HTTP response")),
        (b"HTTP/1.1 20", (False, "connection closed before an HTTP status line")),
        (b"", (False, "connection closed before an HTTP status line")),
    ],
)
def test_http_responses(
    loop: EventLoop, listener: socket.socket, response: bytes, expected: tuple[bool, str]
) -> None:
    Server(loop, listener, response)
    assert run(loop, "http", parse_http(f"http://127.0.0.1:{listener.getsockname()[1]}/")) == (
        expected
    )


def test_http_large_request_is_sent_in_pieces(
    loop: EventLoop, listener: socket.socket
) -> None:
    server = Server(loop, listener, b"HTTP/1.0 200 OK\r\n\r\n")
    path = "/" + "a" * (8 * 1024 * 1024)
    target = ("127.0.0.1", listener.getsockname()[1], path, "x")
    assert run(loop, "http", target, timeout=4) == (True, "HTTP 200")
    assert server.request.startswith(f"GET {path} HTTP/1.0\r\n".encode())


def test_http_refused(loop: EventLoop) -> None:
    target = parse_http(f"http://127.0.0.1:{free_port()}/")
    assert run(loop, "http", target) == (False, "connection refused")


def test_http_timeout_when_server_never_answers(
    loop: EventLoop, listener: socket.socket
) -> None:
    # The kernel completes the handshake from the backlog; nobody ever replies.
    target = parse_http(f"http://127.0.0.1:{listener.getsockname()[1]}/")
    assert run(loop, "http", target, timeout=0.2) == (False, "timed out after 0.2s")


def test_cancel_means_no_callback(loop: SkippingLoop, listener: socket.socket) -> None:
    for kind, target in [
        ("tcp", parse_tcp(listener.getsockname()[1])),
        ("http", parse_http(f"http://127.0.0.1:{listener.getsockname()[1]}/")),
        ("tcp", parse_tcp(free_port())),
    ]:
        result = Result()
        probe = Probe(loop, kind, target, 0.05, result)
        probe.start()
        probe.cancel()
        assert probe.sock is None and probe.timer is None
        loop.past(1.0)  # past the 0.05 s timeout
        assert not result


def test_cancel_while_waiting_for_reply(listener: socket.socket) -> None:
    # The probe's timeout falls due only when the test moves the loop's clock on: a
    # loaded machine cannot make it fire before the cancel (a real 0.3 s one could).
    skipped = [0.0]
    loop = EventLoop(clock=lambda: time.monotonic() + skipped[0])
    result = Result()
    probe = Probe(loop, "http", parse_http(f"http://127.0.0.1:{listener.getsockname()[1]}/"),
                  0.3, result)
    probe.start()
    conn: list[socket.socket] = []
    request = bytearray()

    def sent() -> bool:
        """The server side has the whole request."""
        if not conn:
            try:
                conn.append(listener.accept()[0])
            except BlockingIOError:
                return False
            conn[0].setblocking(False)
        try:
            request.extend(conn[0].recv(4096))
        except BlockingIOError:
            pass
        return b"\r\n\r\n" in request

    deadline = time.monotonic() + 5
    while not sent():  # connected and sent, no reply yet
        assert time.monotonic() < deadline, "the probe's request never arrived"
        loop.run_once(loop.clock() + 0.01)
    try:
        assert probe.sock is not None and not result
        probe.cancel()
        assert probe.sock is None and probe.timer is None
        skipped[0] += 1.0  # past the timeout
        conn[0].sendall(b"HTTP/1.0 200 OK\r\n\r\n")  # a reply, too late
        loop.run_once(loop.clock())
        assert not result
    finally:
        conn[0].close()


def test_socket_error_is_reported_from_the_loop(
    loop: EventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fds(*args: object) -> socket.socket:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(probes.socket, "socket", no_fds)
    assert run(loop, "tcp", ("127.0.0.1", 80)) == (False, "too many open files")


def test_unknown_kind() -> None:
    with pytest.raises(ValueError):
        Probe(EventLoop(), "udp", ("127.0.0.1", 1), 1.0, Result())
