"""`supervisorctl status|start|stop|restart|tail` over pyinit's control socket, in
supervisorctl's words and exit statuses (foreign/supervisord_ctl.py)."""

from __future__ import annotations

import os
import sys
from typing import Any

from pyinit.cli.stdio import guarded

USAGE = (
    "usage: supervisorctl [-c FILE] status|start|stop|restart [NAME...|all] | "
    "tail [-f|-BYTES] NAME | signal SIG NAME... | shutdown"
)
# the signals pyinit's control letters send (runit's): supervisorctl signal's names
LETTERS = {"HUP": "h", "ALRM": "a", "INT": "i", "QUIT": "q", "USR1": "1", "USR2": "2",
           "TERM": "t", "KILL": "k", "CONT": "c", "STOP": "p"}  # fmt: skip
GENERIC, INVALID_ARGS, NOT_RUNNING = 1, 2, 7  # supervisorctl's LSB init exit statuses
START_WAIT = 3600.0  # seconds start waits for RUNNING, FATAL or EXITED


@guarded("supervisorctl")  # a broken or full stdout
def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    while args[:1] and args[0].startswith("-"):
        opt = args.pop(0)
        if opt in ("-c", "--configuration", "-s", "--serverurl", "-u", "-p"):
            args[:1] = []  # the server is pyinit's socket; no user or password
        elif opt in ("-h", "--help"):
            print(USAGE)
            return 0
        elif not opt.startswith(("--configuration=", "--serverurl=")):
            return _usage(f"option {opt[:40]!r} is not supported")
    if not args:
        return _usage("no command given (the interactive shell is not provided)")
    command, names = args[0], args[1:]
    handler = {"status": status, "start": start, "stop": stop, "restart": restart,
               "tail": tail, "signal": signal, "shutdown": shutdown}.get(command)  # fmt: skip
    if handler is None:
        return _usage(f"*** Unknown syntax: {command[:40]}")
    try:
        return handler(names)
    except _Unreachable as exc:
        print(f"unix:///var/run/supervisor.sock no such file ({exc})")
        return 4 if command == "status" else GENERIC


class _Unreachable(Exception):
    pass


def _usage(text: str) -> int:
    sys.stderr.write(f"{USAGE}\nsupervisorctl: error: {text}\n")
    return INVALID_ARGS


