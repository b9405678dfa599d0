"""pyinit-env: run a command with the container environment laid over the current one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
PRINT_ENV = [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]


def pyinit_env(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", os.defpath), "PYTHONPATH": ROOT, **env}
    return subprocess.run([sys.executable, "-m", "pyinit.cli.pyinit_env", *args], env=base,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def env_dir(tmp_path) -> Path:
    d = tmp_path / "container_environment"
    d.mkdir()
    (d / "FROM_DIR").write_text("dir value\n")
    (d / "SHARED").write_text("from dir")
    (d / "MULTI").write_text("line1\nline2\n")
    return d


def test_variables_overlay_the_current_environment(env_dir) -> None:
    result = pyinit_env(["--env-dir", str(env_dir), *PRINT_ENV],
                        {"SHARED": "from env", "ONLY_ENV": "kept"})
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert env["FROM_DIR"] == "dir value"
    assert env["SHARED"] == "from dir"  # the env dir wins
    assert env["MULTI"] == "line1\nline2"
    assert env["ONLY_ENV"] == "kept"
    assert result.stderr == ""


def test_env_dir_from_the_environment_and_double_dash(env_dir) -> None:
    result = pyinit_env(["--", *PRINT_ENV], {"PYINIT_ENV_DIR": str(env_dir)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["FROM_DIR"] == "dir value"


def test_missing_env_dir_runs_the_command_unchanged(tmp_path) -> None:
    result = pyinit_env(["--env-dir", str(tmp_path / "none"), *PRINT_ENV], {"A": "1"})
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert env["A"] == "1" and "FROM_DIR" not in env


def test_exit_code_of_the_command_is_passed_on(env_dir) -> None:
    result = pyinit_env(["--env-dir", str(env_dir), sys.executable, "-c", "raise SystemExit(7)"],
                        {})
    assert result.returncode == 7


def test_bad_entries_are_warnings(env_dir) -> None:
    (env_dir / "BAD-NAME").write_text("x")
    result = pyinit_env(["--env-dir", str(env_dir), *PRINT_ENV], {})
    assert result.returncode == 0
    assert "FROM_DIR" in json.loads(result.stdout)
    assert result.stderr == (f"pyinit-env: warning: {env_dir}: skipping 'BAD-NAME': "
                             "not a valid variable name\n")


def test_missing_command_is_127(env_dir) -> None:
    result = pyinit_env(["--env-dir", str(env_dir), "no-such-command-xyz"], {})
    assert result.returncode == 127
    assert result.stderr == "pyinit-env: no-such-command-xyz: command not found\n"
    result = pyinit_env(["--env-dir", str(env_dir), "/nonexistent/cmd"], {})
    assert result.returncode == 127


def test_not_executable_is_126(env_dir, tmp_path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    result = pyinit_env(["--env-dir", str(env_dir), str(script)], {})
    assert result.returncode == 126
    assert result.stderr.startswith(f"pyinit-env: {script}: ")


@pytest.mark.parametrize("args", [[], ["--"], ["--env-dir", "/tmp"]])
def test_no_command_is_a_usage_error(args: list[str]) -> None:
    result = pyinit_env(args, {})
    assert result.returncode == 2
    assert result.stderr == "usage: pyinit-env [--env-dir DIR] COMMAND [ARGS...]\n"
    assert result.stdout == ""


def test_env_dir_without_its_argument_is_a_usage_error() -> None:
    result = pyinit_env(["--env-dir"], {})
    assert result.returncode == 2


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help(flag: str) -> None:
    result = pyinit_env([flag], {})
    assert result.returncode == 0
    usage, more = result.stdout.split("\n", 1)
    assert usage == "usage: pyinit-env [--env-dir DIR] COMMAND [ARGS...]"
    assert "/usr/share/doc/pyinit-pid1/docs/pyinit.md" in more


@pytest.mark.skipif(os.geteuid() != 0, reason="drops to uid 65534")
@pytest.mark.parametrize("parent_mode", [0o755, 0o700])
def test_an_env_dir_another_user_cannot_read_is_a_one_line_error(
    env_dir: Path, parent_mode: int
) -> None:
    """pyinit keeps the dir root's (0700: variables may be secrets); with-contenv run
    by another user stops with one line, not with a warning and half an environment
    (the dir itself unreadable, or a dir on its path)."""
    top = Path(tempfile.mkdtemp(prefix="s6fix-env-"))
    try:
        top.chmod(0o755)
        (top / "s6").mkdir(parent_mode)
        (top / "s6").chmod(parent_mode)
        env_dir = env_dir.rename(top / "s6" / "container_environment")
        env_dir.chmod(0o700)
        check_unreadable(env_dir)
    finally:
        shutil.rmtree(top)


def check_unreadable(env_dir: Path) -> None:
    code = (
        "import os, sys\n"
        "from pyinit.cli import pyinit_env, stdio\n"
        "from pyinit.core import bounds, envdir\n"
        "from pyinit.linux import signals\n"
        "from pyinit.runtime import environment, spawn\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "pyinit_env.main(sys.argv[1:])\n"
    )
    r = subprocess.run([sys.executable, "-c", code, "--env-dir", str(env_dir), "/bin/true"],
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": ROOT})  # fmt: skip
    assert r.returncode == 111, r.stderr
    assert r.stderr.splitlines() == [
        f"pyinit-env: error: cannot read '{env_dir}': permission denied (uid 65534; it is "
        "root's alone: read it before dropping privileges)"
    ]
