"""The requests that change services: control (svctl's letters; `up` makes a
template's instance on demand), wait (the same letters, answered once they took
effect, by waits.py) and scale. A group's name stands for all of its instances."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from pyinit.control.waits import MAX_WAITS, Waiter, Waits
from pyinit.core import instances
from pyinit.core.machine import LETTERS
from pyinit.core.protocol import ProtocolError
from pyinit.services.api import Handle, Services

if TYPE_CHECKING:
    from pyinit.control.server import Client
    from pyinit.control.status import Status

Result = dict[str, Any]


def read_only(client: Client) -> ProtocolError:
    return ProtocolError(f"permission denied: uid {client.uid} may only read status")


class Commands:
    def __init__(self, services: Services, status: Status, waits: Waits) -> None:
        self.services = services
        self.status = status
        self.waits = waits

    def control(self, client: Client, req: dict[str, Any]) -> None:
        """Apply svctl letters to services; with "wait", reply once they took effect."""
        cmd = req["cmd"]
        letters, wait = self.checked(client, req)
        asked_at = self.status.clock()
        names = req["services"] or sorted(self.services.names(), key=instances.sort_key)
        targets, errors = self.targets(names, letters, cmd)
        if cmd == "control":
            for _, slot in targets:
                self.services.command(slot, letters)
        if wait is None:
            ok = [{"service": name, "ok": True} for name, _ in targets]
            client.send({"ok": True, "results": errors + ok})
            return
        self.waits.add(Waiter(client, letters, targets, asked_at, errors), float(wait))

    def checked(self, client: Client, req: dict[str, Any]) -> tuple[str, Optional[float]]:
        """The request's letters and wait, if it may have them (ProtocolError if not)."""
        letters, cmd = req.get("action"), req["cmd"]
        if cmd == "wait":
            allowed = LETTERS | {"C"}
        elif not client.privileged:
            raise read_only(client)
        else:
            allowed = LETTERS
        if not isinstance(letters, str) or not letters or set(letters) - allowed:
            raise ProtocolError(f"'action' must be letters from {''.join(sorted(allowed))}")
        wait = req.get("wait")
        if wait is not None and (not isinstance(wait, (int, float)) or not 0 <= wait <= 86400):
            raise ProtocolError("'wait' must be a number of seconds up to 86400")
        if self.services.shutting_down and cmd == "control":
            raise ProtocolError("pyinit is shutting down")
        if wait is not None and self.waits.pending(client) >= MAX_WAITS:
            raise ProtocolError(f"at most {MAX_WAITS} waits may be pending on one connection")
        return letters, wait

    def targets(
        self, names: list[str], letters: str, cmd: str
    ) -> tuple[list[tuple[str, Handle]], list[Result]]:
        """The slots names stand for, and an error result for each name that fails."""
        targets: list[tuple[str, Handle]] = []
        errors: list[Result] = []
        for name in names:
            found = self.status.resolve(name)
            members = self.status.members(name) if found is None else None
            if members is not None:
                for run in members:
                    view = self.services.view(run)
                    if view.error and view.run.down:
                        errors.append({"service": view.name, "ok": False, "error": view.error})
                    else:
                        targets.append((view.name, run))
                continue
            if found is None and self.rotate_file_log(name, letters, cmd):
                errors.append({"service": name, "ok": True})
                continue
            if found is None and cmd == "control" and set(letters) & set("uo"):
                problem = self.services.instantiate(name)  # `svctl up T@NAME`: on demand
                found = self.status.resolve(name) if problem is None else None
                if problem is not None and problem != "no such service":
                    errors.append({"service": name, "ok": False, "error": problem})
                    continue
            error = self.unusable(found)
            if error is not None:
                errors.append({"service": name, "ok": False, "error": error})
            else:
                targets.append((name, found))
        return targets, errors

    def unusable(self, slot: Optional[Handle]) -> Optional[str]:
        """Why slot cannot take a command: none, or its definition's error while down."""
        if slot is None:
            return "no such service"
        view = self.services.view(slot)
        process = view.log if self.services.is_log(slot) and view.log else view.run
        return view.error if view.error and process.down else None

    def rotate_file_log(self, name: str, letters: str, cmd: str) -> bool:
        """`svctl hup NAME/log` for a service in file mode: a new `current`."""
        text = name.rstrip("/")
        base = text[: -len("/log")] if text.endswith("/log") else None
        if not base or letters != "h" or not self.services.file_log(base):
            return False
        if cmd == "control":
            self.services.rotate_log(base)
        return True

    def scale(self, client: Client, req: dict[str, Any]) -> None:
        """`svctl scale NAME N`: a counted service's instances become NAME@1..NAME@N."""
        if not client.privileged:
            raise read_only(client)
        if self.services.shutting_down:
            raise ProtocolError("pyinit is shutting down")
        names, count = req["services"], req.get("count")
        if len(names) != 1:
            raise ProtocolError("'scale' takes exactly one service")
        problem = instances.bad_count(count)
        if problem is not None:
            raise ProtocolError(f"'count': {problem}")
        result: Result = {"service": names[0], "ok": True}
        if self.services.counted(names[0]):
            self.services.scale(names[0], count)
        else:
            result.update(
                ok=False,
                error="not a counted service (no 'instances' in its service.yaml)"
                if self.status.resolve(names[0]) is not None
                else "no such service",
            )
        client.send({"ok": True, "results": [result]})
