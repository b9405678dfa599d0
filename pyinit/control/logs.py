"""The `logs` request (svctl logs [-f]): a service's last lines, kept by pyinit in
prefix and file mode; with `follow`, every new line after them until the client
goes away."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyinit.core.bounds import render
from pyinit.core.protocol import ProtocolError
from pyinit.services.api import Services

if TYPE_CHECKING:
    from pyinit.control.server import Client
    from pyinit.control.status import Status

MAX_LINES = 100000


class Logs:
    def __init__(self, services: Services, status: Status) -> None:
        self.services = services
        self.status = status

    def logs(self, client: Client, req: dict[str, Any]) -> None:
        if not client.privileged:
            raise ProtocolError(f"permission denied: uid {client.uid} may not read logs")
        names, count = req["services"], req.get("lines", 10)
        if len(names) != 1:
            raise ProtocolError("'logs' takes exactly one service")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_LINES:
            raise ProtocolError(f"'lines' must be an integer from 0 to {MAX_LINES}")
        found = self.status.resolve(names[0])
        if found is None:
            raise ProtocolError(f"no such service {render(names[0], 120)}")
        view = self.services.view(found)
        lines = self.services.log_tail(view.name, count)
        if lines is None:
            where = {
                "runit": "its own logger (log/run) has them",
                "inherit": "it writes to the container's output directly (log mode inherit)",
            }.get(view.log_mode, f"it has not started yet (log mode {view.log_mode})")
            raise ProtocolError(f"pyinit keeps no lines of {view.name}: {where}")
        follow = bool(req.get("follow"))
        client.streaming = follow
        client.send({"ok": True, "follow": follow, "lines": [_text(line) for line in lines]})
        if follow and not client.closed:

            def send(line: bytes) -> None:
                client.send({"line": _text(line)})

            client.on_close.append(self.services.follow_log(view.name, send))


def _text(line: bytes) -> str:
    """A line for JSON; bytes that are not UTF-8 survive as surrogate escapes."""
    return line.decode("utf-8", "surrogateescape")
