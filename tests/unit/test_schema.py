"""service.yaml and pyinit.yaml validation: every key's accepted forms and error lines."""

from __future__ import annotations

import os
import resource
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyinit.core import cron
from pyinit.core.schema import (
    BACKOFF_KEYS,
    GLOBAL_KEYS,
    LIVENESS_KEYS,
    LOG_KEYS,
    READY_KEYS,
    SERVICE_KEYS,
    ConfigError,
    GlobalConfig,
    HookSpec,
    Probe,
    ServiceConfig,
    UserSpec,
    validate,
    validate_global,
)
from pyinit.runtime.yamlfile import load_global, load_service

INF = resource.RLIM_INFINITY
ALL_SERVICE_KEYS = ", ".join(sorted(SERVICE_KEYS))
READY_ALLOWED = ", ".join(sorted(READY_KEYS))
LIVENESS_ALLOWED = ", ".join(sorted(LIVENESS_KEYS))


def error(data, path: str = "f", defaults=None) -> str:
    with pytest.raises(ConfigError) as info:
        validate(data, path, defaults)
    return str(info.value)


def live(kind: str, target, **kw) -> Probe:
    """A liveness probe with its own defaults (every 10 s, 2 s timeout)."""
    return Probe(kind, target, **{"interval": 10.0, "timeout": 2.0, **kw})


# --- good values: every key, and what it becomes ------------------------------------------
GOOD = [
    ({"user": "app"}, {"run_as": UserSpec("app", None)}),
    ({"user": 1000}, {"run_as": UserSpec("1000", None)}),
    ({"group": "staff"}, {"run_as": UserSpec(None, "staff")}),
    ({"user": "app", "group": 50}, {"run_as": UserSpec("app", "50")}),
    ({"log": {"user": "nobody"}}, {"log_as": UserSpec("nobody", None)}),
    ({"log": {"user": 65534, "group": "nogroup"}}, {"log_as": UserSpec("65534", "nogroup")}),
    ({"log": "prefix"}, {"log_mode": "prefix"}),
    ({"log": {"mode": "file", "dir": "/var/log/web", "max_size": "10M", "max_files": 3,
              "timestamps": True, "format": "json"}},
     {"log_mode": "file", "log_dir": "/var/log/web", "log_max_size": 10 * 1024 * 1024,
      "log_max_files": 3, "log_timestamps": True, "log_format": "json"}),
    ({"log": {"max_size": 8192}}, {"log_max_size": 8192}),
    ({"log": {"max_size": "64k"}}, {"log_max_size": 65536}),
    ({"restart": "always"}, {"restart": "always"}),
    ({"restart": "on-failure"}, {"restart": "on-failure"}),
    ({"restart": "never"}, {"restart": "never"}),
    ({"backoff": {"initial": 1, "factor": 3, "max": 30.5}},
     {"backoff_initial": 1.0, "backoff_factor": 3.0, "backoff_max": 30.5}),
    ({"backoff": {"factor": 1}}, {"backoff_factor": 1.0}),
    ({"max_restarts": 5}, {"max_restarts": 5}),
    ({"max_restarts": 0}, {"max_restarts": 0}),
    ({"restart_window": 30}, {"restart_window": 30.0}),
    ({"success_exit_codes": [0, 3, 255]}, {"success_exit_codes": (0, 3, 255)}),
    ({"success_exit_codes": 2}, {"success_exit_codes": (2,)}),
    ({"success_exit_codes": []}, {"success_exit_codes": ()}),
    ({"essential": True}, {"essential": True}),
    ({"oneshot": True}, {"oneshot": True}),
    ({"after": ["db", "cache-1", "a.b@c:d"]}, {"after": ("db", "cache-1", "a.b@c:d")}),
    ({"after": "db"}, {"after": ("db",)}),
    ({"requires": ["db"]}, {"requires": ("db",)}),
    ({"requires": "db"}, {"requires": ("db",)}),
    ({"ready": {}}, {"ready": Probe("settle")}),
    ({"ready": {"tcp": 80, "settle": 2.5}},
     {"ready": Probe("tcp", ("127.0.0.1", 80), settle=2.5)}),
    ({"ready": {"notification_fd": 3}}, {"ready": Probe("notification_fd", 3)}),
    ({"ready": {"notification_fd": 1023}}, {"ready": Probe("notification_fd", 1023)}),
    ({"ready": {"sd_notify": True}}, {"ready": Probe("sd_notify", True)}),
    ({"ready": {"sd_notify": False}}, {"ready": Probe("settle")}),
    ({"ready": {"check": True}}, {"ready": Probe("check", ("./check",))}),
    ({"ready": {"check": "pg_isready -q"}}, {"ready": Probe("check", ("pg_isready", "-q"))}),
    ({"ready": {"check": ["sh", "-c", "test -f x"]}},
     {"ready": Probe("check", ("sh", "-c", "test -f x"))}),
    ({"ready": {"tcp": 5432}}, {"ready": Probe("tcp", ("127.0.0.1", 5432))}),
    ({"ready": {"tcp": "[::1]:80"}}, {"ready": Probe("tcp", ("::1", 80))}),
    ({"ready": {"http": "http://localhost:8080/health"}},
     {"ready": Probe("http", ("127.0.0.1", 8080, "/health", "localhost:8080"))}),
    ({"ready": {"tcp": 80, "interval": 0.5, "timeout": 3, "start_timeout": 30}},
     {"ready": Probe("tcp", ("127.0.0.1", 80), interval=0.5, timeout=3.0, start_timeout=30.0)}),
    ({"liveness": {"tcp": "10.0.0.1:9"}}, {"liveness": live("tcp", ("10.0.0.1", 9))}),
    ({"liveness": {"http": "http://127.0.0.1/"}},
     {"liveness": live("http", ("127.0.0.1", 80, "/", "127.0.0.1"))}),
    ({"liveness": {"check": True, "interval": 5, "timeout": 1, "failures": 1}},
     {"liveness": live("check", ("./check",), interval=5.0, timeout=1.0, failures=1)}),
    ({"watchdog": 20}, {"watchdog": 20.0}),
    ({"environment": {"A": "x", "B": ""}}, {"environment": (("A", "x"), ("B", ""))}),
    ({"env_file": "env"}, {"env_file": "env"}),
    ({"working_directory": "/srv"}, {"working_directory": "/srv"}),
    ({"umask": "027"}, {"umask": 0o27}),
    ({"umask": 0}, {"umask": 0}),
    ({"nice": -20}, {"nice": -20}),
    ({"nice": 19}, {"nice": 19}),
    ({"rlimits": {"nofile": 1024}}, {"rlimits": (("nofile", 1024, 1024),)}),
    ({"rlimits": {"nofile": [1024, 4096], "core": "unlimited"}},
     {"rlimits": (("nofile", 1024, 4096), ("core", INF, INF))}),
    ({"rlimits": {"stack": [8192, "infinity"]}}, {"rlimits": (("stack", 8192, INF),)}),
    ({"stop_signal": "INT"}, {"stop_signal": int(signal.SIGINT)}),
    ({"stop_timeout": 30}, {"stop_timeout": 30.0}),
    ({"stop_timeout": 0}, {"stop_timeout": 0.0}),
    ({"stop_group": True}, {"stop_group": True}),
    ({"kill_group": False}, {"kill_group": False}),
    ({"finish_timeout": 1.5}, {"finish_timeout": 1.5}),
    ({"instances": 3}, {"instances": 3}),
    ({"instances": 1000}, {"instances": 1000}),
    # scheduled jobs: a oneshot per run, never restarted
    ({"schedule": "@daily"}, {"schedule": cron.parse("@daily"), "oneshot": True,
                              "restart": "never"}),
    ({"every": "90s"}, {"schedule": cron.Every(90.0, "every 90s"), "oneshot": True,
                        "restart": "never"}),
    ({"schedule": "*/5 * * * 1-5", "timezone": "Europe/Paris", "overlap": "queue",
      "jitter": 30, "on_start": "run", "timeout": 600, "oneshot": True},
     {"schedule": cron.parse("*/5 * * * 1-5"), "timezone": "Europe/Paris",
      "overlap": "queue", "jitter": 30.0, "on_start": "run", "timeout": 600.0,
      "oneshot": True, "restart": "never"}),
]


