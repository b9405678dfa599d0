"""The control socket's requests, served from the service manager's state.

status, control (svctl's letters; `up` makes a template's instance on demand),
wait (svctl -w: answered when the command took effect, re-checked on every
state change, never by polling), scale, reload, shutdown and ping. A group's
name (instances.py) stands for all of its instances. The protocol is in docs/control-protocol.md.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from pyinit.control import server as control
from pyinit.core import instances
from pyinit.core.bounds import render
from pyinit.core.machine import LETTERS
from pyinit.core.svstatus import SETTLE, hopeless, satisfied, unsettled
from pyinit.runtime import log
from pyinit.runtime.loop import Timer

if TYPE_CHECKING:
    from pyinit.services.manager import Service, ServiceManager, Slot


@dataclass
class Waiter:
    """A client waiting for its command to take effect (svctl -w)."""

    client: control.Client
    letters: str
    targets: list[tuple[str, Slot]]
    asked_at: float
    errors: list[dict[str, Any]]
    timer: Optional[Timer] = None
    recheck: Optional[Timer] = None  # svctl check: when a restarted run will have settled


class ControlRequests:
    def __init__(self, manager: ServiceManager) -> None:
        self.m = manager
        self.waiters: list[Waiter] = []
        self.server: Optional[control.Server] = None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    def record(self, slot: Slot) -> dict[str, Any]:
        m = slot.machine
        now = self.m.loop.clock()
        wall = time.time()
        rec: dict[str, Any] = {
            "state": m.state,
            "pid": m.pid if m.pid and m.pid > 0 else None,
            "since": wall - (now - m.since),
            "uptime": round(m.uptime(now), 3),
            "want": m.want,
            "paused": m.paused,
            "got_term": m.got_term,
            "restarts": m.restarts,
            "last_exit_code": m.last_exit.code if m.last_exit else None,
            "last_signal": m.last_exit.signal if m.last_exit else None,
            "next_start_in": round(m.start_at - now, 3) if m.start_at else None,
        }
        return rec

    def service_record(self, svc: Service) -> dict[str, Any]:
        rec = self.record(svc.run)
        rec.update(
            name=svc.name,
            path=svc.defn.path,
            normally_up=svc.defn.normally_up,
            error=svc.defn.error,
            user=svc.defn.user,
            settle=max(SETTLE, svc.config.ready.settle if svc.config.ready else 0.0),
            ready=svc.run.machine.ready,
            failed=svc.run.machine.failed,
            outcome=svc.run.machine.outcome,
            waiting_for=list(svc.waiting_for) if svc.run.machine.waiting else [],
            status_text=svc.status_text,
            oneshot=svc.config.oneshot,
            essential=svc.config.essential,
            log=None,
            log_mode=self.log_mode(svc),
            dropped_bytes=svc.capture.dropped() if svc.capture else 0,
            instance=svc.defn.instance,
            group=self.m.expansion.member_of.get(svc.name),
        )
        if svc.log is not None:
            rec["log"] = self.record(svc.log)
            rec["log"]["normally_up"] = True
        return capped(rec)

    def resolve(self, arg: str) -> Optional[tuple[Service, Slot]]:
        """A service by name, `name/log`, or path (as `sv` users type it)."""
        if "\0" in arg:
            return None  # no path holds a NUL (and os.path would raise)
        text = arg.rstrip("/")
        is_log = text.endswith("/log")
        base = text[: -len("/log")] if is_log else text
        svc = self.m.services.get(base)
        if svc is None and "/" in base:  # instances share a dir: their own entry's path only
            real = os.path.realpath(base)
            for candidate in self.m.services.values():
                path = candidate.defn.path
                own = os.path.basename(path) == candidate.name  # not a counted/on-demand one
                if own and os.path.abspath(path) == os.path.abspath(base) or (
                        candidate.defn.instance is None and os.path.realpath(path) == real):
                    svc = candidate
                    break
        if svc is None and is_log and arg in self.m.services:
            svc, is_log = self.m.services[arg], False
        if svc is None:
            return None
        slot = svc.log if is_log else svc.run
        return (svc, slot) if slot is not None else None

    def open_control_socket(self) -> None:
        run_dir = self.m.init.run_dir
        if run_dir is None:
            return  # no usable run dir: boot said so already
        try:
            path = os.path.join(run_dir, control.SOCKET_NAME)
            self.server = control.Server(self.m.loop, self.m.init.run_path(control.SOCKET_NAME),
                                         self.handle_request)
        except OSError as exc:
            log.warning(f"no control socket in {run_dir} ({exc.strerror or exc}): svctl will not "
                        "work")
            return
        log.debug(f"control socket at {path}")

    def handle_request(self, client: control.Client, req: dict[str, Any]) -> None:
        cmd = req["cmd"]
        if cmd in ("reload", "shutdown") and not client.privileged:
            raise control.ProtocolError(f"permission denied: uid {client.uid} may only read status")
        if cmd == "status":
            client.send({"ok": True, "services": self.status(req["services"])})
        elif cmd == "scale":
            self.scale(client, req)
        elif cmd in ("control", "wait"):
            self.control(client, req)
        elif cmd == "reload":
            self.m.reload()
            client.send({"ok": True})
        elif cmd == "shutdown":
            code = req.get("exit_code", 0)
            if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
                raise control.ProtocolError("'exit_code' must be an integer from 0 to 255")
            log.info(f"shutdown requested by pid {client.pid} (exit code {code})")
            self.m.init.request_exit(code)
            client.send({"ok": True})
        elif cmd == "logs":
            self.logs(client, req)
        elif cmd == "ping":
            from pyinit import __version__

            client.send({"ok": True, "version": __version__, "pid": os.getpid(),
                         "wakeups": self.m.loop.wakeups, "rescans": self.m.rescans,
                         "rescan_pending": self.m.rescan_timer is not None,
                         "orphans_reaped": self.m.init.reaper.strays})
        else:
            raise control.ProtocolError(f"unknown command {render(cmd, 40)}")

    def logs(self, client: control.Client, req: dict[str, Any]) -> None:
        """The last `lines` lines of a service in prefix or file mode; with `follow`,
        every new line after them, until the client goes away."""
        if not client.privileged:
            raise control.ProtocolError(f"permission denied: uid {client.uid} may not read logs")
        names, count = req["services"], req.get("lines", 10)
        if len(names) != 1:
            raise control.ProtocolError("'logs' takes exactly one service")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 100000:
            raise control.ProtocolError("'lines' must be an integer from 0 to 100000")
        found = self.resolve(names[0])
        if found is None:
            raise control.ProtocolError(f"no such service {render(names[0], 120)}")
        svc = found[0]
        capture = svc.capture
        if capture is None:
            mode = self.log_mode(svc)
            where = {"runit": "its own logger (log/run) has them",
                     "inherit": "it writes to the container's output directly (log mode "
                     "inherit)"}.get(mode, f"it has not started yet (log mode {mode})")
            raise control.ProtocolError(f"pyinit keeps no lines of {svc.name}: {where}")
        follow = bool(req.get("follow"))
        client.streaming = follow
        client.send({"ok": True, "follow": follow,
                     "lines": [_text(line) for line in capture.tail(count)]})
        if follow and not client.closed:
            def send(line: bytes) -> None:
                client.send({"line": _text(line)})

            capture.followers.append(send)
            client.on_close.append(lambda: svc.capture and _discard(svc.capture.followers, send))

    def log_mode(self, svc: Service) -> str:
        if svc.capture is not None:
            return svc.capture.mode
        settings = self.m.capture_settings(svc)
        if settings is not None:
            return settings.mode
        return "runit" if svc.defn.has_log else "inherit"

    def members(self, name: str) -> Optional[list[Service]]:
        """The instances of a group (a counted service, a template; by name or by the
        path of its directory), or None."""
        if "/" in name and "\0" not in name:
            group = os.path.basename(name.rstrip("/"))
            defn = self.m.scanned.get(group)
            if defn is not None and os.path.abspath(defn.path) == os.path.abspath(name):
                name = group
        if name in self.m.services or name not in self.m.expansion.groups:
            return None
        names = self.m.expansion.groups[name]
        return [self.m.services[n] for n in names if n in self.m.services]

    def scale(self, client: control.Client, req: dict[str, Any]) -> None:
        """`svctl scale NAME N`: a counted service's instances become NAME@1..NAME@N."""
        if not client.privileged:
            raise control.ProtocolError(f"permission denied: uid {client.uid} may only read status")
        if self.m.shutting_down:
            raise control.ProtocolError("pyinit is shutting down")
        names, count = req["services"], req.get("count")
        if len(names) != 1:
            raise control.ProtocolError("'scale' takes exactly one service")
        problem = instances.bad_count(count)
        if problem is not None:
            raise control.ProtocolError(f"'count': {problem}")
        result: dict[str, Any] = {"service": names[0], "ok": True}
        if names[0] in self.m.expansion.configured:
            self.m.scale(names[0], count)
        else:
            result.update(ok=False, error="not a counted service (no 'instances' in its "
                          "service.yaml)" if self.resolve(names[0]) else "no such service")
        client.send({"ok": True, "results": [result]})

    def status(self, names: list[str]) -> list[dict[str, Any]]:
        if not names:
            return [self.service_record(self.m.services[n])
                    for n in sorted(self.m.services, key=instances.sort_key)]
        out = []
        for name in names:
            found = self.resolve(name)
            members = self.members(name) if found is None else None
            if members is not None:
                out.extend({**self.service_record(s), "expanded": True} for s in members)
                continue
            if found is None:
                out.append({"name": name, "missing": True})
                continue
            svc, slot = found
            rec = self.status_of(slot)
            if slot is not svc.run:
                rec.update(name=f"{svc.name}/log", normally_up=True, log=None, error=None)
            out.append(rec)
        return out

    def control(self, client: control.Client, req: dict[str, Any]) -> None:
        """Apply svctl letters to services; with "wait", reply once they took effect."""
        letters = req.get("action")
        if req["cmd"] == "wait":
            allowed = LETTERS | {"C"}
        elif not client.privileged:
            raise control.ProtocolError(f"permission denied: uid {client.uid} may only read status")
        else:
            allowed = LETTERS
        if not isinstance(letters, str) or not letters or set(letters) - allowed:
            raise control.ProtocolError(f"'action' must be letters from {''.join(sorted(allowed))}")
        wait = req.get("wait")
        if wait is not None and (not isinstance(wait, (int, float)) or not 0 <= wait <= 86400):
            raise control.ProtocolError("'wait' must be a number of seconds up to 86400")
        if self.m.shutting_down and req["cmd"] == "control":
            raise control.ProtocolError("pyinit is shutting down")
        if wait is not None and sum(w.client is client for w in self.waiters) >= MAX_WAITS:
            raise control.ProtocolError(f"at most {MAX_WAITS} waits may be pending on one "
                                        "connection")
        asked_at = self.m.loop.clock()
        errors, targets = [], []
        for name in req["services"] or sorted(self.m.services, key=instances.sort_key):
            found = self.resolve(name)
            members = self.members(name) if found is None else None
            if members is not None:
                targets += [(s.name, s.run) for s in members
                            if not (s.defn.error and s.run.machine.is_down())]
                errors += [{"service": s.name, "ok": False, "error": s.defn.error}
                           for s in members if s.defn.error and s.run.machine.is_down()]
                continue
            if found is None and self.rotate_file_log(name, letters, req["cmd"]):
                errors.append({"service": name, "ok": True})
                continue
            if found is None and req["cmd"] == "control" and set(letters) & set("uo"):
                problem = self.m.instantiate(name)  # `svctl up T@NAME`: on demand
                found = self.resolve(name) if problem is None else None
                if problem is not None and problem != "no such service":
                    errors.append({"service": name, "ok": False, "error": problem})
                    continue
            if found is None:
                errors.append({"service": name, "ok": False, "error": "no such service"})
                continue
            svc, slot = found
            if svc.defn.error and slot.machine.is_down():
                errors.append({"service": name, "ok": False, "error": svc.defn.error})
                continue
            targets.append((name, slot))
        if req["cmd"] == "control":
            for _, slot in targets:
                for letter in letters:
                    self.m.apply(slot, slot.machine.command(letter, self.m.loop.clock()))
                svc = slot.service
                if svc.run.machine.removed and svc.run.machine.is_down():
                    self.m.forget(svc)
        if wait is None:
            ok = [{"service": name, "ok": True} for name, _ in targets]
            client.send({"ok": True, "results": errors + ok})
            return
        waiter = Waiter(client, letters, targets, asked_at, errors)
        waiter.timer = self.m.loop.call_later(float(wait), lambda: self.finish_wait(waiter, True))
        self.waiters.append(waiter)
        client.on_close.append(lambda: self.drop_waiter(waiter))
        self.check_waiter(waiter)

    def rotate_file_log(self, name: str, letters: str, cmd: str) -> bool:
        """`svctl hup NAME/log` for a service in file mode: a new `current`."""
        base = name.rstrip("/")[: -len("/log")] if name.rstrip("/").endswith("/log") else None
        svc = self.m.services.get(base) if base else None
        if svc is None or svc.capture is None or svc.capture.file is None or letters != "h":
            return False
        if cmd == "control":
            svc.capture.rotate()
        return True

    def after_change(self, slot: Slot) -> None:
        for waiter in list(self.waiters):
            if any(s is slot for _, s in waiter.targets):
                self.check_waiter(waiter)

    def check_waiter(self, waiter: Waiter) -> None:
        """Answer once every target is done, or (svctl check) failed for good. Settling
        changes no state, so check is re-checked by a timer when a run will have settled."""
        if waiter not in self.waiters:
            return
        if all(self.wait_done(waiter, slot) or waiter.letters == "C"
               and hopeless(self.status_of(slot)) for slot in _unique(waiter.targets)):
            self.finish_wait(waiter, False)
            return
        if "C" not in waiter.letters:
            return
        if waiter.recheck is not None:
            waiter.recheck.cancel()
            waiter.recheck = None
        delays = [unsettled(self.status_of(slot)) for _, slot in waiter.targets]
        delay = min((d for d in delays if d > 0), default=None)
        if delay is not None:
            waiter.recheck = self.m.loop.call_later(delay, lambda: self.check_waiter(waiter))

    def status_of(self, slot: Slot) -> dict[str, Any]:
        svc = slot.service
        return self.service_record(svc) if slot is svc.run else self.record(slot)

    def wait_done(self, waiter: Waiter, slot: Slot) -> bool:
        rec = self.status_of(slot)
        rec["since"] = slot.machine.since  # compared with asked_at, on the loop's clock
        return satisfied(waiter.letters, rec, waiter.asked_at)

    def finish_wait(self, waiter: Waiter, timed_out: bool) -> None:
        if waiter not in self.waiters:
            return
        self.drop_waiter(waiter)
        results = list(waiter.errors)
        for name, slot in waiter.targets:
            done = self.wait_done(waiter, slot)
            rec = self.status_of(slot)
            results.append({"service": name, "ok": True, "done": done, "status": rec})
        waiter.client.send({"ok": True, "timed_out": timed_out, "results": results})

    def drop_waiter(self, waiter: Waiter) -> None:
        if waiter in self.waiters:
            self.waiters.remove(waiter)
            if waiter.timer is not None:
                waiter.timer.cancel()
            if waiter.recheck is not None:
                waiter.recheck.cancel()




MAX_FIELD = 16384  # characters of any text in a status record
MAX_WAITS = 8  # pending waits per connection: each is re-checked at every state change


def _unique(targets: list[tuple[str, Any]]) -> list[Any]:
    """The slots of targets, each once: a name listed 1000 times is checked once."""
    return list({id(slot): slot for _, slot in targets}.values())


def capped(rec: dict[str, Any]) -> dict[str, Any]:
    """rec with every text (and every text in a list) cut to MAX_FIELD characters,
    so no file or datagram can make a status reply unbounded."""
    for key, value in rec.items():
        if isinstance(value, str) and len(value) > MAX_FIELD:
            rec[key] = value[: MAX_FIELD - 3] + "..."
        elif isinstance(value, list):
            rec[key] = [v[:MAX_FIELD] if isinstance(v, str) else v for v in value[:1000]]
    return rec


def _text(line: bytes) -> str:
    """A line for JSON; bytes that are not UTF-8 survive as surrogate escapes."""
    return line.decode("utf-8", "surrogateescape")


def _discard(items: list, item: object) -> None:
    if item in items:
        items.remove(item)
