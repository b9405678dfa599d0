"""supervisord.conf read as supervisord 4 reads it: pure (text in, records out).

The rules, each supervisord's own (supervisor/options.py, datatypes.py):
- an ini file read by configparser's RawConfigParser with `;` and `#` comments,
  also after a value when preceded by whitespace, and sections that may repeat
  (their keys merge); option names are lower-cased;
- `[include] files =` of the main file only: space-separated globs, relative to
  the main file's directory, each match read in sorted order; `%(here)s` is the
  directory of the file a value was written in;
- values are Python %-formats over `ENV_X` (pyinit's environment, then
  `[supervisord] environment`, then for a program's own keys its `environment`),
  `here`, `host_node_name`, `program_name`, `group_name`, `process_num`,
  `numprocs`; `environment` is KEY=VAL pairs split as shlex does, quotes allowed;
- numbers as int(), booleans true/false/yes/no/on/off/1/0, sizes with KB/MB/GB.

A problem is a ConfError with one line of text; reading files is the caller's
(foreign/supervisord_files.py): this module gets their text.
"""

from __future__ import annotations

import configparser
import re
import shlex
import signal
from dataclasses import dataclass, field
from typing import Callable, Optional

from pyinit.core.bounds import clip

MAX_VALUE_SHOWN = 80
MAX_NUMBER_TEXT = 24  # characters of a number (int() of a 100000-digit text is slow)
# a %-format width or precision over 999 (`%(process_num).99999999d` is 100 MB of zeros)
MAX_WIDTH = re.compile(r"%(\([^)]*\))?[-#0 +]*([0-9]{4,}|\*|[0-9]*\.([0-9]{4,}|\*))")
MAX_PROCS = 1000  # numprocs, as pyinit's instances
MAX_PROGRAMS = 1000  # processes in all
# eventlistener processes in all: each one's bridge follows pyinit's events, which at
# most 16 clients may do at once (control/events.py MAX_FOLLOWERS); past that a bridge
# would retry every second and never get an event. 4 are left for `svctl events -f`.
MAX_LISTENERS = 12


class ConfError(Exception):
    """A supervisord.conf that supervisord would refuse too: one line."""


@dataclass
class Process:
    """One process of a [program:x] (numprocs makes several), its values expanded."""

    section: str
    program: str
    group: str
    name: str  # process_name
    command: str
    priority: int = 999
    autostart: bool = True
    autorestart: str = "unexpected"  # "true", "false" or "unexpected"
    startsecs: int = 1
    startretries: int = 3
    stopsignal: str = "TERM"
    stopwaitsecs: int = 10
    stopasgroup: bool = False
    killasgroup: bool = False
    exitcodes: tuple[int, ...] = (0,)
    redirect_stderr: bool = False
    directory: Optional[str] = None
    user: Optional[str] = None
    umask: Optional[int] = None
    environment: dict[str, str] = field(default_factory=dict)
    stdout_logfile: str = "AUTO"  # AUTO, NONE, or a path
    stderr_logfile: str = "AUTO"
    stdout_maxbytes: int = 50 * 1024 * 1024
    stdout_backups: int = 10
    stderr_maxbytes: int = 50 * 1024 * 1024
    stderr_backups: int = 10
    file: str = ""
    keys: tuple[str, ...] = ()  # the keys written in its section
    # [eventlistener:x] only (listener is True): its events=, buffer_size, result_handler
    listener: bool = False
    events: str = ""
    buffer_size: int = 10
    result_handler: str = ""

    @property
    def namespec(self) -> str:
        """supervisorctl's name for it: NAME alone when it is its group's name."""
        return self.name if self.group == self.name else f"{self.group}:{self.name}"