@pytest.mark.parametrize("data, fields", GOOD)
def test_good_values_are_converted(data, fields) -> None:
    assert validate(data, "f") == ServiceConfig(**fields)


def test_the_good_table_covers_every_key() -> None:
    seen: dict[str, set] = {"service": set(), "ready": set(), "liveness": set(),
                            "backoff": set(), "log": set()}
    for data, _ in GOOD:
        seen["service"] |= set(data)
        for sub in ("ready", "liveness", "backoff", "log"):
            if isinstance(data.get(sub), dict):
                seen[sub] |= set(data[sub])
    assert seen["service"] == set(SERVICE_KEYS)
    assert seen["ready"] == set(READY_KEYS)
    assert seen["liveness"] == set(LIVENESS_KEYS)
    assert seen["backoff"] == set(BACKOFF_KEYS)
    assert seen["log"] == set(LOG_KEYS)


def test_empty_documents_are_all_defaults() -> None:
    cfg = validate(None, "f")
    assert cfg == validate({}, "f") == ServiceConfig()
    assert (cfg.restart, cfg.success_exit_codes, cfg.stop_signal) == ("always", (0,), 15)
    assert (cfg.backoff_initial, cfg.backoff_factor, cfg.backoff_max) == (0.1, 2.0, 10.0)
    assert cfg.ready is None and cfg.liveness is None and cfg.kill_group


def test_user_spec() -> None:
    assert UserSpec().spec() is None
    assert UserSpec("app").spec() == "app"
    assert UserSpec("app", "50").spec() == "app:50"
    assert UserSpec(None, "staff").spec() == f"{os.getuid()}:staff"


def test_a_service_dir_without_service_yaml_has_the_defaults() -> None:
    from pyinit.core.model import ServiceDir

    defn = ServiceDir(name="web", path="/etc/service/web", normally_up=True, has_log=False)
    assert defn.config == ServiceConfig() == validate({}, "f")
    assert defn.run_as is None and defn.config.run_as == UserSpec()


