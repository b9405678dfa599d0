"""svctl against a socket that is not pyinit's (reached through PYINIT_RUN_DIR or
XDG_RUNTIME_DIR): every reply line is read bounded, and a bad reply is one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pyinit.control.protocol import read_line
from pyinit.core import protocol

ROOT = Path(__file__).resolve().parents[2]
SENT_AT_MOST = 3 * protocol.MAX_REPLY  # what the fake server offers before it gives up


class FakeServer:
    """Answers every connection with `reply` (repeated endlessly when `endless`)."""

    def __init__(self, path: str, reply: bytes, endless: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.reply, self.endless = reply, endless
        self.sent = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(20)
            try:
                conn.recv(65536)
                while True:
                    conn.sendall(self.reply)
                    self.sent += len(self.reply)
                    if not self.endless or self.sent >= SENT_AT_MOST:
                        break
            except OSError:
                pass  # the client hung up: what we want

    def close(self) -> None:
        self.thread.join(30)
        self.sock.close()


def svctl(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYINIT_RUN_DIR": str(run_dir), "PYTHONPATH": str(ROOT)}
    code = "import sys; from pyinit.cli.svctl import main; sys.argv[0] = 'svctl'; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60
    )


ENDLESS = b"x" * (1 << 20)


@pytest.mark.parametrize("command", [["status"], ["logs", "web"], ["up", "web"]])
@pytest.mark.parametrize(
    "reply, endless, error",
    [
        (ENDLESS, True, "a reply line longer than 16 MiB (is this pyinit's socket?)"),
        (b"[" * 200000 + b"\n", False, "the reply is not valid JSON (is this pyinit's socket?)"),
        (b"[1, 2]\n", False, "the reply is not a JSON object (is this pyinit's socket?)"),
    ],
)
def test_a_fake_socket_gets_a_bounded_read_and_one_line(
    tmp_path: Path, command, reply, endless, error
) -> None:
    server = FakeServer(str(tmp_path / protocol.SOCKET_NAME), reply, endless)
    try:
        r = svctl(tmp_path, *command)
    finally:
        server.close()
    assert r.returncode == 100, r.stderr[-2000:]
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.startswith("svctl: fatal: cannot reach pyinit at ")
    assert r.stderr.endswith(f": {error}\n"), r.stderr[-2000:]
    if endless:  # svctl stopped reading soon after the cap, long before the server did
        assert server.sent < 2 * protocol.MAX_REPLY


def test_read_line_takes_a_line_of_exactly_the_cap_and_keeps_what_follows() -> None:
    a, b = socket.socketpair()
    with a, b:
        line = b"y" * protocol.MAX_REPLY + b"\n"
        threading.Thread(target=lambda: b.sendall(line + b'{"ok":true}\n'), daemon=True).start()
        buf = bytearray()
        assert read_line(a, buf) == line
        assert protocol.parse_reply(read_line(a, buf)) == {"ok": True}


def test_a_long_error_from_the_socket_is_cut(tmp_path: Path) -> None:
    reply = b'{"ok":false,"error":"' + b"e" * 100000 + b'"}\n'
    server = FakeServer(str(tmp_path / protocol.SOCKET_NAME), reply)
    try:
        r = svctl(tmp_path, "status")
    finally:
        server.close()
    assert r.returncode == 100
    assert r.stderr == "svctl: fatal: pyinit refused: " + "e" * 4000 + "...\n"
