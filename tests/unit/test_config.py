"""Command line and environment parsing: flags win over env vars over defaults."""

from __future__ import annotations

import pytest

from pyinit import __version__
from pyinit.config import (
    DEFAULT_SERVICE_DIRS,
    DEFAULTS,
    ENV_VARS,
    SERVICES_READY_TIMEOUT,
    Config,
    UsageError,
    parse,
    read_config_file,
)
from pyinit.runtime import log

PATH_FLAGS = {
    "env_dir": "--env-dir",
    "init_dir": "--init-dir",
    "rc_local": "--rc-local",
    "pre_shutdown_dir": "--pre-shutdown-dir",
    "post_shutdown_dir": "--post-shutdown-dir",
    "run_dir": "--run-dir",
    "cont_init_dir": "--cont-init-dir",
    "cont_finish_dir": "--cont-finish-dir",
    "config_file": "--config",
}
TIMEOUT_FLAGS = {
    "kill_timeout": "--kill-timeout",
    "kill_all_timeout": "--kill-all-timeout",
    "shutdown_timeout": "--shutdown-timeout",
}


def test_defaults() -> None:
    cfg = parse([], {})
    assert cfg == Config()
    assert cfg.command == []
    assert cfg.env_dir == "/etc/container_environment"
    assert cfg.init_dir == "/etc/my_init.d"
    assert cfg.rc_local == "/etc/rc.local"
    assert cfg.pre_shutdown_dir == "/etc/my_init.pre_shutdown.d"
    assert cfg.post_shutdown_dir == "/etc/my_init.post_shutdown.d"
    assert cfg.run_dir == "/run/pyinit"
    assert cfg.service_dirs == list(DEFAULT_SERVICE_DIRS)
    assert (cfg.kill_timeout, cfg.kill_all_timeout) == (5.0, 3.0)
    assert cfg.kill_timeout + cfg.kill_all_timeout <= cfg.shutdown_timeout < 10
    assert not cfg.skip_startup_files and not cfg.skip_services
    assert cfg.kill_all_on_exit
    assert cfg.verbosity == log.INFO


@pytest.mark.parametrize("key", sorted(PATH_FLAGS))
def test_path_flag_beats_env_beats_default(key: str) -> None:
    flag, var = PATH_FLAGS[key], ENV_VARS[key]
    assert getattr(parse([], {}), key) == DEFAULTS[key]
    assert getattr(parse([], {var: "/from/env"}), key) == "/from/env"
    assert getattr(parse([flag, "/from/flag"], {var: "/from/env"}), key) == "/from/flag"
    assert getattr(parse([f"{flag}=/eq"], {}), key) == "/eq"
    # an empty variable is the same as an unset one
    assert getattr(parse([], {var: ""}), key) == DEFAULTS[key]


@pytest.mark.parametrize("key", sorted(TIMEOUT_FLAGS))
def test_timeout_flag_beats_env_beats_default(key: str) -> None:
    flag, var = TIMEOUT_FLAGS[key], ENV_VARS[key]
    default = getattr(Config(), key)
    assert getattr(parse([], {}), key) == default
    assert getattr(parse([], {var: "7.5"}), key) == 7.5
    assert getattr(parse([flag, "0.25"], {var: "7.5"}), key) == 0.25
    assert getattr(parse([flag, "0"], {}), key) == 0.0
    assert getattr(parse([], {var: ""}), key) == default


def test_timeout_env_var_names_are_my_inits() -> None:
    cfg = parse([], {"KILL_PROCESS_TIMEOUT": "2", "KILL_ALL_PROCESSES_TIMEOUT": "4"})
    assert (cfg.kill_timeout, cfg.kill_all_timeout) == (2.0, 4.0)


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "1e8", "1s", " "])
def test_bad_timeout_env_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError) as info:
        parse([], {"KILL_PROCESS_TIMEOUT": value})
    assert "KILL_PROCESS_TIMEOUT" in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_kill_all_env_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="KILL_ALL_PROCESSES_TIMEOUT"):
        parse([], {"KILL_ALL_PROCESSES_TIMEOUT": "soon"})


def test_bad_env_is_ignored_when_the_flag_is_given() -> None:
    cfg = parse(["--kill-timeout", "1"], {"KILL_PROCESS_TIMEOUT": "abc"})
    assert cfg.kill_timeout == 1.0