# --- bad values: the exact one-line message -------------------------------------------
BAD = [
    # top level
    (["user"], "f: must be a mapping of keys, not a list"),
    ("user: x", "f: must be a mapping of keys, not a str"),
    ({"usr": "app"}, "f: unknown key 'usr' (did you mean 'user'?)"),
    ({"max-restartz": 1}, "f: unknown key 'max-restartz' (did you mean 'max_restarts'?)"),
    ({"zzz": 1}, f"f: unknown key 'zzz' (allowed: {ALL_SERVICE_KEYS})"),
    ({1: "x"}, f"f: unknown key 1 (allowed: {ALL_SERVICE_KEYS})"),
    # SERVICE_KEYS
    ({"user": ["a"]}, "f: key 'user' must be a name or a number, not a list"),
    ({"user": True}, "f: key 'user' must be a name or a number, not true/false"),
    ({"group": None}, "f: key 'group' must be a name or a number, not empty"),
    ({"log": "yes"}, "f: key 'log' must be one of inherit, prefix, file, not 'yes'"),
    ({"log": 3}, "f: key 'log' must be a mapping with keys dir, format, group, max_files, "
     "max_size, mode, timestamps, user, not an int"),
    ({"log": {"mode": "svlogd"}}, "f: log: key 'mode' must be one of inherit, prefix, file, "
     "not 'svlogd'"),
    ({"log": {"format": "xml"}}, "f: log: key 'format' must be one of text, json, not 'xml'"),
    ({"log": {"timestamps": "yes"}}, "f: log: key 'timestamps' must be true or false, not a str"),
    ({"log": {"dir": ""}}, "f: log: key 'dir' must be a non-empty string, not empty"),
    ({"log": {"max_size": "10X"}}, "f: log: key 'max_size' must be a size from 4096 bytes to "
     "1T, such as 10M, not '10X'"),
    ({"log": {"max_size": 100}}, "f: log: key 'max_size' must be a size from 4096 bytes to "
     "1T, such as 10M, not 100"),
    ({"log": {"max_files": 0}}, "f: log: key 'max_files' must be an integer from 1 to 1000, "
     "not 0"),
    ({"restart": "sometimes"},
     "f: key 'restart' must be one of always, on-failure, never, not 'sometimes'"),
    ({"restart": ["always"]},
     "f: key 'restart' must be one of always, on-failure, never, not ['always']"),
    ({"backoff": []}, "f: key 'backoff' must be a mapping with keys factor, initial, max, "
                      "not a list"),
    ({"max_restarts": -1}, "f: key 'max_restarts' must be an integer from 0 to 1000000, not -1"),
    ({"max_restarts": 1.5},
     "f: key 'max_restarts' must be an integer from 0 to 1000000, not a float"),
    ({"restart_window": "x"}, "f: key 'restart_window' must be a number of seconds, not a str"),
    ({"restart_window": -1},
     "f: key 'restart_window' must be from 0 to 10000000 seconds, not -1"),
    ({"success_exit_codes": [0, 256]}, "f: key 'success_exit_codes' must be a list of exit "
     "codes from 0 to 255: must be an integer from 0 to 255, not 256"),
    ({"success_exit_codes": {}},
     "f: key 'success_exit_codes' must be a list of exit codes from 0 to 255, not a mapping"),
    ({"essential": "yes"}, "f: key 'essential' must be true or false, not a str"),
    ({"oneshot": None}, "f: key 'oneshot' must be true or false, not empty"),
    ({"after": "bad name!"},
     "f: key 'after' must be a list of service names: 'bad name!' is not a service name"),
    ({"after": ["db", 1.5]},
     "f: key 'after' must be a list of service names: 1.5 is not a service name"),
    ({"requires": {}}, "f: key 'requires' must be a list of service names, not a mapping"),
    ({"requires": ["-x"]},
     "f: key 'requires' must be a list of service names: '-x' is not a service name"),
    ({"ready": "tcp"}, f"f: key 'ready' must be a mapping with keys {READY_ALLOWED}, not a str"),
    ({"liveness": []},
     f"f: key 'liveness' must be a mapping with keys {LIVENESS_ALLOWED}, not a list"),
    ({"watchdog": True}, "f: key 'watchdog' must be a number of seconds, not true/false"),
    ({"environment": []}, "f: key 'environment' must be a mapping of NAME: value, not a list"),
    ({"env_file": ""}, "f: key 'env_file' must be a non-empty string, not empty"),
    ({"env_file": "a\0b"}, "f: key 'env_file' must not contain a NUL byte"),
    ({"working_directory": []},
     "f: key 'working_directory' must be a non-empty string, not a list"),
    ({"umask": "999"}, "f: key 'umask' must be an octal mode such as '022', not '999'"),
    ({"umask": 0o10000}, "f: key 'umask' must be an octal mode such as '022', not 4096"),
    ({"umask": True}, "f: key 'umask' must be an octal mode such as '022', not True"),
    ({"nice": 20}, "f: key 'nice' must be an integer from -20 to 19, not 20"),
    ({"nice": -21}, "f: key 'nice' must be an integer from -20 to 19, not -21"),
    ({"rlimits": []}, "f: key 'rlimits' must be a mapping of limit: value, not a list"),
    ({"stop_signal": "BOGUS"},
     "f: key 'stop_signal' must be a signal name such as TERM or a number, not 'BOGUS'"),
    ({"stop_timeout": -0.5}, "f: key 'stop_timeout' must be from 0 to 10000000 seconds, "
                             "not -0.5"),
    ({"stop_timeout": float("nan")},
     "f: key 'stop_timeout' must be from 0 to 10000000 seconds, not nan"),
    ({"stop_group": None}, "f: key 'stop_group' must be true or false, not empty"),
    ({"kill_group": "no"}, "f: key 'kill_group' must be true or false, not a str"),
    ({"instances": 0}, "f: key 'instances' must be an integer from 1 to 1000, not 0"),
    ({"instances": 1001}, "f: key 'instances' must be an integer from 1 to 1000, not 1001"),
    ({"instances": "3"}, "f: key 'instances' must be an integer from 1 to 1000, not a str"),
    ({"instances": True}, "f: key 'instances' must be an integer from 1 to 1000, "
     "not true/false"),
    ({"finish_timeout": 1e9},
     "f: key 'finish_timeout' must be from 0 to 10000000 seconds, not 1000000000.0"),
    # LOG_KEYS
    ({"log": {"usr": "x"}}, "f: log: unknown key 'usr' (did you mean 'user'?)"),
    ({"log": {"level": 3}}, "f: log: unknown key 'level' (allowed: dir, format, group, "
     "max_files, max_size, mode, timestamps, user)"),
    ({"log": {"group": 1.5}}, "f: log: key 'group' must be a name or a number, not a float"),
    ({"log": {"user": []}}, "f: log: key 'user' must be a name or a number, not a list"),
    # BACKOFF_KEYS
    ({"backoff": {"facter": 2}}, "f: backoff: unknown key 'facter' (did you mean 'factor'?)"),
    ({"backoff": {"initial": "1s"}},
     "f: backoff: key 'initial' must be a number of seconds, not a str"),
    ({"backoff": {"factor": 0.5}}, "f: backoff: key 'factor' must be 1 or more"),
    ({"backoff": {"factor": -1}},
     "f: backoff: key 'factor' must be from 0 to 10000000 seconds, not -1"),
    ({"backoff": {"max": None}}, "f: backoff: key 'max' must be a number of seconds, not empty"),
    # READY_KEYS
    ({"ready": {"failures": 3}}, f"f: ready: unknown key 'failures' (allowed: {READY_ALLOWED})"),
    ({"ready": {"check": 1.5}},
     "f: ready: key 'check' must be true (run ./check), a command or a list, not a float"),
    ({"ready": {"check": "  "}},
     "f: ready: key 'check' must be true (run ./check), a command or a list, not a str"),
    ({"ready": {"check": []}},
     "f: ready: key 'check' must be true (run ./check), a command or a list, not a list"),
    ({"ready": {"tcp": "db:5432"}}, "f: ready: key 'tcp' host 'db' must be an IP address or "
                                    "localhost (pyinit does no DNS lookups)"),
    ({"ready": {"tcp": 70000}},
     "f: ready: key 'tcp' port '70000' must be a number from 1 to 65535"),
    ({"ready": {"http": "https://127.0.0.1/"}}, "f: ready: key 'http' https probes are not "
                                                "supported; use http:// (or a tcp probe)"),
    ({"ready": {"http": "127.0.0.1/x"}},
     "f: ready: key 'http' '127.0.0.1/x' must start with http://"),
    ({"ready": {"interval": -1}},
     "f: ready: key 'interval' must be from 0 to 10000000 seconds, not -1"),
    ({"ready": {"timeout": "soon"}}, "f: ready: key 'timeout' must be a number of seconds, "
                                     "not a str"),
    ({"ready": {"notification_fd": 2}},
     "f: ready: key 'notification_fd' must be an integer from 3 to 1023, not 2"),
    ({"ready": {"notification_fd": 1024}},
     "f: ready: key 'notification_fd' must be an integer from 3 to 1023, not 1024"),
    ({"ready": {"sd_notify": "y"}}, "f: ready: key 'sd_notify' must be true or false, not a str"),
    ({"ready": {"start_timeout": []}},
     "f: ready: key 'start_timeout' must be a number of seconds, not a list"),
    ({"ready": {"settle": None}}, "f: ready: key 'settle' must be a number of seconds, not empty"),
    # LIVENESS_KEYS
    ({"liveness": {"notification_fd": 3}},
     f"f: liveness: unknown key 'notification_fd' (allowed: {LIVENESS_ALLOWED})"),
    ({"liveness": {"tcp": 80, "failures": 0}},
     "f: liveness: key 'failures' must be an integer from 1 to 1000, not 0"),
    ({"liveness": {"tcp": 80, "failures": 1001}},
     "f: liveness: key 'failures' must be an integer from 1 to 1000, not 1001"),
    ({"liveness": {"check": None}},
     "f: liveness: key 'check' must be true (run ./check), a command or a list, not empty"),
    ({"liveness": {"tcp": "1.2.3.4"}}, "f: liveness: key 'tcp' '1.2.3.4' has no port; "
                                       "expected PORT, HOST:PORT or [IPV6]:PORT"),
    ({"liveness": {"http": "ftp://x"}}, "f: liveness: key 'http' 'ftp://x' must start with "
                                        "http://"),
    ({"liveness": {"tcp": 80, "interval": "1m"}},
     "f: liveness: key 'interval' must be a number of seconds, not a str"),
    ({"liveness": {"tcp": 80, "timeout": 1e8}},
     "f: liveness: key 'timeout' must be from 0 to 10000000 seconds, not 100000000.0"),
]


