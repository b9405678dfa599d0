"""The `logs` request (svctl logs [-f]): the last lines of services, kept by pyinit
in prefix and file mode; with `follow`, every new line after them until the client
goes away. One service: its lines as it wrote them. Several (or a group's
instances), or none for every service pyinit keeps lines of: their lines merged
in the order pyinit read them, each with its service's name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pyinit.core.bounds import render
from pyinit.core.protocol import ProtocolError
from pyinit.services.api import Services

if TYPE_CHECKING:
    from pyinit.control.server import Client
    from pyinit.control.status import Status
    from pyinit.core.views import ServiceView

MAX_LINES = 100000
HOW_TO_KEEP = "`log: prefix` in service.yaml, or pyinit --log-mode prefix"


class Logs:
    def __init__(self, services: Services, status: Status) -> None:
        self.services = services
        self.status = status

    def logs(self, client: Client, req: dict[str, Any]) -> None:
        if not client.privileged:
            raise ProtocolError(f"permission denied: uid {client.uid} may not read logs")
        names, count = req["services"], req.get("lines", 10)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_LINES:
            raise ProtocolError(f"'lines' must be an integer from 0 to {MAX_LINES}")
        found = self.status.resolve(names[0]) if len(names) == 1 else None
        if found is None and (len(names) != 1 or self.status.members(names[0]) is not None):
            self.merged(client, names, count, bool(req.get("follow")))  # several, or a group
            return
        if found is None:
            raise ProtocolError(f"no such service {render(names[0], 120)}")
        view = self.services.view(found)
        lines = self.services.log_tail(view.name, count)
        if lines is None:
            raise ProtocolError(f"pyinit keeps no lines of {view.name}: {keeps_none(view)}")
        follow = bool(req.get("follow"))
        client.streaming = follow
        client.send({"ok": True, "follow": follow, "lines": [_text(line) for line in lines]})
        if follow and not client.closed:

            def send(line: bytes) -> None:
                client.send({"line": _text(line)})

            client.on_close.append(self.services.follow_log(view.name, send))

    def merged(self, client: Client, names: list[str], count: int, follow: bool) -> None:
        """Several services (none: all pyinit keeps lines of): `entries` of
        [service, line], oldest first, the last `count` of them all."""
        chosen = self.chosen(names)
        history: list[tuple[int, str, bytes]] = []
        for name in chosen:
            for place, line in self.services.log_history(name, count) or []:
                history.append((place, name, line))
        history.sort(key=lambda entry: entry[0])
        entries = [[name, _text(line)] for _, name, line in history[max(0, len(history) - count) :]]
        client.streaming = follow
        client.send({"ok": True, "follow": follow, "services": chosen, "entries": entries})
        if follow and not client.closed:
            for name in chosen:
                client.on_close.append(self.services.follow_log(name, _sender(client, name)))

    def chosen(self, names: list[str]) -> list[str]:
        """The services whose lines a merged request gets, in name order for none;
        an error names a service pyinit keeps no lines of, or none at all."""
        if not names:
            views = [self.services.view(run) for run in self.status.all_runs()]
            kept = [v.name for v in views if self.services.log_history(v.name, 0) is not None]
            if not kept:
                modes = {v.log_mode for v in views}
                how = f" (to keep them: {HOW_TO_KEEP})" if "inherit" in modes else ""
                raise ProtocolError(f"pyinit keeps no lines of any service{how}")
            return kept
        out: list[str] = []
        for name in names:
            found = self.status.resolve(name)
            members = self.status.members(name) if found is None else None
            if found is None and members is None:
                raise ProtocolError(f"no such service {render(name, 120)}")
            for slot in [found] if found is not None else members or []:
                view = self.services.view(slot)
                if self.services.log_history(view.name, 0) is None:
                    raise ProtocolError(f"pyinit keeps no lines of {view.name}: {keeps_none(view)}")
                if view.name not in out:
                    out.append(view.name)
        return out


def keeps_none(view: ServiceView) -> str:
    """Why pyinit keeps no lines of a service, and (inherit) how to make it keep them."""
    return {
        "runit": "its own logger (log/run) has them",
        "inherit": "it writes to the container's output directly (log mode inherit; to keep "
        f"its lines: {HOW_TO_KEEP})",
    }.get(view.log_mode, f"it has not started yet (log mode {view.log_mode})")


def _sender(client: Client, name: str) -> Callable[[bytes], None]:
    def send(line: bytes) -> None:
        client.send({"service": name, "line": _text(line)})

    return send


def _text(line: bytes) -> str:
    """A line for JSON; bytes that are not UTF-8 survive as surrogate escapes."""
    return line.decode("utf-8", "surrogateescape")
