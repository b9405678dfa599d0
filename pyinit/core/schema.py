"""service.yaml and pyinit.yaml: validating a parsed document against the documented schema.

Reading the file (bounded, pyyaml's safe loader) is runtime/yamlfile.py's job;
everything here is pure and table-driven: each mapping has a table of key -> kind,
and a kind checks one value and converts it (or says what is allowed). An
unknown key or a bad value is one line naming the file, the key and what is
allowed. Keys may be written with '-' or '_' (`notification-fd`). See
docs/service-yaml.md.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from pyinit.core import machine, signames
from pyinit.core.bounds import (
    MAX_ID,
    MAX_SECONDS,
    IdentError,
    clip,
    parse_ident,
    render,
)

FILE_NAME = "service.yaml"
RESTART_POLICIES = ("always", "on-failure", "never")
RLIMITS = ("as", "core", "cpu", "data", "fsize", "memlock", "msgqueue", "nice", "nofile",
           "nproc", "rss", "rtprio", "sigpending", "stack")
PROBES = ("check", "tcp", "http")
LOG_MODES = ("inherit", "prefix", "file")
READINESS = ("notification_fd", "sd_notify") + PROBES
MAX_INSTANCES = 1000  # service.yaml's `instances` and `svctl scale`
MAX_PROBLEMS = 20  # problems reported per file; then "and N more"
MAX_LINE = 500  # characters of one problem line


class ConfigError(Exception):
    """A bad config file: one line per problem (at most MAX_PROBLEMS, then a line
    saying how many more), each naming the file and the key."""

    def __init__(self, *problems: str) -> None:
        self.problems = [clip(p, MAX_LINE) for p in problems]
        shown = self.problems[:MAX_PROBLEMS]
        if len(self.problems) > MAX_PROBLEMS:
            shown.append(f"and {len(self.problems) - MAX_PROBLEMS} more problems")
        super().__init__("\n".join(shown))


class _Bad(Exception):
    """A value of the wrong kind; the message says what is allowed."""


Kind = Callable[[Any], Any]


# --- kinds: check one value, return it converted ------------------------------------
def _type_name(value: Any) -> str:
    name = type(value).__name__
    article = "an" if name[:1] in "aeiou" else "a"
    return {dict: "a mapping", list: "a list", bool: "true/false", type(None): "empty"}.get(
        type(value), f"{article} {name}"
    )


def _wrong(wanted: str, value: Any) -> _Bad:
    return _Bad(f"must be {wanted}, not {_type_name(value)}")


def _ident(value: Any) -> str:
    """A user or group: a name, or a number from 0 to 2**32-2 in ASCII digits."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _wrong("a name or a number", value)
    in_range = _Bad(f"must be a name or a number from 0 to {MAX_ID}, not {render(value)}")
    if isinstance(value, int):
        if 0 <= value <= MAX_ID:
            return str(value)
        raise in_range
    try:
        parse_ident(value, "")
    except IdentError as exc:
        if exc.reason == "range":
            raise in_range from None
        if exc.reason == "digits":
            raise _Bad(f"must be a name or a number in digits 0-9, not {render(value)}") from None
        raise _Bad(f"must be a name without control characters, not {render(value)}") from None
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _wrong("true or false", value)
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong("a number of seconds", value)
    if not 0 <= value <= MAX_SECONDS:
        raise _Bad(f"must be from 0 to {MAX_SECONDS} seconds, not {render(value)}")
    return float(value)