@pytest.mark.parametrize("flag", sorted(TIMEOUT_FLAGS.values()))
@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1e9", ""])
def test_bad_timeout_flag_exits_2_with_usage(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse([flag, value], {})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: pyinit [options] [--] [COMMAND [ARGS...]]")
    assert flag in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--no-such-flag"], ["--kill-timeout"], ["-x"]])
def test_unknown_or_incomplete_flag_exits_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse(argv, {})
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith("usage: pyinit")


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["sh", "-c", "exit 3"], ["sh", "-c", "exit 3"]),
        (["--", "sh", "-c", "exit 3"], ["sh", "-c", "exit 3"]),
        (["--", "-v", "x"], ["-v", "x"]),
        (["--", "--kill-timeout", "1"], ["--kill-timeout", "1"]),
        (["--", "--", "x"], ["--", "x"]),
        (["--"], []),
        ([], []),
        # options after the command belong to the command
        (["cmd", "--kill-timeout", "1", "-v"], ["cmd", "--kill-timeout", "1", "-v"]),
        (["cmd", "--", "x"], ["cmd", "--", "x"]),
    ],
)
def test_command_and_double_dash(argv: list[str], command: list[str]) -> None:
    assert parse(argv, {}).command == command


def test_options_before_the_command_are_pyinits() -> None:
    cfg = parse(["-v", "--kill-timeout", "1", "--", "cmd", "-v"], {})
    assert cfg.command == ["cmd", "-v"]
    assert cfg.kill_timeout == 1.0
    assert cfg.verbosity == log.DEBUG
    cfg = parse(["--quiet", "cmd", "--quiet"], {})
    assert cfg.command == ["cmd", "--quiet"]
    assert cfg.verbosity == log.WARNING


def test_command_after_options_without_double_dash() -> None:
    cfg = parse(["--skip-runit", "--init-dir", "/i", "bash", "-l"], {})
    assert cfg.command == ["bash", "-l"]
    assert cfg.skip_services and cfg.init_dir == "/i"


def test_my_init_flags() -> None:
    cfg = parse(["--skip-startup-files", "--skip-runit", "--no-kill-all-on-exit", "--quiet"], {})
    assert cfg.skip_startup_files
    assert cfg.skip_services
    assert not cfg.kill_all_on_exit
    assert cfg.verbosity == log.WARNING  # like my_init, --quiet keeps warnings
    assert parse(["--skip-services"], {}).skip_services


@pytest.mark.parametrize(("argv", "level"), [([], log.INFO), (["-v"], log.DEBUG),
                                             (["-vv"], log.DEBUG + 1),
                                             (["-v", "--verbose"], log.DEBUG + 1),
                                             (["--quiet"], log.WARNING),
                                             (["--quiet", "-v"], log.WARNING)])
def test_verbosity(argv: list[str], level: int) -> None:
    assert parse(argv, {}).verbosity == level


def test_service_dir_is_repeatable_and_beats_env() -> None:
    env = {"PYINIT_SERVICE_DIR": "/e1:/e2"}
    assert parse(["--service-dir", "/a", "--service-dir", "/b"], env).service_dirs == ["/a", "/b"]
    assert parse(["--service-dir", "/only"], {}).service_dirs == ["/only"]


@pytest.mark.parametrize(
    ("value", "dirs"),
    [
        ("/e1:/e2", ["/e1", "/e2"]),
        ("/one", ["/one"]),
        ("/a::/b:", ["/a", "/b"]),
        ("", list(DEFAULT_SERVICE_DIRS)),
        (":", []),
    ],
)
def test_service_dir_env_colon_list(value: str, dirs: list[str]) -> None:
    assert parse([], {"PYINIT_SERVICE_DIR": value}).service_dirs == dirs


def test_default_service_dirs_are_fresh_lists() -> None:
    a, b = parse([], {}), parse([], {})
    a.service_dirs.append("/x")
    assert b.service_dirs == list(DEFAULT_SERVICE_DIRS)


def test_help_documents_every_flag_and_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(["--help"], {})
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for flag in [*PATH_FLAGS.values(), *TIMEOUT_FLAGS.values(), "--service-dir",
                 "--skip-startup-files", "--skip-runit", "--no-kill-all-on-exit", "--quiet",
                 "--verbose", "--version", "--no-wait-for-services",
                 "--services-ready-timeout", "--health-listen"]:
        assert flag in out, flag
    for var in ENV_VARS.values():
        assert var in out, var


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(["--version"], {})
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"pyinit {__version__}"