def ask(payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    from pyinit.control.protocol import request
    from pyinit.core.protocol import SOCKET_NAME
    from pyinit.runtime import rundir

    path = os.path.join(rundir.find(os.environ), SOCKET_NAME)
    try:
        reply = request(path, payload, timeout)
    except (OSError, ConnectionError, ValueError) as exc:
        raise _Unreachable(getattr(exc, "strerror", None) or str(exc)) from None
    if not reply.get("ok"):
        raise _Unreachable(str(reply.get("error"))[:200])
    return reply


def records() -> list[dict[str, Any]]:
    from pyinit.foreign.supervisord_ctl import order

    return order([r for r in ask({"cmd": "status", "services": []})["services"]
                  if isinstance(r, dict) and isinstance(r.get("name"), str)])  # fmt: skip


def status(names: list[str]) -> int:
    from pyinit.foreign import supervisord_ctl as ctl

    chosen, errors = ctl.pick(names, records())
    for line in errors + ctl.status_lines(chosen):
        print(line)
    return ctl.status_code(chosen, errors)


def _chosen(names: list[str], what: str) -> tuple[list[dict[str, Any]], int]:
    from pyinit.foreign import supervisord_ctl as ctl

    if not names:
        print(f"Error: {what} requires a process name")
        return [], INVALID_ARGS if what == "start" else GENERIC
    chosen, errors = ctl.pick(names, records())
    for line in errors:
        print(line)
    return chosen, (INVALID_ARGS if what == "start" else GENERIC) if errors else 0


def start(names: list[str]) -> int:
    from pyinit.foreign import supervisord_ctl as ctl

    chosen, rc = _chosen(names, "start")
    todo = [r["name"] for r in chosen if ctl.state(r)[0] not in ("RUNNING", "STARTING")]
    for rec in chosen:
        if rec["name"] not in todo:
            print(f"{rec['name']}: ERROR (already started)")
    if not todo:
        return rc
    ask({"cmd": "control", "action": "u", "services": todo})
    reply = ask({"cmd": "wait", "action": "C", "services": todo, "wait": START_WAIT},
                timeout=START_WAIT + 10)  # fmt: skip
    for res in reply.get("results", []):
        if res.get("done"):
            print(f"{res['service']}: started")
        else:
            print(f"{res['service']}: ERROR (spawn error)")
            rc = NOT_RUNNING
    return rc


def stop(names: list[str]) -> int:
    from pyinit.foreign import supervisord_ctl as ctl

    chosen, rc = _chosen(names, "stop")
    todo = [r["name"] for r in chosen if ctl.is_running(r) or ctl.state(r)[0] == "BACKOFF"]
    for rec in chosen:
        if rec["name"] not in todo:
            print(f"{rec['name']}: ERROR (not running)")
    if not todo:
        return rc
    reply = ask({"cmd": "control", "action": "d", "services": todo, "wait": 86400},
                timeout=86400)  # fmt: skip
    for res in reply.get("results", []):
        print(f"{res['service']}: {'stopped' if res.get('done') else 'ERROR (not running)'}")
    return rc


def restart(names: list[str]) -> int:
    if not names:
        print("Error: restart requires a process name")
        return GENERIC
    code = stop(names)
    return start(names) or code


def tail(args: list[str]) -> int:
    """`tail [-f|-BYTES] NAME [stdout|stderr]`: the end of the program's log (pyinit
    keeps one log of both streams: stderr shows the same)."""
    size: int | None = 1600
    if args[:1] and args[0].startswith("-"):
        mod = args.pop(0)[1:]
        if mod == "f":
            size = None
        elif mod.isdigit() and len(mod) < 10:
            size = int(mod)
        else:
            print(f"Error: bad argument -{mod[:40]}")
            return GENERIC
    if not 1 <= len(args) <= 2 or (len(args) == 2 and args[1].lower() not in ("stdout", "stderr")):
        print("Error: tail requires a process name and an optional channel (stdout|stderr)")
        return GENERIC
    name = args[0]
    if size is None:
        from pyinit.cli import svctl

        return svctl.main(["logs", "-f", name]) or 0
    reply = ask({"cmd": "logs", "services": [name], "lines": 1000, "follow": False})
    text = "".join(f"{line}\n" for line in reply.get("lines", []) if isinstance(line, str))
    data = text.encode("utf-8", "surrogateescape")[-size:] if size else b""
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


def signal(args: list[str]) -> int:
    """`signal SIG NAME...`: the signals pyinit's control letters send (LETTERS)."""
    from pyinit.foreign import supervisord_ctl as ctl

    if len(args) < 2:
        print("Error: signal requires a signal name and a process name")
        return GENERIC
    name = args[0].upper()
    name = name[3:] if name.startswith("SIG") else name
    chosen, rc = _chosen(args[1:], "signal")
    for rec in chosen:
        if name not in LETTERS:
            print(f"{rec['name']}: ERROR (bad signal name)")
            rc = GENERIC
        elif not ctl.is_running(rec):
            print(f"{rec['name']}: ERROR (not running)")
            rc = NOT_RUNNING
        else:
            ask({"cmd": "control", "action": LETTERS[name], "services": [rec["name"]]})
            print(f"{rec['name']}: signalled")
    return rc


def shutdown(args: list[str]) -> int:
    """`shutdown`: pyinit shuts the container down (exit code 0)."""
    if args:
        print("Error: shutdown accepts no arguments")
        return GENERIC
    ask({"cmd": "shutdown", "exit_code": 0})
    print("Shut down")
    return 0
