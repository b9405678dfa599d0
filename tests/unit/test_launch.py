"""launch: env_file parsing, the environment of a service, its directory and child setup."""

from __future__ import annotations

import os
import resource

import pytest

from pyinit.core.model import Account
from pyinit.core.schema import ServiceConfig
from pyinit.runtime.launch import (
    LaunchError,
    child_setup,
    environment,
    instance_args,
    parse_env_file,
    working_directory,
)

APP = Account(uid=1234, gid=1234, groups=(1234,), name="app", home="/home/app")


# --- parse_env_file ----------------------------------------------------------------------
def test_parse_env_file_forms() -> None:
    text = "\n".join([
        "# a comment",
        "",
        "   ",
        "A=1",
        "export B=two words",
        "export\tTAB=t",
        "  INDENTED=yes  ",
        "   # indented comment",
        'DQ="quoted value"',
        "SQ='single # not a comment'",
        "EMPTY=",
        'EMPTY_DQ=""',
        "EQ=a=b=c",
        'HALF="open',
        "MIXED=\"a'",
        "LONE='",
        "INLINE=v # kept",
        "_under=1",
        "A=again",
    ])
    assert parse_env_file(text, "p") == [
        ("A", "1"), ("B", "two words"), ("TAB", "t"), ("INDENTED", "yes"),
        ("DQ", "quoted value"), ("SQ", "single # not a comment"), ("EMPTY", ""),
        ("EMPTY_DQ", ""), ("EQ", "a=b=c"), ("HALF", '"open'), ("MIXED", "\"a'"),
        ("LONE", "'"), ("INLINE", "v # kept"), ("_under", "1"), ("A", "again"),
    ]


def test_parse_env_file_empty() -> None:
    assert parse_env_file("", "p") == []
    assert parse_env_file("# only\n\n", "p") == []


@pytest.mark.parametrize("text, line", [
    ("A=1\nnot a line\n", 2),
    ("C = x\n", 1),
    ("# c\n\nexport\n", 3),
    ("A=1\n1A=2\n", 2),
    ("A-B=1\n", 1),
    ("=value\n", 1),
    ("A=1\r\nB=2\r\nno\r\n", 3),
])
def test_parse_env_file_bad_line(text: str, line: int) -> None:
    with pytest.raises(LaunchError) as info:
        parse_env_file(text, "/srv/env")
    assert str(info.value) == f"/srv/env: line {line}: expected NAME=VALUE"


# --- environment -----------------------------------------------------------------------------
def test_environment_without_anything_is_a_copy_of_base() -> None:
    base = {"PATH": "/bin", "X": "1"}
    env = environment(ServiceConfig(), "/srv", None, base)
    assert env == base and env is not base
    env["Y"] = "2"
    assert "Y" not in base


def test_environment_layers(tmp_path) -> None:
    (tmp_path / "env").write_text(
        "FROM_FILE=file\nHOME=/file-home\nBOTH=file\nexport USER=file-user\n")
    config = ServiceConfig(env_file="env", environment=(("BOTH", "yaml"), ("OWN", "y"),
                                                        ("PATH", "/yaml/bin")))
    base = {"PATH": "/bin", "HOME": "/root", "USER": "root", "LOGNAME": "root", "KEEP": "k"}
    env = environment(config, str(tmp_path), APP, base)
    assert env == {
        "PATH": "/yaml/bin",  # environment beats base
        "HOME": "/file-home",  # env_file beats the identity
        "USER": "file-user",
        "LOGNAME": "app",  # the identity beats base
        "UID": "1234",
        "KEEP": "k",
        "FROM_FILE": "file",
        "BOTH": "yaml",  # environment beats env_file
        "OWN": "y",
    }
    assert base["HOME"] == "/root"  # base is untouched


def test_environment_identity_over_base() -> None:
    env = environment(ServiceConfig(), "/srv", APP, {"HOME": "/root", "USER": "root", "A": "1"})
    assert env == {"HOME": "/home/app", "USER": "app", "LOGNAME": "app", "UID": "1234", "A": "1"}


def test_environment_later_duplicates_win() -> None:
    config = ServiceConfig(environment=(("A", "1"), ("A", "2")))
    assert environment(config, "/srv", None, {})["A"] == "2"


def test_env_file_absolute_path(tmp_path) -> None:
    (tmp_path / "abs.env").write_text("ABS=1\n")
    config = ServiceConfig(env_file=str(tmp_path / "abs.env"))
    assert environment(config, "/nonexistent/service", None, {}) == {"ABS": "1"}


def test_missing_env_file_is_a_launch_error(tmp_path) -> None:
    config = ServiceConfig(env_file="nope.env")
    with pytest.raises(LaunchError) as info:
        environment(config, str(tmp_path), None, {})
    assert str(info.value) == f"env_file {tmp_path}/nope.env: No such file or directory"
    with pytest.raises(LaunchError) as info:
        environment(ServiceConfig(env_file="."), str(tmp_path), None, {})
    assert str(info.value) == f"env_file {tmp_path}/.: Is a directory"


def test_bad_env_file_names_the_file_and_line(tmp_path) -> None:
    (tmp_path / "env").write_text("A=1\noops\n")
    with pytest.raises(LaunchError) as info:
        environment(ServiceConfig(env_file="env"), str(tmp_path), None, {})
    assert str(info.value) == f"{tmp_path}/env: line 2: expected NAME=VALUE"