# --- service configuration settings (issue 4) ---------------------------------------------
def test_new_defaults() -> None:
    cfg = parse([], {})
    assert cfg.cont_init_dir == "/etc/cont-init.d"
    assert cfg.cont_finish_dir == "/etc/cont-finish.d"
    assert cfg.config_file == "/etc/pyinit.yaml"
    # left open for pyinit.yaml
    assert (cfg.wait_for_services, cfg.services_ready_timeout, cfg.health_listen) == (
        None, None, None)
    assert cfg.service_defaults == {}


def test_no_wait_for_services_flag() -> None:
    assert parse(["--no-wait-for-services"], {}).wait_for_services is False
    assert parse(["--no-wait-for-services", "cmd"], {}).command == ["cmd"]


def test_services_ready_timeout_flag_beats_env() -> None:
    var = "PYINIT_SERVICES_READY_TIMEOUT"
    assert ENV_VARS["services_ready_timeout"] == var
    assert parse([], {var: "12.5"}).services_ready_timeout == 12.5
    assert parse(["--services-ready-timeout", "3"], {var: "12.5"}).services_ready_timeout == 3.0
    assert parse(["--services-ready-timeout", "0"], {}).services_ready_timeout == 0.0
    assert parse([], {var: ""}).services_ready_timeout is None


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "1e9"])
def test_bad_services_ready_timeout_env(value: str) -> None:
    with pytest.raises(UsageError) as info:
        parse([], {"PYINIT_SERVICES_READY_TIMEOUT": value})
    assert str(info.value).startswith("PYINIT_SERVICES_READY_TIMEOUT: ")
    assert repr(value) in str(info.value)


def test_bad_services_ready_timeout_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        parse(["--services-ready-timeout", "x"], {})
    assert info.value.code == 2
    assert "--services-ready-timeout" in capsys.readouterr().err


def test_health_listen_flag_beats_env() -> None:
    var = "PYINIT_HEALTH_LISTEN"
    assert ENV_VARS["health_listen"] == var
    assert parse([], {var: ":9000"}).health_listen == ":9000"
    assert parse(["--health-listen", "127.0.0.1:1"], {var: ":9000"}).health_listen == (
        "127.0.0.1:1")
    assert parse([], {var: ""}).health_listen is None


def pyinit_yaml(tmp_path, text: str) -> str:
    path = tmp_path / "pyinit.yaml"
    path.write_text(text)
    return str(path)


def test_read_config_file_missing_file_gives_the_defaults(tmp_path) -> None:
    cfg = read_config_file(parse(["--config", str(tmp_path / "none.yaml")], {}))
    assert cfg.wait_for_services is True
    assert cfg.services_ready_timeout == SERVICES_READY_TIMEOUT == 60.0
    assert cfg.health_listen is None
    assert cfg.service_defaults == {}


def test_read_config_file_uses_the_file_when_flags_are_absent(tmp_path) -> None:
    path = pyinit_yaml(tmp_path, "wait_for_services: false\nservices_ready_timeout: 7\n"
                       "health_listen: '127.0.0.1:8081'\n"
                       "defaults:\n  restart: on-failure\n  stop-timeout: 3\n")
    cfg = read_config_file(parse([], {"PYINIT_CONFIG": path}))
    assert cfg.config_file == path
    assert cfg.wait_for_services is False
    assert cfg.services_ready_timeout == 7.0
    assert cfg.health_listen == "127.0.0.1:8081"
    assert cfg.service_defaults == {"restart": "on-failure", "stop_timeout": 3.0}


def test_read_config_file_flags_and_env_win(tmp_path) -> None:
    path = pyinit_yaml(tmp_path, "wait_for_services: true\nservices_ready_timeout: 7\n"
                       "health_listen: '127.0.0.1:8081'\n")
    cfg = read_config_file(parse(["--config", path, "--no-wait-for-services",
                                  "--services-ready-timeout", "2",
                                  "--health-listen", "[::1]:9"], {}))
    assert (cfg.wait_for_services, cfg.services_ready_timeout, cfg.health_listen) == (
        False, 2.0, "[::1]:9")
    env = {"PYINIT_SERVICES_READY_TIMEOUT": "4", "PYINIT_HEALTH_LISTEN": ":7"}
    cfg = read_config_file(parse(["--config", path], env))
    assert (cfg.wait_for_services, cfg.services_ready_timeout, cfg.health_listen) == (
        True, 4.0, ":7")


