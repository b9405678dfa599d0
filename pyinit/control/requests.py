"""The control socket's requests, served through the services API (services/api.py).

status (status.py), control and wait (commands.py, waits.py), scale, logs
(logs.py), reload, shutdown and ping. The protocol is in docs/control-protocol.md.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pyinit.control.commands import Commands, read_only
from pyinit.control.logs import Logs
from pyinit.control.status import Status
from pyinit.control.waits import Waits
from pyinit.core.bounds import render
from pyinit.core.protocol import ProtocolError
from pyinit.runtime import log
from pyinit.services.api import Services

if TYPE_CHECKING:
    from pyinit.control.server import Client
    from pyinit.runtime.loop import EventLoop


class ControlRequests:
    """One handler for every request (Server's handler), made of one part per job."""

    def __init__(self, services: Services, loop: EventLoop) -> None:
        self.services = services
        self.status = Status(services, loop.clock)
        self.waits = Waits(self.status, loop)
        self.commands = Commands(services, self.status, self.waits)
        self.logs = Logs(services, self.status)
        self.events: Any = None  # events.Events, made on the first `events` request
        services.subscribe(self.waits.changed)

    def handle(self, client: Client, req: dict[str, Any]) -> None:
        """Answer req (ProtocolError: the client is told, in one line)."""
        cmd = req["cmd"]
        if cmd in ("reload", "shutdown") and not client.privileged:
            raise read_only(client)
        if cmd == "status":
            client.send({"ok": True, "services": self.status.status(req["services"])})
        elif cmd == "scale":
            self.commands.scale(client, req)
        elif cmd in ("control", "wait"):
            self.commands.control(client, req)
        elif cmd == "reload":
            self.services.reload()
            client.send({"ok": True})
        elif cmd == "shutdown":
            self.shutdown(client, req)
        elif cmd == "logs":
            self.logs.logs(client, req)
        elif cmd == "events":
            self.stream_events(client, req)
        elif cmd == "run":  # scheduled jobs
            from pyinit.control.jobs import run

            run(self.services, self.status, client, req)
        elif cmd == "ping":
            from pyinit import __version__

            client.send(
                {"ok": True, "version": __version__, "pid": os.getpid(), **self.services.counters()}
            )
        else:
            raise ProtocolError(f"unknown command {render(cmd, 40)}")

    def stream_events(self, client: Client, req: dict[str, Any]) -> None:
        """`svctl events [-f]` (control/events.py, imported on first use)."""
        if self.events is None:
            from pyinit.control.events import Events

            self.events = Events()
        self.events.events(client, req)

    def shutdown(self, client: Client, req: dict[str, Any]) -> None:
        code = req.get("exit_code", 0)
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
            raise ProtocolError("'exit_code' must be an integer from 0 to 255")
        log.info(f"shutdown requested by pid {client.pid} (exit code {code})")
        self.services.request_exit(code)
        client.send({"ok": True})
