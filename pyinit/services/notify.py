"""The sd_notify socket: services send READY=1, STATUS=..., STOPPING=1, WATCHDOG=1.

One datagram socket for all services (NOTIFY_SOCKET). The kernel vouches for
the sender's pid (SCM_CREDENTIALS); the caller maps it to a service by its
session, since every service runs in a session of its own. Non-blocking:
each wake-up reads at most MAX_BATCH datagrams of at most MAX_DATAGRAM bytes
(a longer one is cut), so a service that floods the socket cannot hold the loop;
the rest wait for the next turn.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Callable, Optional

from pyinit.runtime import log, rundir
from pyinit.runtime.loop import EventLoop

SOCKET_NAME = "notify.sock"
MAX_DATAGRAM = 4096
MAX_BATCH = 64  # datagrams read per wake-up
MAX_FIELDS = 32  # KEY=VALUE assignments taken from one datagram
_UCRED = struct.Struct("3i")
Handler = Callable[[int, "dict[str, str]"], None]


def parse(data: bytes) -> dict[str, str]:
    """sd_notify's newline-separated KEY=VALUE assignments (bad lines are skipped)."""
    fields: dict[str, str] = {}
    for line in data[:MAX_DATAGRAM].decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key.isascii() and key.isidentifier() and len(fields) < MAX_FIELDS:
            fields[key] = value
    return fields


class NotifySocket:
    def __init__(self, loop: EventLoop, path: str, handler: Handler,
                 at: Optional[str] = None) -> None:
        """path: what services are told (NOTIFY_SOCKET); at: the same file, as
        pyinit reaches it (through the run dir's fd, rundir.at)."""
        self.loop = loop
        self.path = path
        self.at = at or path
        self.handler = handler
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.setblocking(False)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            rundir.remove_stale(self.at)  # a socket only: anything else is refused
            self.sock.bind(self.at)
            os.chmod(self.at, 0o666)  # services run as any user; the pid is what counts
        except OSError:
            self.sock.close()
            raise
        loop.add_reader(self.sock.fileno(), self.on_readable)

    def on_readable(self) -> None:
        space = socket.CMSG_SPACE(_UCRED.size)
        for _ in range(MAX_BATCH):
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(MAX_DATAGRAM, space)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning(f"notify socket: {exc.strerror}")
                return
            pid = 0
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = _UCRED.unpack(cdata[: _UCRED.size])[0]
            if pid > 0:
                self.handler(pid, parse(data))

    def close(self) -> None:
        self.loop.remove(self.sock.fileno())
        self.sock.close()
        try:
            os.unlink(self.at)
        except OSError:
            pass