BAD += [
    # scheduled jobs
    ({"schedule": "61 * * * *"}, "f: key 'schedule' minute field '61': 61 is not from 0 to 59"),
    ({"schedule": "@reboot"}, "f: key 'schedule' @reboot is not a schedule: use 'on_start: run'"),
    ({"schedule": 5}, "f: key 'schedule' must be a cron expression, an @name or "
                      "'every DURATION'"),
    ({"every": "0s"}, "f: key 'every' must be from 1s to 366d, not '0s'"),
    ({"every": "90s", "schedule": "@daily"}, "f: choose one of 'schedule' and 'every', not both"),
    ({"timezone": "Paris!"}, "f: key 'timezone' must be a time zone name such as Europe/Paris, "
                             "not 'Paris!'"),
    ({"overlap": "wait", "every": 5}, "f: key 'overlap' must be one of skip, queue, replace, "
                                      "not 'wait'"),
    ({"jitter": -1, "every": 5}, "f: key 'jitter' must be from 0 to 10000000 seconds, not -1"),
    ({"on_start": "yes", "every": 5}, "f: key 'on_start' must be one of skip, run, not 'yes'"),
    ({"timeout": 0, "every": 5}, "f: key 'timeout' must be more than 0 seconds"),
    ({"timeout": 5}, "f: key 'timeout' applies only to a scheduled job "
                     "(with 'schedule' or 'every')"),
    ({"every": 5, "restart": "always"}, "f: key 'restart' does not apply to a scheduled job "
                                        "(each run is a oneshot, never restarted)"),
    ({"every": 5, "instances": 2}, "f: key 'instances' does not apply to a scheduled job "
                                   "(each run is a oneshot, never restarted)"),
    ({"every": 5, "ready": {"tcp": 80}}, "f: key 'ready' does not apply to a scheduled job "
                                         "(each run is a oneshot, never restarted)"),
]


