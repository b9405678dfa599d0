"""supervisord's processes as pyinit services: pure (a Conf in, Service records out).

Each process becomes a service directory named as supervisorctl names it
(`NAME`, or `GROUP:NAME` in a group or with numprocs), with a `run` that sets its
output streams up and execs the command as supervisord does (shlex-split, no
shell), a `service.yaml` and, for autostart=false, a `down` file. What pyinit
does not do is a note, one line each, never silence (docs/migration.md lists
every key). An [eventlistener:x]'s process is a service too, whose `run` execs
the bridge (foreign/supervisord_bridge.py) with the listener's command: `eventlistener`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from pyinit.foreign.supervisord_conf import PROGRAM_KEYS, Conf, ConfError, Process, show

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@:-]*$")  # core/schema.py's service names
MIN_LOG_SIZE, MAX_LOG_SIZE = 4096, 1024**4  # service.yaml's log.max_size bounds
TTY = {"/dev/stdout": "&3", "/dev/fd/1": "&3", "/proc/self/fd/1": "&3",
       "/dev/stderr": "&4", "/dev/fd/2": "&4", "/proc/self/fd/2": "&4"}  # fmt: skip
# [supervisord] keys: what each does here (docs/migration.md)
SUPERVISORD_SILENT = frozenset({"nodaemon", "identifier", "nocleanup", "childlogdir",
                                "loglevel", "directory", "user", "umask"})  # fmt: skip
SUPERVISORD_NAMED = {
    "logfile": "pyinit's own messages go to its stderr",
    "logfile_maxbytes": "pyinit's own messages go to its stderr",
    "logfile_backups": "pyinit's own messages go to its stderr",
    "pidfile": "not written (pyinit is PID 1; supervisorctl finds it by its socket)",
    "minfds": "not applied: set the limit on the container (--ulimit nofile=N)",
    "minprocs": "not applied: set the limit on the container (--ulimit nproc=N)",
    "strip_ansi": "not done: output is passed on as written",
    "silent": "not applied: pyinit's own messages still go to its stderr",
}
# sections with no meaning for pyinit: silently fine
SILENT_SECTIONS = frozenset({"supervisord", "include", "supervisorctl", "rpcinterface:supervisor"})
PREFIXES = ("program:", "group:", "eventlistener:")


@dataclass(frozen=True)
class Service:
    """One service dir to write: its name, `run` text, service.yaml and `down` file."""

    name: str
    run: str
    config: dict[str, Any] = field(default_factory=dict)
    down: bool = False

    def yaml(self) -> str:
        """service.yaml's text: JSON, which YAML reads as it is."""
        return json.dumps(self.config, indent=1, sort_keys=True) + "\n"


def translate(
    conf: Conf, cwd: str, root: bool = True, python: str = "python3"
) -> tuple[list[Service], list[str]]:
    """The services for conf's processes and event listeners, and the notes (one
    line each) on what pyinit does differently or not at all. cwd: supervisord's
    working directory; python: the interpreter an event listener's bridge runs on."""
    notes = list(conf.notes) + sections(conf) + supervisord_notes(conf)
    sup = conf.supervisord
    cwd = absolute(sup.get("directory", "").strip() or cwd, cwd)
    defaults: dict[str, Any] = {}
    if sup.get("user", "").strip() not in ("", "root", "0"):
        defaults["user"] = sup["user"].strip()
    umask = sup.get("umask", "").strip()
    if umask:
        try:
            value = int(umask, 8) if len(umask) < 8 else -1
        except ValueError:
            value = -1
        if not 0 <= value <= 0o777:
            raise ConfError(f"[supervisord] umask: not an octal mode: {show(umask)}")
        defaults["umask"] = f"{value:03o}"
    services = []
    every = sorted(conf.processes + conf.listeners, key=lambda p: (p.priority, p.namespec))
    levels = sorted({p.priority for p in every})
    for p in every:
        if not NAME.match(p.namespec):
            raise ConfError(f"[{p.section}]: {show(p.namespec)} cannot be a service name")
        before = [levels[i - 1] for i, v in enumerate(levels) if v == p.priority and i > 0]
        after = [q.namespec for q in every if before and q.priority == before[0]]
        if p.listener:
            services.append(eventlistener(p, conf, cwd, dict(defaults), after, notes, python))
        else:
            services.append(service(p, conf, cwd, dict(defaults), after, notes))
    return services, notes


def absolute(path: str, cwd: str) -> str:
    return path if path.startswith("/") else f"{cwd.rstrip('/')}/{path}"


def sections(conf: Conf) -> list[str]:
    """One line for each section pyinit does not act on and that is not harmless."""
    out = []
    for section in conf.sections:
        if section in SILENT_SECTIONS or section.startswith(PREFIXES):
            continue
        if section in ("unix_http_server", "inet_http_server"):
            why = "not served: supervisorctl talks to pyinit's control socket"
        elif section.startswith("fcgi-program:"):
            why = "not supported: pyinit does not create FastCGI sockets"
        elif section.startswith(("rpcinterface:", "ctlplugin:")):
            why = "not supported: supervisord plugins do not run under pyinit"
        else:
            why = "unknown section: ignored"
        out.append(f"[{section}] {why}")
    return out


