"""supervisorctl's view of pyinit's status records: pure (records in, lines out).

States as supervisord names them (supervisor/states.py) from a record of
docs/control-protocol.md: RUNNING (run and ready, i.e. up startsecs), STARTING
(run, not ready yet, or waiting for the programs before it), BACKOFF (a restart
pending), STOPPING (run, stop asked), STOPPED (down as asked, or never started),
EXITED (ended by itself, not restarted), FATAL (the restart limit reached, or a
definition pyinit cannot run). Descriptions and exit statuses follow
supervisorctl 4 (supervisorctl.py, rpcinterface.py).
"""

from __future__ import annotations

import time
from typing import Any, Optional

STOPPED_STATES = ("STOPPED", "EXITED", "FATAL", "UNKNOWN")
NOT_RUNNING, UNKNOWN = 3, 4  # supervisorctl's status exit codes (LSB)
TOO_QUICK = "Exited too quickly (process log may have details)"


def split(name: str) -> tuple[str, str]:
    """A service name as (group, process): `g:web` or `app` (its own group)."""
    group, sep, process = name.partition(":")
    return (group, process) if sep else (name, name)


def selects(spec: str, name: str) -> bool:
    """Whether supervisorctl's NAME, GROUP:NAME, GROUP:* or GROUP: names the service."""
    group, process = split(name)
    want_group, sep, want = spec.partition(":")
    if not sep:
        return group == spec and process == spec
    return group == want_group and want in ("", "*", process)


def uptime(seconds: float) -> str:
    """str(timedelta) of whole seconds, as supervisord shows uptime: 0:01:02, 1 day, 2:03:04."""
    secs = max(0, int(seconds))
    days, rest = divmod(secs, 86400)
    clock = f"{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return clock if not days else f"{days} day{'s' if days != 1 else ''}, {clock}"


def state(rec: dict[str, Any]) -> tuple[str, str]:
    """(STATE, description) of a status record."""
    started = rec.get("last_exit_code") is not None or rec.get("last_signal") is not None
    if rec.get("pid") and rec.get("state") in ("run", "setup"):
        if rec.get("want") == "d" or rec.get("got_term"):
            return "STOPPING", ""
        if rec.get("ready"):
            return "RUNNING", f"pid {rec['pid']}, uptime {uptime(rec.get('uptime') or 0)}"
        return "STARTING", ""
    if rec.get("error"):
        return "FATAL", str(rec["error"]).splitlines()[0][:200]
    failed = rec.get("failed")
    if failed and "restart" in failed:
        return "FATAL", TOO_QUICK
    if rec.get("next_start_in") is not None or rec.get("state") == "finish":
        return "BACKOFF", TOO_QUICK
    if rec.get("waiting_for"):
        return "STARTING", ""
    when = stop_time(rec) if started else "Not started"
    if failed or rec.get("outcome") == "exited":
        return "EXITED", when
    return ("STOPPED" if rec.get("want") == "d" else "EXITED"), when


def stop_time(rec: dict[str, Any]) -> str:
    since = rec.get("since")
    if not isinstance(since, (int, float)):
        return ""
    return time.strftime("%b %d %I:%M %p", time.localtime(since))


def status_lines(records: list[dict[str, Any]]) -> list[str]:
    """supervisorctl status's lines: NAME padded to the longest (at least 30) + 3,
    the state padded to 10, the description."""
    width = max([30] + [len(r["name"]) for r in records]) + 3
    out = []
    for rec in records:
        name, (what, desc) = rec["name"], state(rec)
        out.append(f"{name:<{width}}{what:<10}{desc}")
    return out


def pick(specs: list[str], records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The records the names select (all for none or `all`), and an error line per
    name that selects nothing, as supervisorctl words it."""
    if not specs or "all" in specs:
        return records, []
    chosen: list[dict[str, Any]] = []
    errors = []
    for spec in specs:
        found = [r for r in records if selects(spec, r["name"])]
        if not found:
            group, sep, process = spec.partition(":")
            whole = not sep or process in ("", "*")
            errors.append(f"{spec if not whole else group}: ERROR (no such "
                          f"{'group' if sep and whole else 'process'})")  # fmt: skip
        chosen += [r for r in found if r not in chosen]
    return chosen, errors


def status_code(records: list[dict[str, Any]], errors: list[str]) -> int:
    """supervisorctl status's exit status: 3 if any is not running, else 4 for an
    unknown name, else 0 (its later assignment wins, as in supervisorctl)."""
    if any(state(r)[0] in STOPPED_STATES for r in records):
        return NOT_RUNNING
    return UNKNOWN if errors else 0


def order(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: split(r["name"]))


def is_running(rec: Optional[dict[str, Any]]) -> bool:
    return bool(rec and rec.get("pid") and rec.get("state") in ("run", "setup"))