def test_read_config_file_partial_file(tmp_path) -> None:
    path = pyinit_yaml(tmp_path, "health_listen: ':0'\n")
    cfg = read_config_file(parse(["--config", path], {}))
    assert (cfg.wait_for_services, cfg.services_ready_timeout, cfg.health_listen) == (
        True, 60.0, ":0")


@pytest.mark.parametrize("text, message", [
    ("wait_for_services: maybe\n", "P: key 'wait_for_services' must be true or false, not a str"),
    ("wait: true\n", "P: unknown key 'wait' (allowed: defaults, health_listen, hooks, "
                     "services_ready_timeout, wait_for_services)"),
    ("defaults:\n  usr: x\n", "P: defaults: unknown key 'usr' (did you mean 'user'?)"),
    ("a: b: c\n", "P: not valid YAML (line 1, column 5): mapping values are not allowed in "
                  "this context"),
])
def test_read_config_file_bad_file_is_a_usage_error(tmp_path, text: str, message: str) -> None:
    path = pyinit_yaml(tmp_path, text)
    with pytest.raises(UsageError) as info:
        read_config_file(parse(["--config", path], {}))
    assert str(info.value) == message.replace("P", path, 1)


@pytest.mark.parametrize("flag, why", [
    ("bogus", "host 'bogus' must be an IP address or localhost (pyinit does no DNS lookups)"),
    ("db:80", "host 'db' must be an IP address or localhost (pyinit does no DNS lookups)"),
    (":70000", "port '70000' must be a number from 0 to 65535"),
    ("::1:80", "write IPv6 addresses in brackets, as [ADDR]:PORT"),
    ("127.0.0.1", "'127.0.0.1' has no port; expected PORT, HOST:PORT or [IPV6]:PORT"),
])
def test_bad_health_listen_is_a_usage_error(tmp_path, flag: str, why: str) -> None:
    cfg = parse(["--config", str(tmp_path / "none.yaml"), "--health-listen", flag], {})
    with pytest.raises(UsageError) as info:
        read_config_file(cfg)
    assert str(info.value) == f"health listen address {flag!r}: {why}"


def test_bad_health_listen_from_the_file_is_a_usage_error(tmp_path) -> None:
    path = pyinit_yaml(tmp_path, "health_listen: 'localhost'\n")
    with pytest.raises(UsageError, match="^health listen address 'localhost': "):
        read_config_file(parse(["--config", path], {}))


def test_good_health_listen_addresses(tmp_path) -> None:
    for addr in ("8080", ":8080", "0.0.0.0:1", "localhost:9", "[::]:80"):
        cfg = parse(["--config", str(tmp_path / "none.yaml"), "--health-listen", addr], {})
        assert read_config_file(cfg).health_listen == addr


def test_run_dir_set_only_when_asked_for() -> None:
    """Without --run-dir or PYINIT_RUN_DIR pyinit may fall back (rundir.py); a run dir
    asked for by name is used as given."""
    assert parse([], {}).run_dir_set is False
    assert parse([], {"PYINIT_RUN_DIR": ""}).run_dir_set is False
    assert parse([], {"PYINIT_RUN_DIR": "/srv/run"}).run_dir_set is True
    assert parse(["--run-dir", "/srv/run"], {}).run_dir_set is True


def test_relative_paths_are_made_absolute_against_the_start_cwd() -> None:
    """pyinit leaves its cwd once the main command started (boot.leave_cwd): relative
    flags must keep meaning the directory they were given in (issue 18.6)."""
    from pyinit.config import make_absolute

    cfg = parse(["--env-dir", "env", "--run-dir", "./run", "--service-dir", "svc",
                 "--service-dir", "/abs", "--rc-local", "/etc/rc.local"], {})
    make_absolute(cfg, "/work/app")
    assert (cfg.env_dir, cfg.run_dir, cfg.rc_local) == (
        "/work/app/env", "/work/app/./run", "/etc/rc.local")
    assert cfg.service_dirs == ["/work/app/svc", "/abs"]
    assert cfg.init_dir == "/etc/my_init.d"
