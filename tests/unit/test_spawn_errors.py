"""spawn's errors before any child exists: not found, not executable, fork failure."""

from __future__ import annotations

import errno
import os

import pytest

from pyinit.linux.signals import Inherited
from pyinit.runtime import spawn


def test_fork_failure_is_a_spawn_error_not_an_exception(monkeypatch) -> None:
    def no_fork() -> int:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    with pytest.raises(spawn.SpawnError) as err:
        spawn.spawn(spawn.Spec(["true"]), Inherited(frozenset(), frozenset()))
    assert err.value.exit_code == spawn.NOT_EXECUTABLE
    assert str(err.value) == "true: cannot fork: Resource temporarily unavailable"


@pytest.mark.parametrize("program, code, text", [
    ("no-such-program-z", 127, "no-such-program-z: command not found"),
    ("/no/such/file", 127, "/no/such/file: not found"),
    ("/etc", 126, "/etc: is a directory"),
    ("/etc/passwd", 126, "/etc/passwd: permission denied (not executable)"),
])
def test_resolve_errors(program, code, text) -> None:
    with pytest.raises(spawn.SpawnError) as err:
        spawn.resolve(program, {"PATH": "/usr/bin:/bin"})
    assert (err.value.exit_code, str(err.value)) == (code, text)


class Ran(Exception):
    """os.execve succeeded (the fake raises this instead of replacing the process)."""


def fake_execve(monkeypatch, errors: dict[str, int]) -> list[str]:
    tried: list[str] = []

    def execve(path, argv, env):
        tried.append(path)
        if path in errors:
            raise OSError(errors[path], os.strerror(errors[path]), path)
        raise Ran(path)

    monkeypatch.setattr(os, "execve", execve)
    return tried


def test_exec_path_skips_a_denied_entry_and_goes_on_as_execvp(monkeypatch) -> None:
    tried = fake_execve(monkeypatch, {"/root-only/x": errno.EACCES, "/none/x": errno.ENOENT,
                                      "/file/x": errno.ENOTDIR})
    with pytest.raises(Ran, match="/pub/x"):
        spawn.exec_path("x", ["x"], {"PATH": "/root-only:/none:/file:/pub:/later"})
    assert tried == ["/root-only/x", "/none/x", "/file/x", "/pub/x"]


@pytest.mark.parametrize("errors, raised", [
    ({"/a/x": errno.EACCES, "/b/x": errno.ENOENT}, errno.EACCES),  # execvp: EACCES wins
    ({"/a/x": errno.ENOENT, "/b/x": errno.ENOENT}, errno.ENOENT),
    ({"/a/x": errno.ENOEXEC, "/b/x": errno.ENOENT}, errno.ENOEXEC),  # stops the search
])
def test_exec_path_errors(monkeypatch, errors: dict[str, int], raised: int) -> None:
    tried = fake_execve(monkeypatch, errors)
    with pytest.raises(OSError) as err:
        spawn.exec_path("x", ["x"], {"PATH": "/a:/b"})
    assert err.value.errno == raised
    assert tried == (["/a/x"] if raised == errno.ENOEXEC else ["/a/x", "/b/x"])


def test_exec_path_runs_a_name_with_a_slash_as_it_is(monkeypatch) -> None:
    tried = fake_execve(monkeypatch, {})
    with pytest.raises(Ran):
        spawn.exec_path("./run", ["./run"], {"PATH": "/a"})
    assert tried == ["./run"]