def supervisord_notes(conf: Conf) -> list[str]:
    out = []
    for key, value in conf.supervisord.items():
        if key in SUPERVISORD_SILENT:
            continue
        if key == "logfile" and value.strip() in ("/dev/stdout", "/dev/stderr", "/dev/null"):
            continue
        if key.startswith("logfile_") and conf.supervisord.get("logfile", "").strip() in (
            "/dev/stdout", "/dev/stderr", "/dev/null"):  # fmt: skip
            continue
        why = SUPERVISORD_NAMED.get(key, "unknown key: ignored")
        out.append(f"[supervisord] {key}: {why}")
    return out


BRIDGE = "pyinit.foreign.supervisord_bridge"


def eventlistener(
    p: Process,
    conf: Conf,
    cwd: str,
    config: dict[str, Any],
    after: list[str],
    notes: list[str],
    python: str,
) -> Service:
    """An [eventlistener:x]'s process: a service whose run execs the bridge, which
    runs the listener's command as its child (as `user`, the bridge staying root to
    read pyinit's events) and speaks supervisord's protocol on its stdin/stdout.
    Its other keys are a program's; stdout is the protocol, so only stderr is logged."""
    from pyinit.foreign.supervisord_events import EventsError, subscription

    where = f"[{p.section}]"
    try:
        _, missing = subscription(p.events)
    except EventsError as exc:
        raise ConfError(f"{where} events: {exc}") from None
    if missing:
        notes.append(f"{where} events: not provided by pyinit, never sent: {', '.join(missing)}")
    if p.result_handler not in ("", "supervisor.dispatchers:default_handler"):
        notes.append(f"{where} result_handler: only the default is provided, "
                     f"{show(p.result_handler)} is not imported (OK acknowledges, "
                     "anything else sends the event again)")  # fmt: skip
    for key in ("stdout_logfile", "stdout_logfile_maxbytes", "stdout_logfile_backups"):
        if key in p.keys:
            notes.append(f"{where} {key}: not written: stdout is the eventlistener protocol")
    pool = [q for q in conf.listeners if q.section == p.section]
    if len(pool) > 1 and p is pool[0]:
        notes.append(f"{where} numprocs: each process gets every event (not one of the pool)")
    keys = tuple(k for k in p.keys if k not in ("events", "buffer_size", "result_handler")
                 and not k.startswith("stdout_logfile"))  # fmt: skip
    inner = dataclasses.replace(p, stdout_logfile="NONE", keys=keys)
    out = service(inner, conf, cwd, config, after, notes)
    user = out.config.pop("user", None)
    server = conf.supervisord.get("identifier", "").strip() or "supervisor"
    bridge = [python, "-I", "-m", BRIDGE, "--pool", p.group, "--events", p.events,
              "--buffer-size", str(p.buffer_size), "--server", server]  # fmt: skip
    if user:
        bridge += ["--user", user]
    for q in conf.processes:
        if q.exitcodes != (0,):
            bridge += ["--exitcodes", f"{q.namespec}={','.join(map(str, q.exitcodes))}"]
    lines = out.run.rstrip("\n").split("\n")
    lines[-1] = "exec " + " ".join(shlex.quote(a) for a in bridge + ["--"]) + lines[-1][4:]
    return dataclasses.replace(out, run="\n".join(lines) + "\n")


PROGRAM_NAMED = {
    "stdout_capture_maxbytes": "not supported: no PROCESS_COMMUNICATION events",
    "stderr_capture_maxbytes": "not supported: no PROCESS_COMMUNICATION events",
    "stdout_events_enabled": "not supported: no PROCESS_LOG events",
    "stderr_events_enabled": "not supported: no PROCESS_LOG events",
    "stdout_syslog": "not supported: the lines go where stdout_logfile says",
    "stderr_syslog": "not supported: the lines go where stderr_logfile says",
    "serverurl": "not set as SUPERVISOR_SERVER_URL: supervisorctl talks to pyinit's socket",
}
HANDLED = PROGRAM_KEYS - set(PROGRAM_NAMED)  # each one mapped by service() or output()


