"""`svctl run NAME...`: start scheduled jobs now, under each one's overlap rule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyinit.control.commands import read_only
from pyinit.core.protocol import ProtocolError
from pyinit.services.api import Services

if TYPE_CHECKING:
    from pyinit.control.server import Client
    from pyinit.control.status import Status

NOT_A_JOB = "not a scheduled job (no 'schedule' or 'every' in its service.yaml)"


def run(services: Services, status: Status, client: Client, req: dict[str, Any]) -> None:
    """One result per name: ok with what the overlap rule did ("run", "skipped",
    "queued", "stop-and-run", "" when a run is queued already), or an error."""
    if not client.privileged:
        raise read_only(client)
    if services.shutting_down:
        raise ProtocolError("pyinit is shutting down")
    if not req["services"]:
        raise ProtocolError("'run' needs at least one service")
    results = []
    for name in req["services"]:
        slot = status.resolve(name)
        if slot is None or services.is_log(slot):
            results.append({"service": name, "ok": False, "error": "no such service"})
            continue
        view = services.view(slot)
        done = services.run_job(view.name) if not view.error else None
        if done is None:
            results.append({"service": name, "ok": False, "error": view.error or NOT_A_JOB})
        else:
            results.append({"service": name, "ok": True, "result": done})
    client.send({"ok": True, "results": results})
