"""The control socket server, in-process: a real Server on a temp socket driven by an
EventLoop, with clients that misbehave. The loop must never block on any of them."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from pyinit.control import listener as listener_module
from pyinit.control import protocol
from pyinit.control import server as control
from pyinit.control.server import MAX_PENDING, MAX_REQUEST, Server
from pyinit.core.protocol import ProtocolError
from pyinit.runtime.loop import EventLoop


class Peer:
    """A client socket whose incoming bytes are collected by the same loop."""

    def __init__(
        self, loop: EventLoop, path: str, rcvbuf: int | None = None, read: bool = True
    ) -> None:
        self.loop = loop
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(path)
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
            return
        self.buf += data

    def send(self, data: bytes, timeout: float = 5.0) -> None:
        """Send everything, letting the server run whenever the socket is full."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                sent = self.sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                assert time.monotonic() < deadline, "the server stopped reading"
                self.loop.run_once(time.monotonic() + 0.05)

    def replies(self) -> list[dict]:
        lines = bytes(self.buf).split(b"\n")
        return [json.loads(line) for line in lines if line]

    def close(self) -> None:
        self.loop.remove(self.sock.fileno())
        self.sock.close()


def handler(client: control.Client, req: dict) -> None:
    if req["cmd"] == "ping":
        client.send(
            {"ok": True, "uid": client.uid, "pid": client.pid, "privileged": client.privileged}
        )
    elif req["cmd"] == "big":
        client.send({"ok": True, "blob": "x" * 65536})
    elif req["cmd"] == "huge":  # more than a client may leave unread: dropped at once
        client.send({"ok": True, "blob": "x" * (MAX_PENDING + 1)})
    elif req["cmd"] == "crash":
        raise RuntimeError("a bug in a handler")
    else:
        raise ProtocolError(f"unknown command {req['cmd']!r}")


@pytest.fixture
def server(tmp_path: Path):
    loop = EventLoop()
    path = str(tmp_path / "control.sock")
    srv = Server(loop, path, handler)
    peers: list[Peer] = []

    def connect(**kw) -> Peer:
        peer = Peer(loop, path, **kw)
        peers.append(peer)
        return peer

    yield loop, srv, connect
    for peer in peers:
        peer.close()
    srv.close()


def until(loop: EventLoop, cond, timeout: float = 5.0) -> None:
    assert loop.run_until(cond, timeout), "timed out"


def ask(loop: EventLoop, peer: Peer, line: bytes, n: int = 1) -> list[dict]:
    before = len(peer.replies())
    peer.send(line)
    until(loop, lambda: len(peer.replies()) >= before + n or peer.eof)
    return peer.replies()[before:]


# --- requests ------------------------------------------------------------------------------
def test_valid_request_gets_a_versioned_reply_with_peer_credentials(server) -> None:
    loop, srv, connect = server
    peer = connect()
    [reply] = ask(loop, peer, b'{"v":1,"cmd":"ping"}\n')
    assert reply == {"ok": True, "v": 1, "uid": os.getuid(), "pid": os.getpid(), "privileged": True}
    assert not peer.eof
    # the connection stays usable for more requests
    [again] = ask(loop, peer, b'{"v": 1, "cmd": "ping", "services": []}\n')
    assert again["ok"] is True


def test_request_split_over_writes_and_several_in_one_write(server) -> None:
    loop, _, connect = server
    peer = connect()
    peer.send(b'{"v":1,')
    loop.run_once(time.monotonic() + 0.05)
    assert peer.replies() == []
    replies = ask(loop, peer, b'"cmd":"ping"}\n{"v":1,"cmd":"ping"}\n{"v":1,"cmd":"nope"}\n', n=3)
    assert [r["ok"] for r in replies] == [True, True, False]


