"""The health probe server, in-process: a real HealthServer on 127.0.0.1 port 0 driven by
an EventLoop, with non-blocking client sockets read by the same loop."""

from __future__ import annotations

import json
import socket
import time

import pytest

from pyinit.control import health
from pyinit.control.health import MAX_HEAD, HealthServer
from pyinit.runtime.loop import EventLoop


class Peer:
    """A client connection whose incoming bytes are collected by the loop."""

    def __init__(self, loop: EventLoop, address: tuple[str, int], data: bytes = b"",
                 read: bool = True, rcvbuf: int | None = None,
                 source: str | None = None) -> None:
        self.loop = loop
        self.sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET)
        if source is not None:
            self.sock.bind((source, 0))
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect(address)
        if data:
            self.sock.sendall(data)
        self.sock.setblocking(False)
        self.buf = bytearray()
        self.eof = False
        if read:
            loop.add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self.loop.remove(self.sock.fileno())
        self.buf += data

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove(self.sock.fileno())
        self.sock.close()


class Env:
    def __init__(self) -> None:
        self.skipped = 0.0  # the loop's clock runs this far ahead of time.monotonic()
        self.loop = EventLoop(clock=lambda: time.monotonic() + self.skipped)
        self.is_ready = False
        self.state: object = {"services": {"web": "running"}, "uptime": 1.5}
        self.server = HealthServer(self.loop, "127.0.0.1", 0, self.ready, self.status)
        self.peers: list[Peer] = []

    def ready(self) -> bool:
        return self.is_ready

    def status(self) -> dict:
        if isinstance(self.state, Exception):
            raise self.state
        return self.state  # type: ignore[return-value]

    def connect(self, data: bytes = b"", **kw) -> Peer:
        peer = Peer(self.loop, self.server.address, data, **kw)
        self.peers.append(peer)
        return peer

    def skip(self, seconds: float) -> None:
        """Move the loop's clock on: timers fall due without the test waiting (or racing)."""
        self.skipped += seconds

    def until(self, cond, timeout: float = 5.0) -> None:
        assert self.loop.run_until(cond, timeout), "timed out"

    def request(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        peer = self.connect(raw)
        self.until(lambda: peer.eof)
        peer.close()  # as a probe does: the server lingers until then
        return parse_response(bytes(peer.buf))

    def get(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        return self.request(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    def idle(self) -> bool:
        """No client left and no timer pending: the server costs nothing."""
        return not self.server.clients and self.loop._next_timeout(None) is None


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {raw!r}"
    status, *lines = head.decode("latin-1").split("\r\n")
    version, code, reason = status.split(" ", 2)
    assert version in ("HTTP/1.0", "HTTP/1.1") and reason
    headers = dict(line.split(": ", 1) for line in lines)
    assert headers["Connection"] == "close"
    assert "Content-Type" in headers and "Content-Length" in headers
    return int(code), headers, body


@pytest.fixture
def env():
    env = Env()
    yield env
    for peer in env.peers:
        peer.close()
    env.server.close()


# --- paths and status codes -------------------------------------------------------------
def test_healthz(env) -> None:
    code, headers, body = env.get("/healthz")
    assert (code, body) == (200, b"ok\n")
    assert headers["Content-Length"] == "3"
    assert headers["Content-Type"].startswith("text/plain")
    env.until(env.idle)


def test_readyz_follows_the_callback(env) -> None:
    assert env.get("/readyz")[::2] == (503, b"not ready\n")
    env.is_ready = True
    assert env.get("/readyz")[::2] == (200, b"ready\n")


def test_status_is_compact_json(env) -> None:
    code, headers, body = env.get("/status")
    assert code == 200
    assert headers["Content-Type"] == "application/json"
    assert body == b'{"services":{"web":"running"},"uptime":1.5}\n'
    assert json.loads(body) == env.state


def test_head_has_the_headers_without_body(env) -> None:
    code, headers, body = env.get("/healthz", method="HEAD")
    assert (code, headers["Content-Length"], body) == (200, "3", b"")
    code, headers, body = env.get("/status", method="HEAD")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0


def test_query_string_is_ignored_and_bare_newlines_end_the_head(env) -> None:
    env.is_ready = True
    assert env.get("/readyz?verbose=1&x")[::2] == (200, b"ready\n")
    assert env.request(b"GET /healthz HTTP/1.0\n\n")[::2] == (200, b"ok\n")


@pytest.mark.parametrize("path", ["/", "/healthz/", "/HEALTHZ", "/statusx", "*"])
def test_other_paths_are_404(env, path) -> None:
    assert env.get(path)[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "get"])
def test_other_methods_are_405_with_allow(env, method) -> None:
    code, headers, _ = env.get("/healthz", method=method)
    assert code == 405
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("raw", [
    b"\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /healthz\r\n\r\n",
    b"GET  /healthz HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/2\r\n\r\n",
    b"GET /health\xffz HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/1.1 extra\r\n\r\n",
])
def test_malformed_request_line_is_400(env, raw) -> None:
    code, _, body = env.request(raw)
    assert code == 400 and body == b"bad request\n"


def test_oversized_head_is_431(env) -> None:
    raw = b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * MAX_HEAD
    assert env.request(raw)[0] == 431  # never terminated
    assert env.request(raw + b"\r\n\r\n")[0] == 431  # terminated too late
    env.until(env.idle)


def test_head_of_exactly_the_limit_is_served(env) -> None:
    start = b"GET /healthz HTTP/1.1\r\nX-Pad: "
    raw = start + b"a" * (MAX_HEAD - len(start) - 4) + b"\r\n\r\n"
    assert len(raw) == MAX_HEAD
    assert env.request(raw)[::2] == (200, b"ok\n")


def test_request_split_over_writes_and_half_closed_client(env) -> None:
    peer = env.connect(b"GET /hea")
    env.loop.run_once(env.loop.clock() + 0.05)
    assert peer.buf == b"" and not peer.eof
    peer.sock.send(b"lthz HTTP/1.1\r\n\r\n")
    peer.sock.shutdown(socket.SHUT_WR)
    env.until(lambda: peer.eof)
    assert parse_response(bytes(peer.buf))[::2] == (200, b"ok\n")


# --- failures ---------------------------------------------------------------------------
def test_callback_errors_are_500_and_the_server_goes_on(env, capfd) -> None:
    env.state = RuntimeError("status is broken")
    assert env.get("/status")[::2] == (500, b"internal error\n")
    err = capfd.readouterr().err
    assert "internal error in health server, /status" in err and "status is broken" in err
    env.state = {"unserialisable": object()}
    assert env.get("/status")[0] == 500
    env.state = {"ok": True}
    assert env.get("/healthz")[0] == 200
    assert env.get("/status")[2] == b'{"ok":true}\n'
    env.server.ready = lambda: 1 / 0
    assert env.get("/readyz")[0] == 500


def test_slow_client_is_closed_after_the_timeout(env, monkeypatch) -> None:
    monkeypatch.setattr(health, "CLIENT_TIMEOUT", 3600.0)  # due only by env.skip()
    silent = env.connect()
    partial = env.connect(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    env.until(lambda: len(env.server.clients) == 2)
    env.skip(health.CLIENT_TIMEOUT / 2)
    env.loop.run_once(env.loop.clock())  # nothing is due yet
    assert len(env.server.clients) == 2 and not silent.eof and not partial.eof
    env.skip(health.CLIENT_TIMEOUT / 2)
    env.until(lambda: silent.eof and partial.eof)
    assert silent.buf == b"" and partial.buf == b""
    assert env.idle()
    lingering = env.connect(b"GET /healthz HTTP/1.1\r\n\r\n")  # reads, never closes
    env.until(lambda: lingering.eof)
    assert parse_response(bytes(lingering.buf))[0] == 200
    assert len(env.server.clients) == 1  # the server lingers for the client's close...
    env.skip(health.CLIENT_TIMEOUT)
    env.until(env.idle)  # ...but not beyond the timeout


def test_client_that_does_not_read_cannot_block_the_server(env, monkeypatch) -> None:
    # The timeout falls due only by env.skip(): however loaded the machine, it cannot drop
    # the hog before the probe is served (with a real 0.3 s it could, and then the wait
    # for the hog's unsent reply timed out).
    monkeypatch.setattr(health, "CLIENT_TIMEOUT", 3600.0)
    env.state = {"blob": "x" * (8 << 20)}
    hog = env.connect(b"GET /status HTTP/1.1\r\n\r\n", read=False, rcvbuf=4096)
    env.until(lambda: len(env.server.clients) == 1)
    (stuck,) = env.server.clients
    env.until(lambda: bool(stuck.outbuf))
    env.state = {}
    assert env.get("/healthz")[0] == 200  # served while the hog is stuck
    env.until(lambda: env.server.clients == {stuck})  # the probe's connection is closed
    assert stuck.outbuf and not stuck.closed  # the hog: still stuck, still there
    env.skip(health.CLIENT_TIMEOUT)
    env.until(env.idle)  # the timeout drops it
    hog.close()


def test_when_full_probes_still_get_through_from_a_new_address(env, capfd) -> None:
    """Peers with many addresses holding every connection cannot keep the kubelet
    out: each new connection takes the place of the oldest of the busiest address."""
    idle = []
    for i in range(health.MAX_CLIENTS):  # from several addresses: MAX_PER_PEER each
        idle.append(env.connect(source=f"127.0.0.{2 + i // health.MAX_PER_PEER}"))
        env.loop.run_once(env.loop.clock())  # accept as we go: the backlog stays small
    env.until(lambda: len(env.server.clients) == health.MAX_CLIENTS)
    probes = []
    for _ in range(10):
        probes.append(env.connect(b"GET /healthz HTTP/1.1\r\n\r\n", source="127.0.0.99"))
        env.loop.run_once(env.loop.clock())
    env.until(lambda: all(peer.eof for peer in probes))
    assert all(parse_response(bytes(peer.buf))[0] == 200 for peer in probes)
    assert len(env.server.clients) <= health.MAX_CLIENTS
    env.until(lambda: sum(peer.eof for peer in idle) >= 1)
    assert all(peer.buf == b"" for peer in idle)
    err = capfd.readouterr().err
    assert err.count("to make room") == 1, err  # at most once a minute
    assert f"health server: {health.MAX_CLIENTS} clients connected: closed 1 connection" in err
    for peer in idle + probes:
        peer.close()
    env.until(lambda: not env.server.clients)
    assert env.get("/healthz")[0] == 200
    env.until(env.idle)


def test_a_probe_not_yet_sent_survives_a_flood_from_new_addresses(env) -> None:
    """The kubelet's connection, alone from its address and the youngest, is not the
    one that makes room while others keep connecting from fresh addresses."""
    hogs = []
    for i in range(health.MAX_CLIENTS):
        hogs.append(env.connect(source=f"127.0.1.{2 + i // health.MAX_PER_PEER}"))
        env.loop.run_once(env.loop.clock())
    env.until(lambda: len(env.server.clients) == health.MAX_CLIENTS)
    probe = env.connect(source="127.0.0.8")
    env.until(lambda: any(c.peer == "127.0.0.8" for c in env.server.clients))
    flood = health.MAX_CLIENTS - 2  # all but one of the older connections make room
    for i in range(flood):  # a new address each time
        hogs.append(env.connect(source=f"127.0.2.{2 + i}"))
        env.loop.run_once(env.loop.clock())
    env.until(lambda: sum(peer.eof for peer in hogs) == flood + 1)
    assert not probe.eof
    probe.sock.send(b"GET /healthz HTTP/1.1\r\n\r\n")
    env.until(lambda: probe.eof)
    assert parse_response(bytes(probe.buf))[0] == 200
    for peer in hogs:
        peer.close()


def test_one_address_cannot_take_every_connection(env, capfd) -> None:
    """A peer holding connections gets MAX_PER_PEER; the kubelet, from another
    address, is still answered."""
    hog = []
    for _ in range(health.MAX_PER_PEER + 5):
        hog.append(env.connect(source="127.0.0.7"))
        env.loop.run_once(env.loop.clock())
    env.until(lambda: sum(p.eof for p in hog) == 5)
    assert len(env.server.clients) == health.MAX_PER_PEER
    assert f"{health.MAX_PER_PEER} connections from one address" in capfd.readouterr().err
    probe = env.connect(b"GET /healthz HTTP/1.1\r\n\r\n", source="127.0.0.8")
    env.until(lambda: probe.eof)
    assert parse_response(bytes(probe.buf))[0] == 200
    for peer in hog:
        peer.close()
    env.until(env.idle)


def test_close_drops_clients_and_the_port(env) -> None:
    peer = env.connect()
    env.until(lambda: len(env.server.clients) == 1)
    env.server.close()
    env.server.close()
    env.until(lambda: peer.eof)
    with pytest.raises(OSError):
        socket.create_connection(env.server.address, timeout=1).close()


def test_bind_failure_raises_oserror(env) -> None:
    host, port = env.server.address
    with pytest.raises(OSError):
        HealthServer(env.loop, host, port, env.ready, env.status)
    with pytest.raises(OSError):
        HealthServer(env.loop, "192.0.2.1", 0, env.ready, env.status)  # not ours


def test_ipv6_loopback() -> None:
    loop = EventLoop()
    try:
        server = HealthServer(loop, "::1", 0, lambda: True, dict)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert server.address[0] == "::1"
        peer = Peer(loop, server.address, b"GET /readyz HTTP/1.0\r\n\r\n")
        assert loop.run_until(lambda: peer.eof, 5)
        assert parse_response(bytes(peer.buf))[::2] == (200, b"ready\n")
        peer.close()
    finally:
        server.close()
