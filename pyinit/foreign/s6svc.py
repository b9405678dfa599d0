"""s6's `s6-svc` and `s6-svstat` command lines over pyinit's control requests: pure
(argv in, runit control letters out; a status record in, s6-svstat's text out)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from pyinit.core import bounds, signames

# s6-svc's letters as runit control letters (pyinit's control socket speaks runit's)
SVC_LETTERS = {
    "a": "a", "q": "q", "h": "h", "k": "k", "t": "t", "i": "i", "1": "1", "2": "2",
    "p": "p", "c": "c", "o": "o", "d": "d", "u": "u", "x": "x",
    "r": "t",  # restart: the stop signal, then run starts again (want up)
    "O": "o",  # once at most: as once
    "D": "d",  # down, and do not restart (pyinit never restarts a service wanted down)
    "U": "u",
}  # fmt: skip
UNSUPPORTED_SVC = {"b": "SIGABRT", "y": "SIGWINCH", "P": "-P", "C": "-C", "K": "-K"}
SVSTAT_FIELDS = ("up", "wantedup", "normallyup", "ready", "paused", "pid", "exitcode",
                 "signal", "signum", "updownfor", "readyfor")  # fmt: skip
SVSTAT_LETTERS = {"u": "up", "w": "wantedup", "N": "normallyup", "r": "ready",
                  "p": "pid", "e": "exitcode", "s": "signal"}  # fmt: skip
SVC_USAGE = (
    "usage: s6-svc [ -wu | -wU | -wd | -wD ] [ -T timeout ] [ -abqhkti12pcrPoduDUxO ] servicedir"
)
SVSTAT_USAGE = "usage: s6-svstat [ -uwNrpes | -o up,wantedup,... ] servicedir"


class Usage(ValueError):
    """A command line s6-svc or s6-svstat would refuse (exit 100, as s6's tools)."""


@dataclass
class SvcRequest:
    """What one s6-svc line asks: runit letters, a wait (u, U, d, D) and its limit."""

    service: str
    letters: str = ""
    wait: Optional[str] = None
    timeout: Optional[float] = None


def service_name(path: str) -> str:
    """The pyinit service a service dir path names: its last component
    (/run/service/NAME, /etc/s6-overlay/s6-rc.d/NAME, `.` from inside it)."""
    path = os.path.normpath(os.path.abspath(path)) if path in (".", "./") else path
    name = os.path.basename(path.rstrip("/"))
    if not name or name in (".", ".."):
        raise Usage(f"not a service dir: {bounds.render(path)}")
    return name


def parse_svc(argv: list[str]) -> SvcRequest:
    """s6-svc's options (clustered or not) and its one service dir."""
    letters, wait, timeout, rest = "", None, None, list(argv)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        opt = rest.pop(0)
        if opt == "--":
            break
        i = 1
        while i < len(opt):
            c = opt[i]
            if c in ("w", "T", "s"):
                value = opt[i + 1 :] or (rest.pop(0) if rest else "")
                if c == "w":
                    if value[:1] not in ("u", "U", "d", "D", "r", "R") or len(value) != 1:
                        raise Usage(f"-w{bounds.render(value)}: want -wu, -wU, -wd or -wD")
                    wait = value.lower() if value in ("r", "R") else value
                elif c == "T":
                    ms = bounds.small_number(value, 86400 * 1000)
                    if ms is None:
                        raise Usage(f"-T {bounds.render(value)}: not a number of milliseconds")
                    timeout = ms / 1000 if ms else None
                else:
                    letters += _signal_letter(value)
                break
            if c in UNSUPPORTED_SVC:
                raise Usage(f"-{c} ({UNSUPPORTED_SVC[c]}) is not supported by pyinit")
            if c not in SVC_LETTERS:
                raise Usage(f"unknown option -{bounds.render(c)}")
            letters += SVC_LETTERS[c]
            i += 1
    if len(rest) != 1:
        raise Usage("one service dir expected")
    return SvcRequest(service_name(rest[0]), letters, wait, timeout)


def _signal_letter(text: str) -> str:
    """-s SIG: the runit letter sending that signal (pyinit's control letters)."""
    try:
        sig = signames.name(signames.parse(text))
    except ValueError as exc:
        raise Usage(f"-s: {exc}") from None
    by_signal = {"SIGALRM": "a", "SIGQUIT": "q", "SIGHUP": "h", "SIGKILL": "k",
                 "SIGTERM": "t", "SIGINT": "i", "SIGUSR1": "1", "SIGUSR2": "2",
                 "SIGSTOP": "p", "SIGCONT": "c"}  # fmt: skip
    if sig not in by_signal:
        raise Usage(f"-s {sig}: pyinit's control socket cannot send it")
    return by_signal[sig]


def parse_svstat(argv: list[str]) -> tuple[list[str], str]:
    """s6-svstat's options: the fields asked (None: the status line) and the service."""
    fields: list[str] = []
    rest = list(argv)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        opt = rest.pop(0)
        if opt == "--":
            break
        if opt.startswith("-o"):
            value = opt[2:] or (rest.pop(0) if rest else "")
            for name in value.split(","):
                if name not in SVSTAT_FIELDS:
                    raise Usage(f"-o: unknown or unsupported field {bounds.render(name)}")
                fields.append(name)
            continue
        for c in opt[1:]:
            if c not in SVSTAT_LETTERS:
                raise Usage(f"unknown option -{bounds.render(c)}")
            fields.append(SVSTAT_LETTERS[c])
    if len(rest) != 1:
        raise Usage("one service dir expected")
    return fields, service_name(rest[0])


def _is_up(rec: dict[str, Any]) -> bool:
    return bool(rec.get("pid")) and rec.get("state") == "run"


def svstat_line(rec: dict[str, Any]) -> str:
    """s6-svstat's line: `up (pid 12) 5 seconds, ready 5 seconds` or
    `down (exitcode 0) 3 seconds, normally up, want up` (pyinit keeps no separate
    ready time: a ready service's ready time is its up time)."""
    up, seconds = _is_up(rec), int(rec.get("uptime") or 0)
    if up:
        head = f"up (pid {rec['pid']}) {seconds} seconds"
    elif rec.get("last_signal"):
        head = f"down (signal {signames.name(int(rec['last_signal']))}) {seconds} seconds"
    else:
        head = f"down (exitcode {rec.get('last_exit_code') or 0}) {seconds} seconds"
    parts = [head]
    normally_up = bool(rec.get("normally_up", True))
    if up and not normally_up:
        parts.append("normally down")
    if not up and normally_up:
        parts.append("normally up")
    if up and rec.get("paused"):
        parts.append("paused")
    if not up and rec.get("want") == "u":
        parts.append("want up")
    if up and rec.get("want") == "d":
        parts.append("want down")
    if rec.get("ready"):
        parts.append(f"ready {seconds} seconds")
    return ", ".join(parts)


def svstat_fields(rec: dict[str, Any], fields: list[str]) -> str:
    """The -o values, space-separated, as s6-svstat prints them."""
    up, seconds = _is_up(rec), int(rec.get("uptime") or 0)
    signum = rec.get("last_signal") if not up else None
    values = {
        "up": up,
        "wantedup": rec.get("want") == "u",
        "normallyup": bool(rec.get("normally_up", True)),
        "ready": bool(rec.get("ready")),
        "paused": bool(rec.get("paused")),
        "pid": rec["pid"] if up else -1,
        "exitcode": -1 if up or signum else (rec.get("last_exit_code") or 0),
        "signal": signames.name(int(signum)) if signum else "NA",
        "signum": int(signum) if signum else -1,
        "updownfor": seconds,
        "readyfor": seconds if rec.get("ready") else 0,
    }
    return " ".join(
        str(values[f]).lower() if isinstance(values[f], bool) else str(values[f]) for f in fields
    )
