"""Control-plane fuzzing: random bytes and random requests, huge lines, half-open
connections and more clients than the limit, on PID 1's control socket (fixed seed,
bounded time). PID 1 never crashes and keeps answering."""

from __future__ import annotations

import json
import random
import socket
import threading
import time

import pytest
from helpers import wait_for
from stresskit import report, running, scale, service

from pyinit.control.protocol import request

pytestmark = pytest.mark.pid1

SECONDS = scale(2.0, 30.0)
CMDS = ["ping", "status", "control", "wait", "reload", "logs", "nope", "", None, 1]
ACTIONS = ["u", "d", "o", "p", "c", "h", "a", "i", "q", "1", "2", "t", "k", "x", "zz", None]


def random_request(rng: random.Random) -> bytes:
    """Random bytes, or a random JSON request (never a real shutdown or down)."""
    kind = rng.random()
    if kind < 0.3:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))) + b"\n"
    req = {"v": rng.choice([1, 1, 1, 2, "1", None]), "cmd": rng.choice(CMDS)}
    if rng.random() < 0.7:
        req["services"] = rng.choice(
            [[], ["steady"], ["nope"], ["steady/log"], "steady", [1], ["../x"], None, ["a" * 5000]]
        )
    if req["cmd"] == "control":
        req["action"] = rng.choice(ACTIONS)
        if req["action"] not in ("u", "c", "zz", None):
            req["services"] = ["nope"]  # keep steady running: its pid is checked
    if rng.random() < 0.3:
        req["wait"] = rng.choice([0, 0.01, -1, "x", 1e9, None])
    if rng.random() < 0.2:
        req["lines"] = rng.choice([0, -5, 10**9, "x"])
    text = json.dumps(req)
    if rng.random() < 0.1:
        text = text[: rng.randint(0, len(text))]
    return text.encode() + b"\n"


def exchange(path: str, data: bytes, timeout: float = 0.3) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        try:
            s.sendall(data)
        except OSError:  # pyinit closed it (a line too long): its reply is still there
            pass
        try:
            return s.recv(65536)
        except OSError:  # no reply within timeout (a wait, or dropped)
            return b""


def answers(path: str) -> bool:
    """ping answered (a connection beyond the client limit is closed at once)."""
    try:
        return request(path, {"cmd": "ping"}, timeout=10)["ok"]
    except OSError:
        return False


def alive(path: str) -> None:
    assert request(path, {"cmd": "ping"}, timeout=10)["ok"]


def test_control_socket_fuzz(pyinit_run, tmp_path, tag):
    service(tmp_path, "steady", "exec sleep 100000\n")
    run = pyinit_run("--", "sleep", "100000")
    steady = wait_for(lambda: running(tmp_path, "steady"), 20, "steady")["steady"]["pid"]
    path = str(tmp_path / "run" / "control.sock")
    rng = random.Random(9)
    figures = {}

    # random bytes and random requests, one per connection
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < SECONDS:
        reply = exchange(path, random_request(rng))
        if reply:
            first = reply.split(b"\n", 1)[0]
            assert json.loads(first)["v"] == 1, first
        n += 1
    figures["random_requests"] = n
    alive(path)

    # several random requests on one connection
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(b"".join(random_request(rng) for _ in range(200)))
        s.settimeout(0.5)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
    alive(path)

    # huge lines: past the limit, with and without a newline
    for size in (65537, 1 << 20):
        reply = exchange(path, b"x" * size, timeout=5)
        assert b"request longer than 65536 bytes" in reply, reply[:200]
    alive(path)

    # half-open connections: a partial request, or the write side shut, left hanging
    hanging = []
    for i in range(40):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(b'{"v": 1, "cmd": "sta')
        if i % 2:
            s.shutdown(socket.SHUT_WR)
        hanging.append(s)
    alive(path)  # answered while they hang

    # more clients than the limit at once
    crowd = []
    for _ in range(150 - len(hanging)):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        crowd.append(s)
    for s in hanging + crowd:
        s.close()
    wait_for(lambda: answers(path), 15, "pyinit answering")

    # many clients at once, each asking again and again
    def client(errors: list) -> None:
        for _ in range(scale(10, 100)):
            try:
                assert request(path, {"cmd": "status"}, timeout=15)["ok"]
            except (OSError, AssertionError) as exc:
                errors.append(exc)

    errors: list = []
    threads = [threading.Thread(target=client, args=(errors,)) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    figures["concurrent_requests"] = 32 * scale(10, 100)

    recs = request(path, {"cmd": "status"})["services"]
    assert [r["pid"] for r in recs if r["name"] == "steady"] == [steady]
    run.kill(15)
    assert run.wait(30) == 143
    assert "Traceback" not in run.err, run.err
    report("control fuzz", seconds=SECONDS, **figures)