def service(
    p: Process, conf: Conf, cwd: str, config: dict[str, Any], after: list[str], notes: list[str]
) -> Service:
    """One process's service: restart policy, stopping, environment, output."""
    where = f"[{p.section}]"
    for key in p.keys:
        if key not in HANDLED:
            notes.append(f"{where} {key}: {PROGRAM_NAMED.get(key, 'unknown key: ignored')}")
    config["restart"] = {"true": "always", "false": "never"}.get(p.autorestart, "on-failure")
    config["success_exit_codes"] = list(p.exitcodes)
    if p.startsecs > 0:  # RUNNING after startsecs; an exit before is a failed start
        config["ready"] = {"settle": p.startsecs}
        config["max_restarts"] = max(1, p.startretries)
        config["restart_window"] = restart_window(p.startsecs, p.startretries)
    config.update(stop_signal=p.stopsignal, stop_timeout=p.stopwaitsecs)
    config.update(stop_group=p.stopasgroup, kill_group=p.killasgroup)
    if after:
        config["after"] = after
    config["working_directory"] = absolute(p.directory, cwd) if p.directory else cwd
    if p.user:
        config["user"] = p.user
    if p.umask is not None:
        config["umask"] = f"{p.umask:03o}"
    env = dict(conf.environment)
    env.update(p.environment)
    env.update(SUPERVISOR_ENABLED="1", SUPERVISOR_PROCESS_NAME=p.name)
    env["SUPERVISOR_GROUP_NAME"] = p.group
    config["environment"] = env
    redirects, log = output(p, conf, notes)
    if log is not None:
        config["log"] = log
    try:
        argv = shlex.split(p.command)
    except ValueError as exc:
        raise ConfError(f"{where} command: {exc}: {show(p.command)}") from None
    if not argv:
        raise ConfError(f"{where} command: empty")
    source = repr(p.file or "supervisord.conf")[1:-1]  # a newline in a file name is no command
    lines = ["#!/bin/sh", f"# {where} of {source}, as pyinit's service"]
    lines += redirects + ["exec " + " ".join(shlex.quote(a) for a in argv), ""]
    return Service(p.namespec, "\n".join(lines), config, down=not p.autostart)


def output(p: Process, conf: Conf, notes: list[str]) -> tuple[list[str], Any]:
    """The run script's redirections and service.yaml's `log` for stdout_logfile,
    stderr_logfile and redirect_stderr: /dev/stdout and /dev/stderr are the
    container's own (inherit mode), NONE is /dev/null, a file or AUTO is pyinit's
    file mode (one directory for both streams)."""
    where = f"[{p.section}]"
    targets = {"stdout": p.stdout_logfile, "stderr": "1" if p.redirect_stderr else p.stderr_logfile}
    for stream, target in targets.items():
        if target == "SYSLOG":
            notes.append(f"{where} {stream}_syslog: not supported, discarded")
            targets[stream] = "NONE"
    if any(t in TTY for t in targets.values()):  # AUTO beside /dev/stdout: the container's
        for stream, target in targets.items():
            if target == "AUTO":
                targets[stream] = f"/dev/{stream}"
                if f"{stream}_logfile" in p.keys:
                    notes.append(f"{where} {stream}_logfile=AUTO: to the container's {stream}")
    files = [(s, t) for s, t in targets.items() if t not in TTY and t not in ("NONE", "1")]
    if files:  # pyinit captures both streams into one log; NONE stays discarded
        stream, target = files[0]
        log = file_log(p, conf, stream, target)
        for other, t in targets.items():
            if other != stream and t not in ("NONE", "1") and f"{other}_logfile" in p.keys:
                notes.append(f"{where} {other}_logfile: written with {stream} to {log['dir']}")
        return [f"exec {fd}>/dev/null" for fd, t in ((1, targets["stdout"]), (2, targets["stderr"]))
                if t == "NONE"], log  # fmt: skip
    plan = {
        s: "/dev/null" if t == "NONE" else "&1" if t == "1" else TTY[t] for s, t in targets.items()
    }
    if plan["stdout"] == "&3" and plan["stderr"] in ("&4", "&1"):
        return ([] if plan["stderr"] == "&4" else ["exec 2>&1"]), None
    return ["exec 3>&1 4>&2", f"exec 1>{plan['stdout']} 2>{plan['stderr']} 3>&- 4>&-"], None


def file_log(p: Process, conf: Conf, stream: str, target: str) -> dict[str, Any]:
    """pyinit's file mode for a supervisord log file: the directory PATH.d (`current`
    and rotated files), rotated at its maxbytes (0, never: pyinit's largest size);
    AUTO: CHILDLOGDIR/NAME, or pyinit's default directory without childlogdir."""
    if target == "AUTO":
        childlogdir = conf.supervisord.get("childlogdir", "").strip()
        name = p.namespec.replace(":", "_")
        directory = (
            f"{childlogdir.rstrip('/')}/{name}" if childlogdir else f"/var/log/pyinit/{name}"
        )
    else:
        directory = absolute(target, "/") + ".d"
    size = getattr(p, f"{stream}_maxbytes") or MAX_LOG_SIZE
    return {
        "mode": "file",
        "dir": directory,
        "max_size": min(max(size, MIN_LOG_SIZE), MAX_LOG_SIZE),
        "max_files": min(max(1, getattr(p, f"{stream}_backups")), 1000),
    }


def restart_window(startsecs: int, startretries: int) -> int:
    """The window for max_restarts=startretries: each failed start lives under
    startsecs, and pyinit's default backoff (0.1 s doubling up to 10 s) waits
    between them; a process that lives longer than that never fills it."""
    backoff = sum(min(0.1 * 2**i, 10.0) for i in range(min(startretries, 64)))
    return max(1, int(startsecs * max(1, startretries) + backoff + 0.999))
