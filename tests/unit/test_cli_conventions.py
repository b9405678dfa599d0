"""Command-line conventions (issue 21 part 5): exact long options only (no argparse
abbreviations, so a future flag cannot change what an existing ENTRYPOINT means),
--version from every command, svctl's nearest-command hint, --help naming the docs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyinit import __version__, config
from pyinit.cli import svctl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# argv[0] name -> how the command runs (pyinit.entry picks the tool by that name)
COMMANDS = {
    "pyinit": "from pyinit.entry import pyinit; pyinit()",
    "svctl": "from pyinit.entry import svctl; svctl()",
    "setuser": "from pyinit.entry import setuser; setuser()",
    "pyinit-env": "from pyinit.entry import pyinit_env; pyinit_env()",
    "my_init": "from pyinit.entry import pyinit; pyinit()",
    "tini": "from pyinit.entry import pyinit; pyinit()",
    "dumb-init": "from pyinit.entry import pyinit; pyinit()",
}


def run(name: str, *args: str) -> subprocess.CompletedProcess:
    code = f"import sys; sys.argv[0] = {name!r}; " + COMMANDS[name]
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
        timeout=30,
        cwd="/",
    )


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_answers_version(name: str):
    r = run(name, "--version")
    assert r.returncode == 0, r.stderr
    out = (r.stdout + r.stderr).strip()  # dumb-init prints it on stderr, as dumb-init does
    if name == "tini":
        assert out.startswith("tini version "), out  # as tini prints it
    elif name == "dumb-init":
        assert out.startswith("dumb-init v"), out
    else:
        assert out.split()[0] == name.replace("my_init", "pyinit") and __version__ in out, out


def test_pyinit_check_answers_version():
    r = run("pyinit", "check", "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"pyinit {__version__}", r.stderr


@pytest.mark.parametrize("abbreviation", ["--kill-t", "--kill-timeo", "--quie", "--skip-run"])
def test_pyinit_refuses_abbreviated_options(abbreviation: str):
    with pytest.raises(SystemExit) as stop:
        config.build_parser().parse_args([abbreviation, "3", "true"])
    assert stop.value.code == 2
    r = run("pyinit", abbreviation, "3", "true")
    assert r.returncode == 2 and f"unrecognized arguments: {abbreviation}" in r.stderr


def test_my_init_refuses_abbreviated_options_too():
    r = run("my_init", "--skip-startup", "true")
    assert r.returncode == 2 and "unrecognized arguments: --skip-startup" in r.stderr
    r = run("my_init", "--enable-insecure", "true")
    assert r.returncode == 2, r.stderr


def test_every_argparse_parser_in_the_package_refuses_abbreviations():
    """A new ArgumentParser without allow_abbrev=False fails here, by file."""
    import ast
    from pathlib import Path

    missing = []
    for path in sorted(Path(ROOT, "pyinit").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", "") == "ArgumentParser"
                and not any(k.arg == "allow_abbrev" for k in node.keywords)
            ):
                missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not missing, missing


@pytest.mark.parametrize(
    ("typo", "nearest"),
    [
        ("logz", "logs"),
        ("rescna", "rescan"),
        ("scael", "scale"),
        ("shutdown-contianer", "shutdown-container"),
        ("tre", "tree"),
        ("zzzz", None),
    ],
)
def test_svctl_suggests_the_nearest_command(typo: str, nearest: str | None):
    try:
        svctl.parse_args([typo], {"PYINIT_RUN_DIR": "/nonexistent"})
    except svctl.Usage as exc:
        message = str(exc)
    else:
        raise AssertionError(f"{typo} was taken")
    assert message.startswith(f"unknown command {typo!r}"), message
    if nearest is None:
        assert "did you mean" not in message
    else:
        assert message.endswith(f"; did you mean {nearest!r}?"), message


def test_svctl_prints_the_hint_in_one_line():
    r = run("svctl", "rescna")
    assert r.returncode == 100
    assert r.stderr.splitlines()[0] == (
        "svctl: error: unknown command 'rescna'; did you mean 'rescan'?"
    ), r.stderr


@pytest.mark.parametrize(
    ("name", "args", "stream"),
    [
        ("pyinit", ["--help"], "stdout"),
        ("pyinit", ["check", "--help"], "stdout"),
        ("svctl", ["--help"], "stderr"),
        ("setuser", ["--help"], "stdout"),
        ("pyinit-env", ["--help"], "stdout"),
    ],
)
def test_help_names_the_installed_docs(name: str, args: list[str], stream: str):
    r = run(name, *args)
    text = getattr(r, stream)
    assert "/usr/share/doc/pyinit-pid1/" in text or f"man {name}" in text, text
    if name != "pyinit-env":
        assert f"man {name.split()[0]}" in text, text