def test_a_job_ignores_restart_defaults_from_pyinit_yaml() -> None:
    c = validate({"every": 60}, "f", {"restart": "on-failure", "timezone": "UTC"})
    assert c.restart == "never" and c.oneshot and c.timezone == "UTC"
    glob = validate_global({"defaults": {"timezone": "UTC"}}, "p")
    assert glob.defaults == {"timezone": "UTC"}


@pytest.mark.parametrize("data, message", BAD)
def test_bad_values_give_one_exact_line(data, message) -> None:
    assert error(data) == message


def test_the_bad_table_covers_every_key() -> None:
    seen: dict[str, set] = {"service": set(), "ready": set(), "liveness": set(),
                            "backoff": set(), "log": set()}
    for data, _ in BAD:
        if not isinstance(data, dict):
            continue
        seen["service"] |= set(data)
        for sub in ("ready", "liveness", "backoff", "log"):
            if isinstance(data.get(sub), dict):
                seen[sub] |= set(data[sub])
    assert set(SERVICE_KEYS) <= seen["service"]
    assert set(READY_KEYS) <= seen["ready"]
    assert set(LIVENESS_KEYS) <= seen["liveness"]
    assert set(BACKOFF_KEYS) <= seen["backoff"]
    assert set(LOG_KEYS) <= seen["log"]


def test_type_names_take_the_right_article() -> None:
    assert error({"oneshot": 1}) == "f: key 'oneshot' must be true or false, not an int"


# --- '-' and '_' ------------------------------------------------------------------------
def test_keys_may_use_dashes() -> None:
    cfg = validate({"max-restarts": 3, "stop-signal": "HUP", "success-exit-codes": [0, 1],
                    "kill-group": False, "ready": {"notification-fd": 4, "start-timeout": 9}},
                   "f")
    assert (cfg.max_restarts, cfg.stop_signal) == (3, int(signal.SIGHUP))
    assert cfg.success_exit_codes == (0, 1) and cfg.kill_group is False
    assert cfg.ready == Probe("notification_fd", 4, start_timeout=9.0)


def test_errors_quote_the_key_as_written() -> None:
    assert error({"ready": {"notification-fd": "x"}}) == (
        "f: ready: key 'notification-fd' must be an integer from 3 to 1023, not a str")
    assert error({"stop-timeout": "x"}) == (
        "f: key 'stop-timeout' must be a number of seconds, not a str")


# --- umask, rlimits, signals, environment --------------------------------------------------
@pytest.mark.parametrize("text, umask", [
    ("umask: 022\n", 0o22),  # YAML 1.1 octal integer
    ("umask: '022'\n", 0o22),
    ("umask: '0022'\n", 0o22),
    ("umask: '7777'\n", 0o7777),
    ("umask: 0\n", 0),
    ("umask: 077\n", 0o77),
])
def test_umask_yaml_octal_and_strings(tmp_path, text: str, umask: int) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(text)
    assert load_service(str(path)).umask == umask


@pytest.mark.parametrize("value", ["0o22", "08", "77777", "", "-1", 0o7777 + 1, -1, 1.5, None])
def test_bad_umasks(value) -> None:
    assert error({"umask": value}) == (
        f"f: key 'umask' must be an octal mode such as '022', not {value!r}")


