"""pyinit.entry (what it blocks, when it re-executes) and pyinit.launchers."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from pyinit import entry, launchers
from pyinit.core import signames


def test_the_entry_point_blocks_exactly_what_the_loop_reads() -> None:
    assert entry.handled() == signames.handled()


USER_SITE = "/root/.local/lib/python3.11/site-packages"


@pytest.mark.parametrize(
    ("environ", "site", "path", "leaks"),
    [
        ({}, None, [], False),
        (
            {"PATH": "/bin", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"},
            None,
            [],
            False,
        ),
        ({"PYTHONPATH": ""}, None, [], False),  # empty: Python ignores it too
        ({"PYTHONPATH": "/app"}, None, [], True),
        ({"PYTHONHOME": "/x"}, None, [], True),
        ({"PYTHONWARNINGS": "error"}, None, [], True),
        ({"PYTHONSTARTUP": "/s.py"}, None, [], True),
        ({"PYTHONOPTIMIZE": "1"}, None, [], True),
        ({"PYTHONDEVMODE": "1"}, None, [], True),
        ({"PYTHONSAFEPATH": "1"}, None, [], True),  # any other PYTHON* variable
        ({}, types.SimpleNamespace(ENABLE_USER_SITE=True, USER_SITE=USER_SITE), [USER_SITE], True),
        ({}, types.SimpleNamespace(ENABLE_USER_SITE=True, USER_SITE=USER_SITE), [], False),
        (
            {},
            types.SimpleNamespace(ENABLE_USER_SITE=False, USER_SITE=USER_SITE),
            [USER_SITE],
            False,
        ),
    ],
)
def test_when_the_images_python_settings_leak_in(environ, site, path, leaks) -> None:
    assert entry.leaks(environ, site, path) is leaks


def test_launchers_are_written_replace_links_and_stay_put(tmp_path: Path) -> None:
    (tmp_path / "pyinit").symlink_to("/nonexistent/pyinit")  # a link left by an old recipe
    done = launchers.write(str(tmp_path), sys.executable)
    assert done == [f"{tmp_path}/{name}: written" for name in launchers.COMMANDS]
    for name, function in launchers.COMMANDS.items():
        path = tmp_path / name
        assert not path.is_symlink() and os.access(path, os.X_OK)
        assert path.read_text() == launchers.text(sys.executable, function)
        assert path.read_text().startswith(f"#!{sys.executable} -I\n")
        assert path.read_text().endswith(f"\npyinit.entry.{function}()\n")
    again = launchers.write(str(tmp_path), sys.executable)
    assert again == [f"{tmp_path}/{name}: unchanged" for name in launchers.COMMANDS]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--python", "python3"], "is not an absolute path"),
        (["--python", "/opt/my python/bin/python"], "blanks or is too long"),
        (["--python", "/" + "p" * 130], "blanks or is too long"),
        (["--python", "/nonexistent/python3"], "is not executable"),
    ],
)
def test_launchers_refuse_an_interpreter_a_shebang_cannot_hold(
    tmp_path: Path, capsys, args, message
) -> None:
    assert launchers.main([*args, str(tmp_path)]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_launchers_for_another_system_with_no_check(tmp_path: Path) -> None:
    assert launchers.main(["--python", "/usr/bin/python3", "--no-check", str(tmp_path)]) == 0
    assert (tmp_path / "svctl").read_text().startswith("#!/usr/bin/python3 -I\n")
    assert launchers.main([str(tmp_path / "missing")]) == 1
    assert launchers.main([]) == 2