@dataclass
class Conf:
    """What a supervisord.conf says."""

    supervisord: dict[str, str] = field(default_factory=dict)  # [supervisord], expanded
    environment: dict[str, str] = field(default_factory=dict)  # [supervisord] environment
    processes: list[Process] = field(default_factory=list)
    listeners: list[Process] = field(default_factory=list)  # [eventlistener:x]'s processes
    notes: list[str] = field(default_factory=list)  # one line each: what is not done
    files: list[str] = field(default_factory=list)  # every file read
    sections: list[str] = field(default_factory=list)  # every section, in file order


# --- values --------------------------------------------------------------------------
def show(value: str) -> str:
    return repr(clip(value, MAX_VALUE_SHOWN))


def expand(text: str, names: dict[str, object], where: str) -> str:
    """text % names, as supervisord's expand(); a huge %-format width or precision is
    refused."""
    huge = MAX_WIDTH.search(text)
    if huge:
        what = "precision" if "." in huge.group(2) else "width"
        raise ConfError(f"{where}: a %-format {what} over 999 in {show(text)}")
    try:
        return text % names
    except KeyError as exc:
        raise ConfError(
            f"{where}: {show(text)} names %({clip(str(exc.args[0]), 60)})s, which is not defined"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ConfError(f"{where}: {show(text)} is badly formatted: {exc}") from None


def integer(text: str, where: str, low: int = 0, high: int = 10**7) -> int:
    text = text.strip()
    try:
        if len(text) > MAX_NUMBER_TEXT:
            raise ValueError
        value = int(text)
    except ValueError:
        raise ConfError(f"{where}: not an integer: {show(text)}") from None
    if not low <= value <= high:
        raise ConfError(f"{where}: {value} is not from {low} to {high}")
    return value


def boolean(text: str, where: str) -> bool:
    low = text.strip().lower()
    if low in ("yes", "true", "on", "1"):
        return True
    if low in ("no", "false", "off", "0"):
        return False
    raise ConfError(f"{where}: not a valid boolean value: {show(text)}")


def byte_size(text: str, where: str) -> int:
    """50MB, 10KB, 1GB, 1024: supervisord's byte_size (the suffix is case-blind)."""
    low = text.strip().lower()
    for suffix, factor in (("kb", 1024), ("mb", 1024**2), ("gb", 1024**3)):
        if low.endswith(suffix):
            return integer(low[:-2], where, 0, 2**50) * factor
    return integer(low, where, 0, 2**50)


def exit_codes(text: str, where: str) -> tuple[int, ...]:
    if not text.strip():
        return ()
    return tuple(integer(part, where, 0, 255) for part in text.split(",")[:256])


def signal_name(text: str, where: str) -> str:
    """TERM, SIGTERM, 15 -> the name without SIG, as service.yaml's stop_signal takes."""
    value = text.strip()
    if value.isdigit() and len(value) < 4:
        try:
            return signal.Signals(int(value)).name[3:]
        except ValueError:
            pass
    else:
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if isinstance(getattr(signal, name, None), signal.Signals):
            return name[3:]
    raise ConfError(f"{where}: not a signal: {show(text)}")


def autorestart(text: str, where: str) -> str:
    low = text.strip().lower()
    if low == "unexpected":
        return low
    try:
        return "true" if boolean(low, where) else "false"
    except ConfError:
        raise ConfError(f"{where}: must be true, false or unexpected, not {show(text)}") from None


def key_value_pairs(text: str, where: str) -> dict[str, str]:
    """KEY=val,KEY2="a, b": supervisord's dict_of_key_value_pairs (shlex tokens)."""
    lexer = shlex.shlex(text)
    lexer.wordchars += "/.+-():"
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ConfError(f"{where}: {exc}") from None
    out: dict[str, str] = {}
    for i in range(0, len(tokens), 4):
        triple = tokens[i : i + 3]
        if len(triple) != 3 or triple[1] != "=" or (i + 3 < len(tokens) and tokens[i + 3] != ","):
            raise ConfError(f"{where}: expected KEY=VALUE pairs separated by commas")
        out[triple[0]] = triple[2].strip("'\"")
    return out


def process_or_group_name(text: str, where: str) -> str:
    name = text.strip()
    for char in " :/":
        if char in name:
            raise ConfError(f"{where}: invalid name {show(name)} (no {char!r} allowed)")
    if not name:
        raise ConfError(f"{where}: an empty name")
    return name


def logfile(text: str) -> str:
    low = text.strip().lower()
    if low in ("none", "off"):
        return "NONE"
    if low == "auto":
        return "AUTO"
    if low == "syslog":
        return "SYSLOG"
    return text.strip()


# --- files and sections ----------------------------------------------------------------
def new_parser() -> configparser.RawConfigParser:
    return configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)