def test_env_file_with_undecodable_bytes_is_read(tmp_path) -> None:
    (tmp_path / "env").write_bytes(b"RAW=\xff\n")
    env = environment(ServiceConfig(env_file="env"), str(tmp_path), None, {})
    assert os.fsencode(env["RAW"]) == b"\xff"


# --- working_directory -----------------------------------------------------------------
def test_working_directory() -> None:
    assert working_directory(ServiceConfig(), "/etc/service/web") == "/etc/service/web"
    config = ServiceConfig(working_directory="data")
    assert working_directory(config, "/etc/service/web") == "/etc/service/web/data"
    config = ServiceConfig(working_directory="/srv/app")
    assert working_directory(config, "/etc/service/web") == "/srv/app"


# --- child_setup ------------------------------------------------------------------------------
def test_child_setup_is_none_when_there_is_nothing_to_do() -> None:
    assert child_setup(ServiceConfig(), None) is None
    assert child_setup(ServiceConfig(environment=(("A", "1"),), env_file="e",
                                     working_directory="/x"), None) is None


def _core_limit(limits: tuple[int, int]) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, limits)


ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.mark.parametrize("config, identity, before, applied", [
    # zero values are settings too: each is applied over a different starting state
    (ServiceConfig(umask=0), None, lambda: os.umask(0o77), lambda: os.umask(0o22) == 0),
    pytest.param(ServiceConfig(nice=0), None,
                 lambda: os.setpriority(os.PRIO_PROCESS, 0, 5),
                 lambda: os.getpriority(os.PRIO_PROCESS, 0) == 0, marks=ROOT_ONLY),
    pytest.param(ServiceConfig(rlimits=(("core", 0, 0),)), None,
                 lambda: _core_limit((1024, 1024)),
                 lambda: resource.getrlimit(resource.RLIMIT_CORE) == (0, 0), marks=ROOT_ONLY),
    pytest.param(ServiceConfig(), APP, lambda: None,
                 lambda: os.getresuid() == (1234,) * 3 and os.getresgid() == (1234,) * 3
                 and os.getgroups() == [1234], marks=ROOT_ONLY),
], ids=["umask 0", "nice 0", "core 0", "identity"])
def test_child_setup_when_there_is_something_to_do(config, identity, before, applied) -> None:
    setup = child_setup(config, identity)
    assert setup is not None

    def body() -> bool:
        before()
        if applied():
            return False  # the starting state must differ, or the check proves nothing
        setup()
        return applied()

    assert run_in_child(body) == 0


def run_in_child(body) -> int:
    """Fork, run body() in the child, exit 0 if it returns True; the child's exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            code = 0 if body() else 3
        except BaseException:  # noqa: BLE001
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_child_setup_applies_rlimits_nice_and_umask() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nice = min(os.getpriority(os.PRIO_PROCESS, 0) + 3, 19)
    config = ServiceConfig(rlimits=(("nofile", 50, hard), ("core", 0, 0)), nice=nice,
                           umask=0o27)
    setup = child_setup(config, None)

    def body() -> bool:
        setup()
        mask = os.umask(0)
        return (resource.getrlimit(resource.RLIMIT_NOFILE) == (50, hard)
                and resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
                and os.getpriority(os.PRIO_PROCESS, 0) == nice and mask == 0o27)

    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert run_in_child(body) == 0
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before  # only the child changed


def can_raise_hard_limits() -> bool:
    def body() -> bool:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 1))  # needs CAP_SYS_RESOURCE
        return True

    return run_in_child(body) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_child_setup_drops_privileges_after_the_limits() -> None:
    nobody = Account(uid=65534, gid=65534, groups=(65534,), name="nobody", home="/")
    raise_limit = can_raise_hard_limits()
    # with CAP_SYS_RESOURCE the limit is raised, which would fail after the drop
    core = (1024, 1024) if raise_limit else (0, 0)
    setup = child_setup(ServiceConfig(rlimits=(("core", *core),), umask=0o77), nobody)

    def body() -> bool:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        setup()
        return (os.getresuid() == (65534, 65534, 65534)
                and os.getresgid() == (65534, 65534, 65534)
                and os.getgroups() == [65534]
                and resource.getrlimit(resource.RLIMIT_CORE) == core
                and os.umask(0) == 0o77)

    assert run_in_child(body) == 0


def test_instance_args_and_environment() -> None:
    env = {"PATH": "/bin", "PYINIT_INSTANCE": "stale"}
    assert instance_args(["./run"], "web", None, dict(env)) == (
        ["./run"], {"PATH": "/bin", "PYINIT_SERVICE": "web"})
    inst = {"PATH": "/bin", "PYINIT_SERVICE": "w@x", "PYINIT_INSTANCE": "x"}
    assert instance_args(["./run"], "w@x", "x", dict(env)) == (["./run", "x"], inst)
    assert instance_args(["./setup"], "w@x", "x", {})[0] == ["./setup", "x"]
    assert instance_args(["./check", "-v"], "w@x", "x", {})[0] == ["./check", "x", "-v"]
    assert instance_args(["./finish", "-1", "15"], "w@x", "x", {})[0] == \
        ["./finish", "-1", "15", "x"]
    assert instance_args(["curl", "-f", "url"], "w@x", "x", {})[0] == ["curl", "-f", "url"]
