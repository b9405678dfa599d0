"""spawn's errors before any child exists: not found, not executable, fork failure."""

from __future__ import annotations

import errno
import os

import pytest

from pyinit import spawn
from pyinit.signals import Inherited


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