def read_text(
    parser: configparser.RawConfigParser, text: str, path: str, owner: dict[str, str]
) -> None:
    """Add one file's text; %(here)s in it becomes its directory (supervisord's
    expand_here); sections it adds are recorded as its own."""
    before = set(parser.sections())
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfError(f"{path}: {clip(first, 200)}") from None
    here = path.rpartition("/")[0] or "/"
    for section in parser.sections():
        if section not in before:
            owner[section] = path
        for key, value in parser.items(section):
            if "%(here)s" in value and owner.get(section) == path:
                parser.set(section, key, value.replace("%(here)s", here))


def load(
    path: str,
    read: Callable[[str], str],
    glob: Callable[[str], list[str]],
    environ: dict[str, str],
    node: str,
) -> Conf:
    """The configuration of the file at path (absolute): read(path) gives a file's
    text (or raises ConfError), glob(pattern) the sorted matches of an include."""
    parser = new_parser()
    owner: dict[str, str] = {}
    conf = Conf(files=[path])
    read_text(parser, read(path), path, owner)
    base = path.rpartition("/")[0] or "/"
    names: dict[str, object] = {"ENV_" + k: v for k, v in environ.items()}
    names.update(here=base, host_node_name=node)
    if parser.has_section("include"):
        if not parser.has_option("include", "files"):
            raise ConfError(f"{path}: [include] has no files setting")
        for pattern in expand(parser.get("include", "files"), names, "[include] files").split():
            full = pattern if pattern.startswith("/") else f"{base}/{pattern}"
            found = glob(full)
            if not found:
                conf.notes.append(f"[include] files: no file matches {show(full)}")
            for name in found:
                if len(conf.files) > 100:
                    raise ConfError("[include] files: more than 100 files")
                conf.files.append(name)
                read_text(parser, read(name), name, owner)
    if not parser.has_section("supervisord"):
        raise ConfError(f"{path}: no [supervisord] section (supervisord requires one)")
    conf.sections = parser.sections()
    supervisord(parser, conf, names)
    programs(parser, conf, names, owner)
    return conf


def supervisord(parser: configparser.RawConfigParser, conf: Conf, names: dict[str, object]) -> None:
    """[supervisord]: its keys expanded, and its environment added to the ENV_ names."""
    for key, value in parser.items("supervisord"):
        if key == "environment":
            continue
        conf.supervisord[key] = expand(value, names, f"[supervisord] {key}")
    raw = parser.get("supervisord", "environment", fallback="")
    env = key_value_pairs(
        expand(raw, names, "[supervisord] environment"), "[supervisord] environment"
    )
    conf.environment = env
    names.update({"ENV_" + k: v for k, v in env.items()})


# every [program:x] key supervisord 4 knows (the ones pyinit does not act on are
# named by foreign/supervisord_services.py)
PROGRAM_KEYS = frozenset(
    """command process_name numprocs numprocs_start priority autostart autorestart startsecs
    startretries exitcodes stopsignal stopwaitsecs stopasgroup killasgroup user redirect_stderr
    stdout_logfile stdout_logfile_maxbytes stdout_logfile_backups stdout_capture_maxbytes
    stdout_events_enabled stdout_syslog stderr_logfile stderr_logfile_maxbytes
    stderr_logfile_backups stderr_capture_maxbytes stderr_events_enabled stderr_syslog
    environment directory umask serverurl""".split()  # noqa: SIM905
)
LISTENER_KEYS = PROGRAM_KEYS | {"events", "buffer_size", "result_handler"}