def _integer(low: int, high: int) -> Kind:
    def kind(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(f"an integer from {low} to {high}", value)
        if not low <= value <= high:
            raise _Bad(f"must be an integer from {low} to {high}, not {render(value)}")
        return value

    return kind


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _wrong("a non-empty string", value if value != "" else None)
    if "\0" in value:
        raise _Bad("must not contain a NUL byte")
    return value


def _choice(*allowed: str) -> Kind:
    def kind(value: Any) -> str:
        if value not in allowed or not isinstance(value, str):
            raise _Bad(f"must be one of {', '.join(allowed)}, not {render(value)}")
        return value

    return kind


def _list_of(item: Kind, what: str) -> Kind:
    def kind(value: Any) -> tuple:
        items = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
        if not isinstance(items, list):
            raise _wrong(f"a list of {what}", value)
        try:
            return tuple(item(v) for v in items)
        except _Bad as exc:
            raise _Bad(f"must be a list of {what}: {exc}") from None

    return kind


_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@:-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _service_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise _Bad(f"{render(value)} is not a service name")
    return value


def _signal(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < signal.NSIG:
        return value
    if isinstance(value, str) and value.isidentifier():  # a name: a number is a YAML int
        try:
            return signames.parse(value)
        except ValueError:
            pass
    raise _Bad(f"must be a signal name such as TERM or a number, not {render(value)}")


def _umask(value: Any) -> int:
    if isinstance(value, str) and re.fullmatch(r"0?[0-7]{1,4}", value):
        value = int(value, 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise _Bad(f"must be an octal mode such as '022', not {render(value)}")
    return value


def _size(value: Any) -> int:
    """Bytes: a number, or with a k, M or G suffix (powers of 1024)."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]{1,12})\s*([kKmMgGtT]?)[bB]?\s*", value)
        if match:
            value = int(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " ")
    if isinstance(value, bool) or not isinstance(value, int) or not 4096 <= value <= 2**40:
        raise _Bad(f"must be a size from 4096 bytes to 1T, such as 10M, not {render(value)}")
    return value


def _environment(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _wrong("a mapping of NAME: value", value)
    out = []
    for name, val in value.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise _Bad(f"{render(name)} is not a variable name")
        if isinstance(val, bool):
            val = "true" if val else "false"
        if isinstance(val, (int, float)):
            val = str(val)
        if not isinstance(val, str) or "\0" in val:
            raise _Bad(f"{name}: must be a string or a number, not {_type_name(val)}")
        out.append((name, val))
    return tuple(out)


def _rlimit_value(value: Any) -> int:
    import resource

    if value in ("unlimited", "infinity"):
        return resource.RLIM_INFINITY
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise _Bad(f"must be a number, 'unlimited' or [soft, hard], not {render(value)}")
    return value


def _rlimits(value: Any) -> tuple[tuple[str, int, int], ...]:
    import resource

    if not isinstance(value, dict):
        raise _wrong("a mapping of limit: value", value)
    out = []
    for name, val in value.items():
        if name not in RLIMITS:
            raise _Bad(f"unknown limit {render(name)} (allowed: {', '.join(RLIMITS)})")
        try:
            if isinstance(val, list) and len(val) == 2:
                soft, hard = _rlimit_value(val[0]), _rlimit_value(val[1])
            else:
                soft = hard = _rlimit_value(val)
        except _Bad as exc:
            raise _Bad(f"{name}: {exc}") from None
        if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft > hard):
            raise _Bad(f"{name}: the soft limit must not be above the hard one")
        out.append((name, soft, hard))
    return tuple(out)


def _probe_target(kind: str) -> Kind:
    def check(value: Any) -> Any:
        from pyinit.core import addresses

        parse = addresses.parse_tcp if kind == "tcp" else addresses.parse_http
        try:
            return parse(value)
        except ValueError as exc:
            raise _Bad(str(exc)) from None

    return check


def _command(value: Any) -> tuple[str, ...]:
    """`true` for the service dir's ./check, or a command line (split on spaces)."""
    if value is True:
        return ("./check",)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    if isinstance(value, str) and value.strip():
        return tuple(value.split())
    raise _Bad(f"must be true (run ./check), a command or a list, not {_type_name(value)}")


# --- definitions -------------------------------------------------------------------
@dataclass(frozen=True)
class UserSpec:
    """Who a process runs as: user and optional group, as written in service.yaml
    (looked up, they become a model.Account)."""

    user: Optional[str] = None
    group: Optional[str] = None

    def spec(self) -> Optional[str]:
        """USER[:GROUP] for linux.users.resolve, or None to stay as pyinit."""
        if self.user is None:
            return None if self.group is None else f"{_current_user()}:{self.group}"
        return self.user if self.group is None else f"{self.user}:{self.group}"


@dataclass(frozen=True)
class Probe:
    """A readiness or liveness test: how (kind, target) and how often."""

    kind: str  # notification_fd, sd_notify, check, tcp, http
    target: Any = None  # the fd, the command, (host, port) or (host, port, path, host header)
    interval: float = 1.0
    timeout: float = 1.0
    start_timeout: Optional[float] = None  # readiness: not ready by then = a failed start
    settle: float = 0.0  # readiness without a probe: up this long = ready
    failures: int = 3  # liveness: this many failures in a row restart the service


@dataclass(frozen=True)
class ServiceConfig:
    run_as: UserSpec = UserSpec()
    log_as: UserSpec = UserSpec()
    restart: str = machine.RESTART  # restart and stop defaults: machine.py's, one source
    backoff_initial: float = machine.BACKOFF_INITIAL
    backoff_factor: float = machine.BACKOFF_FACTOR
    backoff_max: float = machine.BACKOFF_MAX
    max_restarts: int = machine.MAX_RESTARTS  # 0: no limit
    restart_window: float = machine.RESTART_WINDOW
    success_exit_codes: tuple[int, ...] = machine.SUCCESS_CODES
    essential: bool = False
    oneshot: bool = False
    after: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    ready: Optional[Probe] = None
    liveness: Optional[Probe] = None
    watchdog: Optional[float] = None
    environment: tuple[tuple[str, str], ...] = ()
    env_file: Optional[str] = None
    working_directory: Optional[str] = None
    umask: Optional[int] = None
    nice: Optional[int] = None
    rlimits: tuple[tuple[str, int, int], ...] = ()
    stop_signal: int = int(signal.SIGTERM)
    stop_timeout: Optional[float] = None  # None: pyinit's --kill-timeout
    stop_group: bool = False
    kill_group: bool = True
    finish_timeout: float = machine.FINISH_TIMEOUT
    log_mode: Optional[str] = None  # None: log/run if there is one, else pyinit's --log-mode
    log_format: Optional[str] = None  # None: pyinit's --log-format
    log_timestamps: Optional[bool] = None
    log_dir: Optional[str] = None  # file mode; None: /var/log/pyinit/NAME
    log_max_size: int = 1024 * 1024
    log_max_files: int = 10
    instances: Optional[int] = None  # counted: supervised as NAME@1..NAME@N (instances.py)
    # a scheduled job (`schedule:` or `every:`): a cron.Cron or cron.Every, and its settings
    schedule: Any = None
    timezone: Optional[str] = None  # IANA name; None: the container's local time
    overlap: str = "skip"
    jitter: float = 0.0
    on_start: str = "skip"
    timeout: Optional[float] = None  # a run's limit: then the stop signal, kill grace, KILL


def _current_user() -> str:
    import os

    return str(os.getuid())


def _mapping(table: dict[str, Kind]) -> Kind:
    allowed = ", ".join(sorted(table))

    def kind(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Bad(f"must be a mapping with keys {allowed}, not {_type_name(value)}")
        return value

    return kind


LOG_KEYS: dict[str, Kind] = {
    "user": _ident, "group": _ident, "mode": _choice(*LOG_MODES), "format": _choice("text", "json"),
    "timestamps": _flag, "dir": _text, "max_size": _size, "max_files": _integer(1, 1000),
}
BACKOFF_KEYS: dict[str, Kind] = {"initial": _seconds, "factor": _seconds, "max": _seconds}
PROBE_KEYS: dict[str, Kind] = {
    "check": _command, "tcp": _probe_target("tcp"), "http": _probe_target("http"),
    "interval": _seconds, "timeout": _seconds,
}
READY_KEYS: dict[str, Kind] = {
    **PROBE_KEYS, "notification_fd": _integer(3, 1023), "sd_notify": _flag,
    "start_timeout": _seconds, "settle": _seconds,
}
LIVENESS_KEYS: dict[str, Kind] = {**PROBE_KEYS, "failures": _integer(1, 1000)}
def _schedule(value: Any) -> Any:
    """A cron expression, an @name or `every DURATION` (core/cron.py)."""
    from pyinit.core import cron

    try:
        return cron.parse(value)
    except cron.CronError as exc:
        raise _Bad(str(exc)) from None


def _every(value: Any) -> Any:
    """`every: 90s`: short for `schedule: every 90s`."""
    from pyinit.core import cron

    try:
        return cron.Every(cron.parse_duration(value), f"every {value}")
    except cron.CronError as exc:
        raise _Bad(str(exc)) from None


def _timezone(value: Any) -> str:
    """An IANA name as written (the services layer looks it up)."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*",
                                                      value) or len(value) > 64:
        raise _Bad(f"must be a time zone name such as Europe/Paris, not {render(value)}")
    return value


def _positive_seconds(value: Any) -> float:
    seconds = _seconds(value)
    if seconds <= 0:
        raise _Bad("must be more than 0 seconds")
    return seconds


JOB_KEYS: dict[str, Kind] = {
    "schedule": _schedule, "every": _every, "timezone": _timezone,
    "overlap": _choice("skip", "queue", "replace"), "jitter": _seconds,
    "on_start": _choice("skip", "run"), "timeout": _positive_seconds,
}
# keys that make no sense for a scheduled job (each run is a oneshot, never restarted)
NOT_FOR_JOBS = ("restart", "ready", "instances", "liveness", "watchdog", "essential",
                "max_restarts", "restart_window", "backoff")


def _job(path: str, given: dict[str, Any], merged: dict[str, Any],
         problems: list[str]) -> None:
    """A scheduled job's rules: one schedule, no restart keys; merged becomes a oneshot
    that is never restarted (pyinit.yaml's restart defaults do not apply)."""
    if "schedule" in given and "every" in given:
        problems.append(f"{path}: choose one of 'schedule' and 'every', not both")
    if "every" in given:
        merged["schedule"] = given["every"]
    if merged.get("schedule") is None:
        if path.endswith(": defaults"):  # pyinit.yaml's defaults: for the jobs among them
            return
        for key in JOB_KEYS:
            if key in given and key not in ("schedule", "every"):
                problems.append(f"{path}: key {key!r} applies only to a scheduled job "
                                "(with 'schedule' or 'every')")
        return
    for key in NOT_FOR_JOBS:
        if key in given:
            problems.append(f"{path}: key {key!r} does not apply to a scheduled job "
                            "(each run is a oneshot, never restarted)")
    _jitter(path, "jitter" in given, merged, problems)
    for key in NOT_FOR_JOBS:
        merged.pop(key, None)
    merged["oneshot"] = True
    merged["restart"] = "never"


def _jitter(path: str, own: bool, merged: dict[str, Any], problems: list[str]) -> None:
    """An interval job's jitter must be less than its interval: a longer delay would
    push a run past the next one (a cron job's jitter is cut per run: core/jobs.py)."""
    every, jitter = merged.get("schedule"), merged.get("jitter", 0.0)
    step = getattr(every, "seconds", None)
    if step is not None and isinstance(jitter, (int, float)) and jitter >= step:
        where = "" if own else ", from pyinit.yaml's defaults"
        problems.append(f"{path}: key 'jitter' ({jitter:g}s{where}) must be less than the "
                        f"interval ({step:g}s): a run would be delayed past the next one")


def _log(value: Any) -> dict[str, Any]:
    """`log: MODE` is short for `log: {mode: MODE}`."""
    if isinstance(value, str):
        return {"mode": _choice(*LOG_MODES)(value)}
    return _mapping(LOG_KEYS)(value)


SERVICE_KEYS: dict[str, Kind] = {
    "user": _ident, "group": _ident, "log": _log,
    "restart": _choice(*RESTART_POLICIES), "backoff": _mapping(BACKOFF_KEYS),
    "max_restarts": _integer(0, 10**6), "restart_window": _seconds,
    "success_exit_codes": _list_of(_integer(0, 255), "exit codes from 0 to 255"),
    "essential": _flag, "oneshot": _flag,
    "after": _list_of(_service_name, "service names"),
    "requires": _list_of(_service_name, "service names"),
    "ready": _mapping(READY_KEYS), "liveness": _mapping(LIVENESS_KEYS), "watchdog": _seconds,
    "environment": _environment, "env_file": _text, "working_directory": _text,
    "umask": _umask, "nice": _integer(-20, 19), "rlimits": _rlimits,
    "stop_signal": _signal, "stop_timeout": _seconds, "stop_group": _flag,
    "kill_group": _flag, "finish_timeout": _seconds,
    "instances": _integer(1, MAX_INSTANCES),
    **JOB_KEYS,  # scheduled jobs (_schedule)
}
GLOBAL_KEYS: dict[str, Kind] = {
    "defaults": _mapping(SERVICE_KEYS), "wait_for_services": _flag,
    "services_ready_timeout": _seconds, "health_listen": _text,
}


def _check(where: str, data: Any, table: dict[str, Kind],
           problems: Optional[list[str]] = None) -> dict[str, Any]:
    """data's keys checked and values converted; keys normalized to '_'. A bad key
    raises ConfigError, or with a `problems` list is added to it and left out."""
    out: dict[str, Any] = {}
    found: list[str] = []
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_") if isinstance(raw_key, str) else raw_key
        if key not in table:
            found.append(f"{where}: unknown key {render(raw_key)} ({_suggest(key, table)})")
            continue
        try:
            out[key] = table[key](value)
        except _Bad as exc:
            found.append(f"{where}: key {render(raw_key)} {exc}")
        except ValueError:  # e.g. an integer too long to turn into text
            found.append(f"{where}: key {render(raw_key)} has a value out of range")
    if found and problems is None:
        raise ConfigError(*found)
    if problems is not None:
        problems.extend(found)
    return out


def _suggest(key: Any, table: dict[str, Kind]) -> str:
    import difflib

    text = key[:40] if isinstance(key, str) else ""
    close = difflib.get_close_matches(text, table, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "allowed: " + ", ".join(sorted(table))


def _probe(where: str, raw: dict[str, Any], table: dict[str, Kind], problems: list[str],
           **defaults: Any) -> Optional[Probe]:
    before = len(problems)
    data = _check(where, raw, table, problems)
    if len(problems) > before:
        return None
    kinds = [k for k in READINESS if k in data and data[k] is not False]
    if len(kinds) > 1:
        problems.append(f"{where}: choose one of {', '.join(kinds)}, not several")
        return None
    kind = kinds[0] if kinds else "settle"
    if kind == "settle" and table is LIVENESS_KEYS:
        problems.append(f"{where}: needs one of {', '.join(PROBES)}")
        return None
    values = {k: data[k] for k in ("interval", "timeout", "start_timeout", "settle", "failures")
              if k in data}
    return Probe(kind=kind, target=data.get(kind), **{**defaults, **values})


def validate(data: Any, path: str, defaults: Optional[dict[str, Any]] = None) -> ServiceConfig:
    """A parsed YAML document (over pyinit.yaml's defaults) to a ServiceConfig, or
    ConfigError listing every problem found (each on its own line)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of keys, not {_type_name(data)}")
    problems: list[str] = []
    given = _check(path, data, SERVICE_KEYS, problems)
    merged = {**(defaults or {}), **given}
    _job(path, given, merged, problems)
    if "environment" in given and defaults and "environment" in defaults:
        merged["environment"] = defaults["environment"] + given["environment"]
    fields: dict[str, Any] = {k: v for k, v in merged.items() if k in _PLAIN}
    log = _check(f"{path}: log", _log(merged.get("log", {})), LOG_KEYS, problems)
    fields.update({f"log_{k}": v for k, v in log.items() if k not in ("user", "group")})
    backoff = _check(f"{path}: backoff", merged.get("backoff", {}), BACKOFF_KEYS, problems)
    fields.update({f"backoff_{k}": v for k, v in backoff.items()})
    if fields.get("backoff_factor", 2.0) < 1:
        problems.append(f"{path}: backoff: key 'factor' must be 1 or more")
    if "ready" in given and merged.get("oneshot") and merged.get("schedule") is None:
        problems.append(f"{path}: key 'ready' does not apply to a oneshot "
                        "(it is ready when it exits with a success code)")
    if "ready" in merged and not merged.get("oneshot"):
        fields["ready"] = _probe(f"{path}: ready", merged["ready"], READY_KEYS, problems)
    if "liveness" in merged:
        fields["liveness"] = _probe(f"{path}: liveness", merged["liveness"], LIVENESS_KEYS,
                                    problems, interval=10.0, timeout=2.0)
    if problems:
        raise ConfigError(*problems)
    return ServiceConfig(
        run_as=UserSpec(merged.get("user"), merged.get("group")),
        log_as=UserSpec(log.get("user"), log.get("group")),
        **fields,
    )


_PLAIN = frozenset(SERVICE_KEYS) - {"user", "group", "log", "backoff", "ready", "liveness",
                                    "every"}


@dataclass(frozen=True)
class GlobalConfig:
    """/etc/pyinit.yaml: defaults for every service.yaml, and boot settings."""

    defaults: dict[str, Any] = field(default_factory=dict)  # checked, keys normalized
    wait_for_services: Optional[bool] = None
    services_ready_timeout: Optional[float] = None
    health_listen: Optional[str] = None


def validate_global(data: Any, path: str) -> GlobalConfig:
    """A parsed pyinit.yaml to a GlobalConfig (None: an empty file); ConfigError lists
    every problem."""
    if data is None:
        return GlobalConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of keys, not {_type_name(data)}")
    problems: list[str] = []
    top = _check(path, data, GLOBAL_KEYS, problems)
    raw = top.pop("defaults", {})
    for key in ("instances", "schedule", "every"):
        if isinstance(raw, dict) and key in {k.replace("-", "_") for k in raw
                                             if isinstance(k, str)}:
            problems.append(f"{path}: defaults: key {key!r} cannot be a default "
                            "(set it in the service's own service.yaml)")
            raw = {k: v for k, v in raw.items()
                   if not (isinstance(k, str) and k.replace("-", "_") == key)}
    try:
        validate(raw, f"{path}: defaults")  # nested mappings and probe choices too
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(*problems)
    return GlobalConfig(defaults=_check(f"{path}: defaults", raw, SERVICE_KEYS), **top)