@pytest.mark.parametrize(
    "line,error",
    [
        (b"not json at all", "request is not valid JSON"),
        (b'{"v":1,"cmd":', "request is not valid JSON"),
        (b"\xff\xfe\x00garbage", "request is not valid JSON"),
        (b"[1,2,3]", "request must be a JSON object"),
        (b'"ping"', "request must be a JSON object"),
        (b"null", "request must be a JSON object"),
        (b'{"cmd":"ping"}', "unsupported protocol version None (want 1)"),
        (b'{"v":2,"cmd":"ping"}', "unsupported protocol version 2 (want 1)"),
        (b'{"v":"1","cmd":"ping"}', "unsupported protocol version '1' (want 1)"),
        (b'{"v":1}', "request needs a string 'cmd'"),
        (b'{"v":1,"cmd":7}', "request needs a string 'cmd'"),
        (b'{"v":1,"cmd":"ping","services":"web"}', "'services' must be a list of strings"),
        (b'{"v":1,"cmd":"ping","services":[1]}', "'services' must be a list of strings"),
        (b'{"v":1,"cmd":"launch-missiles"}', "unknown command 'launch-missiles'"),
    ],
)
def test_bad_requests_get_an_error_and_the_connection_survives(server, line, error) -> None:
    loop, _, connect = server
    peer = connect()
    [reply] = ask(loop, peer, line + b"\n")
    assert reply == {"ok": False, "error": error, "v": 1}
    assert not peer.eof
    [reply] = ask(loop, peer, b'{"v":1,"cmd":"ping"}\n')
    assert reply["ok"] is True


def test_a_handler_bug_gets_an_error_reply_not_silence(server) -> None:
    loop, _, connect = server
    peer = connect()
    [reply] = ask(loop, peer, b'{"v":1,"cmd":"crash"}\n')
    assert reply["ok"] is False
    assert "internal error" in reply["error"]
    [reply] = ask(loop, peer, b'{"v":1,"cmd":"ping"}\n')
    assert reply["ok"] is True


