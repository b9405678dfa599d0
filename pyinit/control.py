"""The control socket: one JSON request per line in, one JSON reply per line out.

Non-blocking throughout: a request line is limited to MAX_REQUEST bytes, a
client's unsent replies to MAX_PENDING bytes (a client that does not read is
dropped), and a malformed or unknown request gets an error reply. Callers are
identified with SO_PEERCRED. See docs/control-protocol.md.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from typing import Any, Callable

from pyinit import log
from pyinit.loop import EventLoop

VERSION = 1
MAX_REQUEST = 64 * 1024
MAX_PENDING = 4 * 1024 * 1024
SOCKET_NAME = "control.sock"
_UCRED = struct.Struct("3i")


class ProtocolError(Exception):
    """A request that cannot be served; its text goes back to the client."""


class Client:
    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        pid, uid, gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
        self.pid, self.uid, self.gid = pid, uid, gid
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closed = False
        self.on_close: list[Callable[[], None]] = []

    @property
    def privileged(self) -> bool:
        """May this caller change state? root, or the user pyinit runs as."""
        return self.uid in (0, os.getuid())

    def send(self, reply: dict[str, Any]) -> None:
        if self.closed:
            return
        reply.setdefault("v", VERSION)
        self.outbuf += json.dumps(reply, separators=(",", ":")).encode() + b"\n"
        if len(self.outbuf) > MAX_PENDING:
            log.warning(f"control client pid {self.pid} does not read its replies: dropped")
            self.close()
            return
        self.flush()

    def flush(self) -> None:
        while self.outbuf and not self.closed:
            try:
                sent = self.sock.send(self.outbuf, socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
            except BlockingIOError:
                self.server.loop.add_writer(self.fd, self.flush)
                return
            except OSError:
                self.close()
                return
            del self.outbuf[:sent]
        if not self.closed:
            self.server.loop.remove_writer(self.fd)

    def readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self.inbuf += data
        while not self.closed:
            end = self.inbuf.find(b"\n")
            if end < 0:
                break
            line = bytes(self.inbuf[:end])
            del self.inbuf[: end + 1]
            self.server.dispatch(self, line)
        if len(self.inbuf) > MAX_REQUEST:
            self.send({"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"})
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.loop.remove(self.fd)
        self.server.clients.discard(self)
        self.sock.close()
        for callback in self.on_close:
            callback()


Handler = Callable[[Client, dict], None]


class Server:
    def __init__(self, loop: EventLoop, path: str, handler: Handler) -> None:
        self.loop = loop
        self.path = path
        self.handler = handler
        self.clients: set[Client] = set()
        _remove_stale(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self.sock.listen(128)
        self.sock.setblocking(False)
        loop.add_reader(self.sock.fileno(), self.accept)

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning(f"control socket: accept failed: {exc.strerror}")
                return
            conn.setblocking(False)
            client = Client(self, conn)
            self.clients.add(client)
            self.loop.add_reader(client.fd, client.readable)

    def dispatch(self, client: Client, line: bytes) -> None:
        try:
            request = parse_request(line)
            self.handler(client, request)
        except ProtocolError as exc:
            client.send({"ok": False, "error": str(exc)})

    def close(self) -> None:
        for client in list(self.clients):
            client.close()
        self.loop.remove(self.sock.fileno())
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def parse_request(line: bytes) -> dict[str, Any]:
    """Decode and validate the envelope of one request line."""
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("request is not valid JSON") from None
    if not isinstance(request, dict):
        raise ProtocolError("request must be a JSON object")
    if request.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {request.get('v')!r} (want {VERSION})")
    if not isinstance(request.get("cmd"), str):
        raise ProtocolError("request needs a string 'cmd'")
    services = request.get("services", [])
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise ProtocolError("'services' must be a list of strings")
    return request


def _remove_stale(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{path} exists and is not a socket")
    os.unlink(path)


def request(path: str, payload: dict[str, Any], timeout: float | None = 10.0) -> dict[str, Any]:
    """Client side: send one request, return the one reply (blocking; for svctl)."""
    payload = {"v": VERSION, **payload}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(payload).encode() + b"\n")
        buf = bytearray()
        while b"\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("pyinit closed the connection without a reply")
            buf += chunk
    return json.loads(buf[: buf.index(b"\n")])