@pytest.mark.parametrize("value, soft, hard", [
    (100, 100, 100),
    (0, 0, 0),
    ([10, 20], 10, 20),
    ("unlimited", INF, INF),
    ("infinity", INF, INF),
    ([1, "unlimited"], 1, INF),
    (["unlimited", "unlimited"], INF, INF),
])
def test_rlimit_values(value, soft: int, hard: int) -> None:
    assert validate({"rlimits": {"nofile": value}}, "f").rlimits == (("nofile", soft, hard),)


RLIMIT_NAMES = ["as", "core", "cpu", "data", "fsize", "memlock", "msgqueue", "nice",
                "nofile", "nproc", "rss", "rtprio", "sigpending", "stack"]


def test_every_rlimit_name_is_accepted() -> None:
    cfg = validate({"rlimits": {n: 1 for n in RLIMIT_NAMES}}, "f")
    assert [r[0] for r in cfg.rlimits] == RLIMIT_NAMES


@pytest.mark.parametrize("name", RLIMIT_NAMES)
def test_every_accepted_rlimit_can_be_applied(name: str) -> None:
    assert isinstance(getattr(resource, f"RLIMIT_{name.upper()}", None), int)


@pytest.mark.parametrize("value, shown", [
    (-1, "-1"), ([1, 2, 3], "[1, 2, 3]"), ([1], "[1]"), ("lots", "'lots'"), (True, "True"),
    (1.5, "1.5"), ([1, -2], "-2"),
])
def test_bad_rlimit_values(value, shown: str) -> None:
    assert error({"rlimits": {"core": value}}) == (
        f"f: key 'rlimits' core: must be a number, 'unlimited' or [soft, hard], not {shown}")


def test_unknown_rlimit() -> None:
    assert error({"rlimits": {"files": 1}}) == (
        "f: key 'rlimits' unknown limit 'files' (allowed: as, core, cpu, data, fsize, "
        "memlock, msgqueue, nice, nofile, nproc, rss, rtprio, sigpending, stack)")


def test_soft_rlimit_above_hard_is_an_error() -> None:
    with pytest.raises(ConfigError, match="rlimits"):
        validate({"rlimits": {"nofile": [4096, 1024]}}, "f")


@pytest.mark.parametrize("value, signum", [
    ("TERM", signal.SIGTERM), ("SIGTERM", signal.SIGTERM), ("term", signal.SIGTERM),
    ("kill", signal.SIGKILL), ("SigKill", signal.SIGKILL), (9, signal.SIGKILL),
    ("USR1", signal.SIGUSR1), ("QUIT", signal.SIGQUIT), (1, signal.SIGHUP),
    (signal.NSIG - 1, signal.NSIG - 1),
])
def test_stop_signals(value, signum: int) -> None:
    got = validate({"stop_signal": value}, "f").stop_signal
    assert got == int(signum) and type(got) is int


@pytest.mark.parametrize("value", ["BOGUS", "SIG", "", "9", "SIG TERM", "TERM ", 0, -15,
                                   signal.NSIG, True, False, 9.0, None, ["TERM"]])
def test_bad_stop_signals(value) -> None:
    assert error({"stop_signal": value}) == (
        f"f: key 'stop_signal' must be a signal name such as TERM or a number, not {value!r}")


def test_environment_values_are_converted_to_strings() -> None:
    env = {"ON": True, "OFF": False, "N": 8080, "NEG": -1, "F": 1.5, "S": "text", "E": ""}
    assert validate({"environment": env}, "f").environment == (
        ("ON", "true"), ("OFF", "false"), ("N", "8080"), ("NEG", "-1"), ("F", "1.5"),
        ("S", "text"), ("E", ""))


@pytest.mark.parametrize("name", ["1A", "A-B", "", "A B", "É", 5, None])
def test_bad_environment_names(name) -> None:
    assert error({"environment": {name: "x"}}) == (
        f"f: key 'environment' {name!r} is not a variable name")


@pytest.mark.parametrize("value, kind", [(None, "empty"), ([1], "a list"), ({}, "a mapping"),
                                         ("a\0b", "a str")])
def test_bad_environment_values(value, kind: str) -> None:
    assert error({"environment": {"A": value}}) == (
        f"f: key 'environment' A: must be a string or a number, not {kind}")


# --- readiness and liveness -----------------------------------------------------------------
@pytest.mark.parametrize("ready, message", [
    ({"tcp": 80, "http": "http://127.0.0.1/"}, "choose one of tcp, http, not several"),
    ({"sd_notify": True, "notification_fd": 3},
     "choose one of notification_fd, sd_notify, not several"),
    ({"check": True, "tcp": 80}, "choose one of check, tcp, not several"),
    ({"notification_fd": 3, "check": True, "http": "http://127.0.0.1/"},
     "choose one of notification_fd, check, http, not several"),
])
def test_two_readiness_mechanisms_are_an_error(ready, message: str) -> None:
    assert error({"ready": ready}) == f"f: ready: {message}"


def test_two_liveness_probes_are_an_error() -> None:
    assert error({"liveness": {"tcp": 80, "check": True}}) == (
        "f: liveness: choose one of check, tcp, not several")


def test_settle_alone_is_the_settle_mechanism() -> None:
    probe = validate({"ready": {"settle": 2.5, "start_timeout": 4}}, "f").ready
    assert (probe.kind, probe.settle, probe.start_timeout) == ("settle", 2.5, 4.0)