def test_oversized_line_without_newline_gets_error_and_close(server) -> None:
    loop, srv, connect = server
    peer = connect()
    peer.send(b"x" * (MAX_REQUEST + 10))
    until(loop, lambda: peer.eof)
    assert peer.replies() == [
        {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes", "v": 1}
    ]
    assert srv.clients == set()


def test_oversized_line_with_newline_is_refused_too(server) -> None:
    loop, srv, connect = server
    peer = connect()
    pad = b" " * (MAX_REQUEST + 1000)
    peer.send(b'{"v":1,"cmd":"ping"' + pad + b"}\n")
    until(loop, lambda: peer.eof)
    replies = peer.replies()
    assert replies == [{"ok": False, "error": f"request longer than {MAX_REQUEST} bytes", "v": 1}]
    assert srv.clients == set()


def test_request_of_exactly_the_limit_is_served(server) -> None:
    loop, _, connect = server
    peer = connect()
    head = b'{"v":1,"cmd":"ping"}'
    line = head[:-1] + b" " * (MAX_REQUEST - len(head)) + b"}"
    assert len(line) == MAX_REQUEST
    [reply] = ask(loop, peer, line + b"\n")
    assert reply["ok"] is True


def test_client_that_never_reads_is_dropped_and_loop_never_blocks(server) -> None:
    loop, srv, connect = server
    peer = connect(rcvbuf=4096, read=False)
    other = connect()
    until(loop, lambda: len(srv.clients) == 2)
    request = b'{"v":1,"cmd":"big"}\n'
    slowest = 0.0
    sent = 0
    deadline = time.monotonic() + 20
    while len(srv.clients) == 2:
        assert time.monotonic() < deadline, "the non-reading client was never dropped"
        try:
            peer.sock.send(request)
            sent += 1
        except BlockingIOError:
            pass
        except OSError:
            break  # the server closed it
        t = time.monotonic()
        loop.run_once(t + 0.01)
        slowest = max(slowest, time.monotonic() - t)
    until(loop, lambda: len(srv.clients) == 1)
    # it took more than MAX_PENDING bytes of unread replies to drop it
    assert sent * 65536 > MAX_PENDING
    assert slowest < 0.5, f"a loop iteration blocked for {slowest:.2f}s"
    # other clients are still served
    [reply] = ask(loop, other, b'{"v":1,"cmd":"ping"}\n')
    assert reply["ok"] is True


def test_dropping_clients_that_do_not_read_is_logged_once_a_minute(server, capfd) -> None:
    """Whoever may connect cannot flood PID 1's log with 'does not read its replies':
    one warning per REFUSAL_LOG_INTERVAL, with the count since."""
    loop, srv, connect = server
    now = [1000.0]
    loop.clock = lambda: now[0]

    def drop_one() -> None:
        peer = connect(read=False)
        until(loop, lambda: srv.clients)
        peer.send(b'{"v":1,"cmd":"huge"}\n')
        until(loop, lambda: not srv.clients)
        peer.close()

    for _ in range(5):
        drop_one()
    err = capfd.readouterr().err
    assert err.count("did not read") == 1, err
    assert "dropped 1 client that did not read" in err
    now[0] += control.REFUSAL_LOG_INTERVAL
    drop_one()
    err = capfd.readouterr().err
    assert err.count("did not read") == 1, err
    assert "dropped 5 clients that did not read" in err  # the 4 held back, and this one


def test_client_that_hangs_up_before_its_reply(server) -> None:
    loop, srv, connect = server
    peer = connect()
    peer.send(b'{"v":1,"cmd":"big"}\n{"v":1,"cmd":"big"}\n')
    peer.close()
    until(loop, lambda: not srv.clients)
    other = connect()
    [reply] = ask(loop, other, b'{"v":1,"cmd":"ping"}\n')
    assert reply["ok"] is True


def test_client_that_sends_nothing_is_timed_out(server, monkeypatch) -> None:
    monkeypatch.setattr(control, "REQUEST_TIMEOUT", 0.2)
    loop, srv, connect = server
    peer = connect()
    t = time.monotonic()
    until(loop, lambda: peer.eof, timeout=5)
    assert time.monotonic() - t < 3
    assert peer.replies()[0]["ok"] is False
    assert not srv.clients


def test_too_many_clients_are_refused_not_queued_forever(server, monkeypatch) -> None:
    loop, srv, connect = server
    monkeypatch.setattr(control, "MAX_CLIENTS", 3)
    peers = [connect() for _ in range(5)]
    until(loop, lambda: sum(p.eof for p in peers) == 2)
    assert len(srv.clients) == 3
    refused = [p for p in peers if p.eof]
    assert all(
        p.replies()[0]["error"] == "too many clients: 3 privileged clients connected"
        for p in refused
    )
    live = [p for p in peers if not p.eof]
    [reply] = ask(loop, live[0], b'{"v":1,"cmd":"ping"}\n')
    assert reply["ok"] is True


def test_each_user_gets_a_share_and_privileged_callers_always_get_through(
    server, monkeypatch
) -> None:
    """Per-uid caps, a shared pool for unprivileged callers, a reserve for privileged
    ones, who evict the oldest unprivileged connection when everything is taken."""
    loop, srv, connect = server
    monkeypatch.setattr(control, "MAX_CLIENTS", 8)
    monkeypatch.setattr(control, "PRIVILEGED_RESERVE", 2)
    monkeypatch.setattr(control, "MAX_PER_USER", 3)
    me = os.getuid()
    caller = {"uid": me}
    monkeypatch.setattr(control, "peer_credentials", lambda sock: (1, caller["uid"], 1))
    monkeypatch.setattr(control, "is_privileged", lambda uid: uid in (0, me))

    def join(uid: int) -> Peer:
        caller["uid"] = uid
        before = {c.fd for c in srv.clients}
        peer = connect()
        until(loop, lambda: {c.fd for c in srv.clients} - before or peer.eof)
        return peer

    def held(uid: int) -> int:
        return sum(1 for c in srv.clients if c.uid == uid)

    first = join(1000)
    rest = [join(1000) for _ in range(3)]
    assert held(1000) == 3 and rest[-1].eof
    assert rest[-1].replies()[0]["error"] == (
        "too many clients: uid 1000 has 3 connections open, the most one unprivileged user may"
    )
    [join(1001) for _ in range(3)]
    late = join(1002)  # 6 unprivileged: the shared pool is full
    assert late.eof and held(1002) == 0 and "the most they may share" in late.replies()[0]["error"]
    [join(me) for _ in range(2)]  # the reserve
    assert len(srv.clients) == 8
    join(me)  # all 8 taken: the oldest unprivileged connection makes room
    until(loop, lambda: first.eof)
    assert "make room" in first.replies()[0]["error"]
    assert held(me) == 3 and len(srv.clients) == 8
    for _ in range(5):
        join(me)
    assert held(me) == 8
    refused = join(me)  # every connection is privileged: only now is one refused
    assert refused.eof and len(srv.clients) == 8


def test_unprivileged_callers_never_take_the_total_past_its_cap(server, monkeypatch) -> None:
    """When privileged callers hold more than their reserve and all connections are
    taken, an unprivileged caller is refused: it may not evict, nor go past the cap."""
    loop, srv, connect = server
    monkeypatch.setattr(control, "MAX_CLIENTS", 4)
    monkeypatch.setattr(control, "PRIVILEGED_RESERVE", 1)
    monkeypatch.setattr(control, "MAX_PER_USER", 2)
    me = os.getuid()
    caller = {"uid": me}
    monkeypatch.setattr(control, "peer_credentials", lambda sock: (1, caller["uid"], 1))
    monkeypatch.setattr(control, "is_privileged", lambda uid: uid in (0, me))
    held = [connect() for _ in range(4)]
    until(loop, lambda: len(srv.clients) == 4)
    caller["uid"] = 1000
    late = connect()
    until(loop, lambda: late.eof)
    assert late.replies()[0]["error"] == "too many clients: 4 clients connected"
    assert len(srv.clients) == 4 and not any(p.eof for p in held)


# --- the socket file -----------------------------------------------------------------------
def test_socket_is_mode_0600_owned_by_us(server, tmp_path: Path) -> None:
    st = os.lstat(tmp_path / "control.sock")
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()


def test_mode_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        srv = Server(EventLoop(), str(tmp_path / "s.sock"), handler)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(os.lstat(tmp_path / "s.sock").st_mode) == 0o600
    finally:
        srv.close()


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "control.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays: a pyinit that died without cleaning up
    loop = EventLoop()
    srv = Server(loop, path, handler)
    try:
        peer = Peer(loop, path)
        [reply] = ask(loop, peer, b'{"v":1,"cmd":"ping"}\n')
        assert reply["ok"] is True
        peer.close()
    finally:
        srv.close()
    assert not os.path.exists(path)  # close() removes it


@pytest.mark.parametrize("kind", ["file", "dir", "symlink"])
def test_non_socket_at_the_path_is_an_error_and_left_alone(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "control.sock"
    if kind == "file":
        path.write_text("precious")
    elif kind == "dir":
        path.mkdir()
    else:
        (tmp_path / "target").write_text("precious")
        path.symlink_to(tmp_path / "target")
    with pytest.raises(OSError, match="not a socket"):
        Server(EventLoop(), str(path), handler)
    if kind == "file":
        assert path.read_text() == "precious"
    elif kind == "dir":
        assert path.is_dir()
    else:
        assert path.is_symlink() and (tmp_path / "target").read_text() == "precious"


def test_close_drops_clients_and_unlinks(tmp_path: Path) -> None:
    loop = EventLoop()
    path = str(tmp_path / "c.sock")
    srv = Server(loop, path, handler)
    peer = Peer(loop, path)
    until(loop, lambda: len(srv.clients) == 1)
    srv.close()
    until(loop, lambda: peer.eof)
    assert not os.path.exists(path)
    peer.close()


# --- the client call (svctl's side) --------------------------------------------------------
def test_request_client_against_a_one_shot_server(tmp_path: Path) -> None:
    path = str(tmp_path / "one.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            listener.settimeout(10)  # the parent failed before connecting: no hang
            conn, _ = listener.accept()
            conn.settimeout(10)
            data = b""
            while b"\n" not in data:
                data += conn.recv(1024)
            req = json.loads(data)
            conn.sendall(json.dumps({"ok": True, "got": req}).encode() + b"\n")
            conn.close()
        finally:
            os._exit(0)
    try:
        reply = protocol.request(path, {"cmd": "status", "services": ["a"]}, timeout=5)
        assert reply == {"ok": True, "got": {"v": 1, "cmd": "status", "services": ["a"]}}
    finally:
        os.waitpid(pid, 0)
        listener.close()


def test_request_client_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        protocol.request(str(tmp_path / "none.sock"), {"cmd": "ping"}, timeout=1)


def test_deeply_nested_json_is_a_protocol_error_not_a_bug(server, capfd) -> None:
    loop, _srv, connect = server
    peer = connect()
    peer.send(b"[" * 60000 + b"\n")
    until(loop, lambda: peer.replies(), timeout=5)
    assert peer.replies()[0] == {"v": 1, "ok": False, "error": "request is not valid JSON"}
    assert "Traceback" not in capfd.readouterr().err


def test_accept_failing_for_lack_of_fds_pauses_instead_of_spinning(
    server, monkeypatch, capfd
) -> None:
    loop, srv, connect = server
    calls = []

    class OutOfFds:
        """The listening socket, except that accept() fails with EMFILE."""

        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def accept(self):
            calls.append(1)
            raise OSError(24, "Too many open files")

    # The pause ends only when the test moves the loop's clock on: however loaded the
    # machine, no retry can come from the pause ending early (a real 0.2 s window could).
    skipped = [0.0]
    monkeypatch.setattr(loop, "clock", lambda: time.monotonic() + skipped[0])
    monkeypatch.setattr(listener_module, "ACCEPT_PAUSE", 3600.0)
    real = srv.listener.sock
    monkeypatch.setattr(srv.listener, "sock", OutOfFds(real))
    peer = connect(read=False)
    until(loop, lambda: calls, timeout=5)
    for _ in range(5):  # turns that do not wait: a watched readable socket comes up in each
        loop.run_once(loop.clock())
    assert len(calls) == 1  # not retried while the listening socket stays readable
    srv.listener.sock = real
    skipped[0] += 3600.0
    until(loop, lambda: srv.clients, timeout=5)  # accepting again after the pause
    peer.close()
    assert capfd.readouterr().err.count("accept failed") == 1


def test_accept_failing_again_and_again_is_logged_once_per_outage(
    server, monkeypatch, capfd
) -> None:
    """EMFILE that lasts several pauses: one warning, then one when accepts work again."""
    loop, srv, connect = server
    calls = []

    class OutOfFds:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def accept(self):
            calls.append(1)
            raise OSError(24, "Too many open files")

    monkeypatch.setattr(srv.listener, "sock", OutOfFds(srv.listener.sock))
    peer = connect(read=False)
    until(loop, lambda: len(calls) >= 3, timeout=5)  # retried after each pause
    err = capfd.readouterr().err
    assert err.count("accept failed") == 1, err
    monkeypatch.undo()
    until(loop, lambda: srv.clients, timeout=5)
    peer.close()
    err = capfd.readouterr().err
    assert "accept failed" not in err
    assert err.count("accepting connections again") == 1, err