def programs(
    parser: configparser.RawConfigParser,
    conf: Conf,
    names: dict[str, object],
    owner: dict[str, str],
) -> None:
    """Every [program:x] (in its [group:x] when one names it) into conf.processes,
    sorted by priority then name; [eventlistener:x]'s into conf.listeners."""
    sections = parser.sections()
    grouped: dict[str, str] = {}  # program section -> its group
    for section in sections:
        if not section.startswith("group:"):
            continue
        group = process_or_group_name(section[6:], f"[{section}]")
        listed = parser.get(section, "programs", fallback="")
        for program in [p.strip() for p in listed.split(",") if p.strip()]:
            if f"fcgi-program:{program}" in sections:
                continue  # refused with its section (supervisord_services.sections)
            if f"program:{program}" not in sections:
                raise ConfError(f"[{section}] names unknown program {show(program)}")
            grouped[f"program:{program}"] = group
        for key in parser.options(section):
            if key not in ("programs", "priority"):
                conf.notes.append(f"[{section}] unknown key {key!r}: ignored")
    for section in sections:
        if section.startswith("program:"):
            where = f"[{section}]"
            name = process_or_group_name(section[8:], where)
            group = grouped.get(section, name)
            conf.processes.extend(processes(parser, section, name, group, names))
            for p in conf.processes:
                p.file = p.file or owner.get(section, "")
            if len(conf.processes) > MAX_PROGRAMS:
                raise ConfError(f"more than {MAX_PROGRAMS} processes in all")
        elif section.startswith("eventlistener:"):
            conf.listeners.extend(listeners(parser, section, names, owner))
            if len(conf.listeners) > MAX_LISTENERS:
                raise ConfError(
                    f"more than {MAX_LISTENERS} eventlistener processes in all (each follows "
                    "pyinit's events, which at most 16 clients may do at once)"
                )
            if len(conf.processes) + len(conf.listeners) > MAX_PROGRAMS:
                raise ConfError(f"more than {MAX_PROGRAMS} processes in all")
    conf.processes.sort(key=lambda p: (p.priority, p.namespec))


def listeners(
    parser: configparser.RawConfigParser,
    section: str,
    names: dict[str, object],
    owner: dict[str, str],
) -> list[Process]:
    """An [eventlistener:x]'s processes (its pool, named x): a program's keys with
    priority -1 by default (started first), and events=, buffer_size (at least 1),
    result_handler; redirect_stderr=true is refused, as supervisord does."""
    where = f"[{section}]"
    pool = process_or_group_name(section[len("eventlistener:") :], where)
    raw = dict(parser.items(section))
    if boolean(raw.get("redirect_stderr", "false"), f"{where} redirect_stderr"):
        raise ConfError(f"{where}: redirect_stderr=true would interfere with the "
                        "eventlistener protocol (supervisord refuses it too)")  # fmt: skip
    if not raw.get("events", "").strip():
        raise ConfError(f"{where}: requires an events line (supervisord requires one)")
    size = integer(raw.get("buffer_size", "10"), f"{where} buffer_size", 1, 100_000)
    out = processes(parser, section, pool, pool, names, default_priority="-1")
    for p in out:
        p.listener, p.events, p.buffer_size = True, raw["events"], size
        p.result_handler = raw.get("result_handler", "").strip()
        p.file = owner.get(section, "")
    return out