def test_sd_notify_false_is_no_mechanism() -> None:
    cfg = validate({"ready": {"sd_notify": False, "tcp": 80}}, "f")
    assert cfg.ready == Probe("tcp", ("127.0.0.1", 80))


@pytest.mark.parametrize("liveness", [{}, {"interval": 1}, {"failures": 2, "timeout": 1}])
def test_liveness_needs_a_probe(liveness) -> None:
    assert error({"liveness": liveness}) == "f: liveness: needs one of check, tcp, http"


def test_ready_on_a_oneshot_is_an_error() -> None:
    message = ("f: key 'ready' does not apply to a oneshot "
               "(it is ready when it exits with a success code)")
    assert error({"oneshot": True, "ready": {"tcp": 80}}) == message
    assert error({"ready": {}, "oneshot": True}) == message
    # oneshot: false with ready is fine
    assert validate({"oneshot": False, "ready": {}}, "f").ready == Probe("settle")


def test_ready_from_defaults_does_not_apply_to_a_oneshot() -> None:
    defaults = {"ready": {"tcp": 80}}
    assert validate({"oneshot": True}, "f", defaults).ready is None
    assert validate({}, "f", defaults).ready == Probe("tcp", ("127.0.0.1", 80))


def test_backoff_factor_of_one_is_allowed_but_less_is_not() -> None:
    assert validate({"backoff": {"factor": 1.0}}, "f").backoff_factor == 1.0
    assert error({"backoff": {"factor": 0.99}}) == "f: backoff: key 'factor' must be 1 or more"
    assert error({"backoff": {"factor": 0}}) == "f: backoff: key 'factor' must be 1 or more"


