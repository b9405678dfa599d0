"""The control socket: one JSON request per line in, one JSON reply per line out.

Non-blocking throughout: a request line is limited to MAX_REQUEST bytes, a
client's unsent replies to MAX_PENDING bytes (a client that does not read is
dropped; logged at most once a minute, as refusals are), and a malformed or
unknown request gets an error reply. Callers are identified with SO_PEERCRED.
See docs/control-protocol.md.

Fairness (listener.admit, with _limits): at most MAX_CLIENTS connections in all.
Callers that are not privileged share MAX_CLIENTS - PRIVILEGED_RESERVE of them, at
most MAX_PER_USER per uid, so no user can lock root out by holding `wait` or `logs`
connections. A privileged caller (root, pyinit's own uid) is refused only when
every connection is privileged; otherwise the oldest unprivileged one makes room.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from typing import Any, Callable

from pyinit.control.listener import FULL, NOTE_INTERVAL, PER_KEY, SHARED, Caller, Limits, Listener
from pyinit.core.lines import LineTooLong, take_line
from pyinit.core.protocol import (
    SOCKET_NAME,
    VERSION,
    ProtocolError,
    parse_request,
)
from pyinit.runtime import log, rundir
from pyinit.runtime.loop import EventLoop, Timer

MAX_REQUEST = 64 * 1024
MAX_PENDING = 4 * 1024 * 1024
MAX_CLIENTS = 128
PRIVILEGED_RESERVE = 32  # never taken by unprivileged callers
MAX_PER_USER = 16  # connections of one unprivileged uid
REFUSAL_LOG_INTERVAL = NOTE_INTERVAL  # refusals and drops are logged at most this often
REQUEST_TIMEOUT = 10.0  # a client must send a whole request line within this
_UCRED = struct.Struct("3i")


class Client:
    done = False  # for admission: a client may always send another request

    def __init__(self, server: Server, sock: socket.socket, caller: Caller) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.caller = caller
        self.pid, self.uid, self.gid = caller.info
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closed = False
        self.on_close: list[Callable[[], None]] = []
        self.deadline: Timer | None = None
        self.streaming = False  # `logs -f`: replies keep coming, no next request expected
        self.expect_request()

    def expect_request(self) -> None:
        """Give the client REQUEST_TIMEOUT to send its next line (slow-loris guard)."""
        if self.deadline is None and not self.streaming:
            self.deadline = self.server.loop.call_later(REQUEST_TIMEOUT, self.timed_out)

    def timed_out(self) -> None:
        self.deadline = None
        self.send({"ok": False, "error": f"no complete request within {REQUEST_TIMEOUT:g}s"})
        self.close()

    @property
    def privileged(self) -> bool:
        """May this caller change state? root, or the user pyinit runs as."""
        return self.caller.reserved

    def send(self, reply: dict[str, Any]) -> None:
        if self.closed:
            return
        reply.setdefault("v", VERSION)
        self.outbuf += json.dumps(reply, separators=(",", ":")).encode() + b"\n"
        if len(self.outbuf) > MAX_PENDING:
            self.server.dropped_slow_reader(self.pid)
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
            self.expect_request()

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
        scanned = len(self.inbuf)  # no newline in what is left from earlier reads
        self.inbuf += data
        while not self.closed:
            try:
                line = take_line(self.inbuf, MAX_REQUEST, scanned)
            except LineTooLong:  # whether or not the line is complete
                self.send({"ok": False, "error": f"request longer than {MAX_REQUEST} bytes"})
                self.close()
                return
            if line is None:
                return
            scanned = 0
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None
            self.server.dispatch(self, line[:-1])

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.deadline is not None:
            self.deadline.cancel()
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
        rundir.remove_stale(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self.sock.listen(128)
        self.listener = Listener(
            loop,
            self.sock,
            "control socket",
            MAX_CLIENTS,
            limits=_limits,
            seats=lambda: self.clients,
            key_of=_caller,
            on_accept=self.add_client,
            refuse=self.refuse,
            evict=self.evict,
        )

    def refuse(self, conn: socket.socket, caller: Caller, kind: str) -> str:
        """Tell a refused caller why (one line, if its buffer takes it); the reason."""
        if kind == PER_KEY:
            why = (
                f"uid {caller.key} has {MAX_PER_USER} connections open, the most one "
                "unprivileged user may"
            )
        elif kind == SHARED:
            shared = MAX_CLIENTS - PRIVILEGED_RESERVE
            why = f"{shared} unprivileged clients connected, the most they may share"
        elif kind == FULL and caller.reserved:
            why = f"{MAX_CLIENTS} privileged clients connected"
        else:  # FULL: privileged callers hold more than their reserve
            why = f"{MAX_CLIENTS} clients connected"
        line = json.dumps({"ok": False, "error": f"too many clients: {why}", "v": VERSION})
        try:
            conn.send(line.encode() + b"\n", socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT)
        except OSError:
            pass
        return why

    def evict(self, client: Client) -> None:
        """Close client to make room for a privileged caller, telling it why."""
        client.send(
            {"ok": False, "error": "too many clients: closed to make room for a privileged caller"}
        )
        client.close()

    def dropped_slow_reader(self, pid: int) -> None:
        """A client was dropped for not reading its replies: log it at most once per
        REFUSAL_LOG_INTERVAL, with the count since (whoever may connect cannot flood
        pyinit's log by connecting and never reading)."""
        self.listener.note(
            "slow reader",
            lambda n: (
                f"dropped {n} client{'s' if n != 1 else ''} that did not read "
                f"{MAX_PENDING} bytes of replies (the last: pid {pid})"
            ),
        )

    def add_client(self, conn: socket.socket, caller: Caller) -> None:
        client = Client(self, conn, caller)
        self.clients.add(client)
        self.loop.add_reader(client.fd, client.readable)

    def dispatch(self, client: Client, line: bytes) -> None:
        try:
            request = parse_request(line)
            request.setdefault("services", [])
            self.handler(client, request)
        except ProtocolError as exc:
            client.send({"ok": False, "error": str(exc)})
        except Exception:  # a bug must not leave the client waiting for a reply
            log.bug(f"control request from pid {client.pid}")
            client.send({"ok": False, "error": "internal error in pyinit (see its log)"})

    def close(self) -> None:
        for client in list(self.clients):
            client.close()
        self.listener.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def open_in(
    loop: EventLoop, run_dir: str, at: Callable[[str], str], handler: Handler
) -> Server | None:
    """The control socket in run_dir, bound at at(SOCKET_NAME) (through the run dir's
    fd); None, with a warning, when it cannot be made."""
    try:
        server = Server(loop, at(SOCKET_NAME), handler)
    except OSError as exc:
        log.warning(f"no control socket in {run_dir} ({exc.strerror or exc}): svctl will not work")
        return None
    log.debug(f"control socket at {os.path.join(run_dir, SOCKET_NAME)}")
    return server


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """The connected caller's (pid, uid, gid), from the kernel (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def _caller(conn: socket.socket) -> Caller:
    """Who connected (SO_PEERCRED): admitted by uid, the rest passed on to Client."""
    pid, uid, gid = peer_credentials(conn)
    return Caller(uid, is_privileged(uid), info=(pid, uid, gid))


def _limits() -> Limits:
    """The caps, read at each accept (so a test can lower them)."""
    return Limits(MAX_CLIENTS, MAX_PER_USER, PRIVILEGED_RESERVE)


def is_privileged(uid: int) -> bool:
    """May this caller change state? root, or the user pyinit runs as."""
    return uid in (0, os.getuid())
