"""notify: sd_notify datagram parsing, and the socket driven by the real event loop."""

from __future__ import annotations

import gc
import os
import socket
import stat
import tempfile

import pytest

from pyinit.runtime.loop import EventLoop
from pyinit.services import notify
from pyinit.services.notify import MAX_DATAGRAM, NotifySocket, parse


# --- parse ------------------------------------------------------------------------------
@pytest.mark.parametrize("data, fields", [
    (b"READY=1", {"READY": "1"}),
    (b"READY=1\nSTATUS=Serving 3 clients\n", {"READY": "1", "STATUS": "Serving 3 clients"}),
    (b"STATUS=a=b", {"STATUS": "a=b"}),
    (b"STATUS=", {"STATUS": ""}),
    (b"", {}),
    (b"\n\n", {}),
    (b"garbage\nREADY=1", {"READY": "1"}),
    (b"1X=2\nA B=3\n=4\nOK=5", {"OK": "5"}),
    (b"STATUS=one\nSTATUS=two", {"STATUS": "two"}),
    (b"WATCHDOG=1\nSTOPPING=1\nMAINPID=42", {"WATCHDOG": "1", "STOPPING": "1", "MAINPID": "42"}),
    (b"STATUS=caf\xc3\xa9", {"STATUS": "caf\u00e9"}),
    (b"STATUS=\xff", {"STATUS": "\ufffd"}),
    (b"READY=1\r\n", {"READY": "1\r"}),
])
def test_parse(data: bytes, fields: dict) -> None:
    assert parse(data) == fields


# --- the socket -----------------------------------------------------------------------------
@pytest.fixture
def sock_dir():
    # a short path: AF_UNIX addresses are limited to 108 bytes
    with tempfile.TemporaryDirectory(prefix="pyinit-n") as path:
        yield path


@pytest.fixture
def loop():
    loop = EventLoop()
    yield loop
    loop._selector.close()


@pytest.fixture
def client():
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        yield s


def open_socket(loop: EventLoop, path: str):
    got: list[tuple[int, dict]] = []
    server = NotifySocket(loop, path, lambda pid, fields: got.append((pid, fields)))
    return server, got


def test_datagrams_reach_the_handler_with_the_senders_pid(loop, sock_dir, client) -> None:
    path = os.path.join(sock_dir, notify.SOCKET_NAME)
    server, got = open_socket(loop, path)
    try:
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o666
        client.sendto(b"READY=1\nSTATUS=up", path)
        assert loop.run_until(lambda: got, timeout=5)
        assert got == [(os.getpid(), {"READY": "1", "STATUS": "up"})]
        client.sendto(b"WATCHDOG=1", path)
        client.sendto(b"STOPPING=1", path)
        assert loop.run_until(lambda: len(got) == 3, timeout=5)
        assert got[1:] == [(os.getpid(), {"WATCHDOG": "1"}), (os.getpid(), {"STOPPING": "1"})]
    finally:
        server.close()


def test_oversize_and_garbage_datagrams_do_not_crash(loop, sock_dir, client) -> None:
    path = os.path.join(sock_dir, "n.sock")
    server, got = open_socket(loop, path)
    try:
        client.sendto(b"STATUS=" + b"x" * (3 * MAX_DATAGRAM), path)
        client.sendto(b"\xff\xfe\x00\x01garbage\n=\n", path)
        client.sendto(b"", path)
        client.sendto(b"READY=1", path)
        assert loop.run_until(lambda: len(got) == 4, timeout=5)
        pid = os.getpid()
        assert [p for p, _ in got] == [pid] * 4
        assert got[0][1] == {"STATUS": "x" * (MAX_DATAGRAM - len("STATUS="))}  # truncated
        assert got[1:] == [(pid, {}), (pid, {}), (pid, {"READY": "1"})]
    finally:
        server.close()


def test_a_stale_socket_file_is_replaced(loop, sock_dir, client) -> None:
    path = os.path.join(sock_dir, "n.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as old:
        old.bind(path)  # an earlier run's socket, left behind
    server, got = open_socket(loop, path)
    try:
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        client.sendto(b"READY=1", path)
        assert loop.run_until(lambda: got, timeout=5)
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_a_file_in_the_sockets_place_is_an_error_and_left_alone(
    loop, sock_dir, kind: str
) -> None:
    """As the control socket: only a socket is removed before the bind (a run dir's
    leftover file or link is not pyinit's to delete)."""
    path = os.path.join(sock_dir, "n.sock")
    target = os.path.join(sock_dir, "target")
    with open(target, "w") as fh:
        fh.write("precious")
    if kind == "file":
        os.rename(target, path)
    else:
        os.symlink(target, path)
    with pytest.raises(OSError) as info:
        open_socket(loop, path)
    assert info.value.strerror == "exists and is not a socket"
    assert os.path.lexists(path) and stat.S_ISREG(os.stat(path).st_mode)
    with open(path) as fh:
        assert fh.read() == "precious"


def test_close_removes_the_socket_file_and_stops_reading(loop, sock_dir) -> None:
    path = os.path.join(sock_dir, "n.sock")
    server, got = open_socket(loop, path)
    fd = server.sock.fileno()
    server.close()
    assert not os.path.lexists(path)
    assert server.sock.fileno() == -1
    with pytest.raises(KeyError):
        loop._selector.get_key(fd)
    server.close()  # twice is harmless


def test_bind_failure_closes_the_socket(loop, sock_dir) -> None:
    path = os.path.join(sock_dir, "missing-dir", "n.sock")
    gc.collect()  # earlier tests' garbage must not close its fds in the middle of this one
    before = sorted(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        NotifySocket(loop, path, lambda pid, fields: None)
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert len(loop._selector.get_map()) == 0