def processes(
    parser: configparser.RawConfigParser,
    section: str,
    program: str,
    group: str,
    base: dict[str, object],
    default_priority: str = "999",
) -> list[Process]:
    """One [program:x]'s processes (numprocs of them), each with its values expanded."""
    where = f"[{section}]"
    raw = dict(parser.items(section))
    names = dict(base, program_name=program, group_name=group)

    def get(key: str, default: str) -> str:
        return expand(raw[key], names, f"{where} {key}") if key in raw else default

    numprocs = integer(get("numprocs", "1"), f"{where} numprocs", 1, MAX_PROCS)
    start = integer(get("numprocs_start", "0"), f"{where} numprocs_start", 0, 10**6)
    process_name = raw.get("process_name", "%(program_name)s")
    if numprocs > 1 and "%(process_num)" not in process_name:
        raise ConfError(f"{where} process_name: must contain %(process_num) when numprocs > 1")
    stopasgroup = boolean(get("stopasgroup", "false"), f"{where} stopasgroup")
    killasgroup = boolean(get("killasgroup", str(stopasgroup)), f"{where} killasgroup")
    if stopasgroup and not killasgroup:
        raise ConfError(f"{where}: cannot set stopasgroup=true and killasgroup=false")
    if "command" not in raw:
        raise ConfError(f"{where}: no command")
    out = []
    for num in range(start, start + numprocs):
        names.update(process_num=num, numprocs=numprocs)
        env_text = expand(raw.get("environment", ""), names, f"{where} environment")
        env = key_value_pairs(env_text, f"{where} environment")
        names.update({"ENV_" + k: v for k, v in env.items()})
        p = Process(
            section=section,
            program=program,
            group=group,
            name=process_or_group_name(
                expand(process_name, names, f"{where} process_name"), f"{where} process_name"
            ),
            command=get("command", ""),
            environment=env,
            keys=tuple(raw),
            stopasgroup=stopasgroup,
            killasgroup=killasgroup,
        )
        settings(p, get, where, default_priority)
        out.append(p)
    return out


def settings(
    p: Process, get: Callable[[str, str], str], where: str, default_priority: str = "999"
) -> None:
    """The rest of a process's keys, converted as supervisord converts them."""
    p.priority = integer(get("priority", default_priority), f"{where} priority", -(10**6), 10**6)
    p.autostart = boolean(get("autostart", "true"), f"{where} autostart")
    p.autorestart = autorestart(get("autorestart", "unexpected"), f"{where} autorestart")
    p.startsecs = integer(get("startsecs", "1"), f"{where} startsecs", 0, 10**6)
    p.startretries = integer(get("startretries", "3"), f"{where} startretries", 0, 10**6)
    p.stopsignal = signal_name(get("stopsignal", "TERM"), f"{where} stopsignal")
    p.stopwaitsecs = integer(get("stopwaitsecs", "10"), f"{where} stopwaitsecs", 0, 10**6)
    p.exitcodes = exit_codes(get("exitcodes", "0"), f"{where} exitcodes")
    p.redirect_stderr = boolean(get("redirect_stderr", "false"), f"{where} redirect_stderr")
    directory = get("directory", "")
    p.directory = directory or None
    p.user = get("user", "").strip() or None
    umask = get("umask", "").strip()
    if umask:
        try:
            p.umask = int(umask, 8) if len(umask) < 8 else -1
        except ValueError:
            p.umask = -1
        if not 0 <= p.umask <= 0o777:
            raise ConfError(f"{where} umask: not an octal mode: {show(umask)}")
    for stream in ("stdout", "stderr"):
        setattr(p, f"{stream}_logfile", logfile(get(f"{stream}_logfile", "AUTO")))
        setattr(
            p,
            f"{stream}_maxbytes",
            byte_size(
                get(f"{stream}_logfile_maxbytes", "50MB"), f"{where} {stream}_logfile_maxbytes"
            ),
        )
        setattr(
            p,
            f"{stream}_backups",
            integer(
                get(f"{stream}_logfile_backups", "10"),
                f"{where} {stream}_logfile_backups",
                0,
                10**6,
            ),
        )