# --- pyinit.yaml ---------------------------------------------------------------------------
def write(tmp_path, text: str, name: str = "pyinit.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_load_global_missing_or_empty_file(tmp_path) -> None:
    assert load_global(str(tmp_path / "nope.yaml")) == GlobalConfig()
    assert load_global(write(tmp_path, "")) == GlobalConfig()
    assert load_global(write(tmp_path, "# nothing\n")) == GlobalConfig()


def test_validate_global_needs_no_file() -> None:
    """The checks are pure: a parsed document in, a GlobalConfig or ConfigError out."""
    assert validate_global(None, "p") == GlobalConfig()
    got = validate_global({"defaults": {"user": "app"}, "wait-for-services": False}, "p")
    assert got == GlobalConfig(defaults={"user": "app"}, wait_for_services=False)
    with pytest.raises(ConfigError, match="^p: must be a mapping of keys, not a list$"):
        validate_global([], "p")
    with pytest.raises(ConfigError, match="^p: defaults: key 'instances' cannot be a default"):
        validate_global({"defaults": {"instances": 2}}, "p")


def test_load_global_every_key(tmp_path) -> None:
    path = write(tmp_path, "defaults:\n  restart: on-failure\n  stop-signal: INT\n"
                 "wait_for_services: false\nservices-ready-timeout: 5\n"
                 "health_listen: '127.0.0.1:8080'\n"
                 "hooks: [{events: [failed], command: alert}]\n")
    got = load_global(path)
    assert got == GlobalConfig(defaults={"restart": "on-failure", "stop_signal": 2},
                               wait_for_services=False, services_ready_timeout=5.0,
                               health_listen="127.0.0.1:8080",
                               hooks=(HookSpec("hook1", ("failed",), ("alert",)),))
    assert set(GLOBAL_KEYS) == {"defaults", "wait_for_services", "services_ready_timeout",
                                "health_listen", "hooks"}


def test_defaults_apply_and_service_keys_override(tmp_path) -> None:
    path = write(tmp_path, "defaults:\n  restart: on-failure\n  max_restarts: 4\n"
                 "  user: app\n  ready: {tcp: 80}\n"
                 "  environment: {A: '1', B: '2'}\n")
    defaults = load_global(path).defaults
    plain = validate({}, "s", defaults)
    assert (plain.restart, plain.max_restarts, plain.run_as) == ("on-failure", 4,
                                                                  UserSpec("app"))
    assert plain.ready == Probe("tcp", ("127.0.0.1", 80))
    assert plain.environment == (("A", "1"), ("B", "2"))
    mine = validate({"restart": "never", "user": "db", "ready": {"sd_notify": True},
                     "environment": {"B": "x", "C": 3}}, "s", defaults)
    assert (mine.restart, mine.max_restarts, mine.run_as) == ("never", 4, UserSpec("db"))
    assert mine.ready == Probe("sd_notify", True)
    # environment merges: the defaults first, the service's own after (later wins)
    assert mine.environment[:2] == (("A", "1"), ("B", "2"))
    assert dict(mine.environment) == {"A": "1", "B": "x", "C": "3"}


def test_defaults_do_not_leak_between_services(tmp_path) -> None:
    defaults = load_global(write(tmp_path, "defaults:\n  environment: {A: '1'}\n")).defaults
    validate({"environment": {"B": "2"}}, "s1", defaults)
    assert validate({}, "s2", defaults).environment == (("A", "1"),)


@pytest.mark.parametrize("text, message", [
    ("bogus: 1\n", "P: unknown key 'bogus' (allowed: defaults, health_listen, hooks, "
                   "services_ready_timeout, wait_for_services)"),
    ("wait_for_service: true\n", "P: unknown key 'wait_for_service' "
                                 "(did you mean 'wait_for_services'?)"),
    ("- a\n", "P: must be a mapping of keys, not a list"),
    ("wait_for_services: 'yes'\n", "P: key 'wait_for_services' must be true or false, not a str"),
    ("services_ready_timeout: -1\n",
     "P: key 'services_ready_timeout' must be from 0 to 10000000 seconds, not -1"),
    ("health_listen: ''\n", "P: key 'health_listen' must be a non-empty string, not empty"),
    ("defaults: []\n", f"P: key 'defaults' must be a mapping with keys {ALL_SERVICE_KEYS}, "
                       "not a list"),
    ("defaults:\n  usr: x\n", "P: defaults: unknown key 'usr' (did you mean 'user'?)"),
    ("defaults:\n  nice: 99\n", "P: defaults: key 'nice' must be an integer from -20 to 19, "
                                "not 99"),
    ("defaults:\n  log: {level: 1}\n", "P: defaults: log: unknown key 'level' "
                                       "(allowed: dir, format, group, max_files, max_size, "
                                       "mode, timestamps, user)"),
    ("defaults:\n  ready: {tcp: 80, check: true}\n",
     "P: defaults: ready: choose one of check, tcp, not several"),
    ("defaults:\n  backoff: {factor: 0.5}\n", "P: defaults: backoff: key 'factor' must be 1 "
                                              "or more"),
    ("defaults:\n  instances: 2\n", "P: defaults: key 'instances' cannot be a default "
     "(set it in the service's own service.yaml)"),
    ("defaults:\n  liveness: {interval: 3}\n",
     "P: defaults: liveness: needs one of check, tcp, http"),
])
def test_load_global_errors(tmp_path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_global(path)
    assert str(info.value) == message.replace("P", path, 1)


# --- reading YAML ------------------------------------------------------------------------
@pytest.mark.parametrize("text, line, problem", [
    ("user: app\n  group: [\n", 2, "mapping values are not allowed in this context"),
    ("a: b: c\n", 1, "mapping values are not allowed in this context"),
    ("user: app\nlog: [1\n", 3, "did not find expected ',' or ']'"),
    ("k: *x\n", 1, "found undefined alias"),
])
def test_yaml_errors_have_a_position(tmp_path, text: str, line: int, problem: str) -> None:
    path = write(tmp_path, text, "service.yaml")
    with pytest.raises(ConfigError) as info:
        load_service(path)
    message = str(info.value)
    prefix = f"{path}: not valid YAML (line {line}, column "
    assert message.startswith(prefix)
    column, rest = message[len(prefix):].split(")", 1)
    assert int(column) >= 1
    assert rest == f": {problem}"


def test_undecodable_yaml_is_one_line(tmp_path) -> None:
    path = tmp_path / "service.yaml"
    path.write_bytes(b"user: \xff\xfe\n")
    with pytest.raises(ConfigError) as info:
        load_service(str(path))
    assert str(info.value).startswith(f"{path}: not valid YAML")
    assert len(str(info.value).splitlines()) == 1


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        load_service(str(tmp_path / "missing.yaml"))
    assert str(info.value) == f"{tmp_path}/missing.yaml: cannot read: No such file or directory"
    with pytest.raises(ConfigError) as info:
        load_service(str(tmp_path))
    assert str(info.value) == f"{tmp_path}: cannot read: Is a directory"


def test_load_reads_a_whole_file(tmp_path) -> None:
    path = write(tmp_path, "user: app\nrestart: on-failure\nafter: db\n"
                 "ready:\n  notification-fd: 3\n", "service.yaml")
    cfg = load_service(path)
    assert cfg == ServiceConfig(run_as=UserSpec("app"), restart="on-failure", after=("db",),
                                ready=Probe("notification_fd", 3))


def test_load_never_builds_python_objects(tmp_path) -> None:
    evil = tmp_path / "service.yaml"
    evil.write_text("user: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_service(str(evil))
    assert not (tmp_path / "pwned").exists()


# --- properties ------------------------------------------------------------------------------
KNOWN = sorted({*SERVICE_KEYS, *READY_KEYS, *LIVENESS_KEYS, *BACKOFF_KEYS, *LOG_KEYS,
                "notification-fd", "stop-signal", "max-restarts"})
KEYS = st.one_of(st.sampled_from(KNOWN), st.text(max_size=6))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                    st.sampled_from(["TERM", "022", "unlimited", "http://127.0.0.1:1/",
                                     "[::1]:80", "localhost:80", "db", "on-failure"]))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=16)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(KEYS, JSON, max_size=6))
def test_validate_only_raises_config_error_with_one_line_per_problem(data) -> None:
    try:
        cfg = validate(data, "f")
    except ConfigError as exc:
        lines = str(exc).splitlines()
        assert lines == exc.problems[:20] + [f"and {len(exc.problems) - 20} more problems"] * (
            len(exc.problems) > 20)
        assert all(line.startswith("f: ") for line in exc.problems), lines
        assert len(set(exc.problems)) == len(exc.problems)  # each problem once
    else:
        assert isinstance(cfg, ServiceConfig)


@pytest.mark.parametrize("data", [{"nice": 10**5000}, {"user": 10**5000}])
def test_huge_numbers_are_config_errors(data) -> None:
    with pytest.raises(ConfigError):
        validate(data, "f")
