"""The image's Python settings belong to the application (issue 23): pyinit's own
interpreter ignores them, and the main command, services, setuser and pyinit-env
get them exactly as set. Run as PID 1 through both kinds of launcher: the `-I`
launchers (`python -m pyinit.launchers`: the .deb and the recipes) and pip-style
console scripts (`#!PYTHON` without flags: pyinit.entry re-executes with -I).

The launchers belong to a venv made here with --system-site-packages, so that the
user site is live, and a .pth file that makes this checkout importable (as an
editable install does): nothing relies on PYTHONPATH."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from helpers import ROOT, wait_for, write_script

pytestmark = pytest.mark.pid1

SHADOWED = ("selectors", "socket", "json", "yaml")
# pip's console-script template (pip/_vendor/distlib/scripts.py), as pip writes it
PIP_TEMPLATE = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from pyinit.entry import {function}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({function}())
"""
COMMANDS = {"pyinit": "pyinit", "svctl": "svctl", "setuser": "setuser", "pyinit-env": "pyinit_env"}


def tattler(marks: Path, name: str) -> str:
    """A module that records that it ran (in marks/NAME), then raises."""
    return (
        f"import os\nos.close(os.open({str(marks / name)!r}, "
        "os.O_CREAT | os.O_WRONLY, 0o644))\n"
        f"raise RuntimeError('the application\\'s {name} ran')\n"
    )


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict[str, Path]:
    """The venv, both launcher dirs, and the adversarial files."""
    d = tmp_path_factory.mktemp("isolation")
    venv = d / "venv"
    subprocess.run(
        [
            sys._base_executable,
            "-m",
            "venv",
            "--without-pip",  # type: ignore[attr-defined]
            "--system-site-packages",
            str(venv),
        ],
        check=True,
    )
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # this checkout, and the test venv's psutil and yaml, as installed packages are
    Path(purelib, "pyinit-test.pth").write_text(f"{ROOT}\n{sysconfig.get_paths()['purelib']}\n")
    isolated, console = d / "isolated", d / "console"
    isolated.mkdir()
    console.mkdir()
    subprocess.run(
        [str(python), "-I", "-m", "pyinit.launchers", str(isolated)],
        check=True,
        capture_output=True,
    )
    for name, function in COMMANDS.items():
        write_script(console / name, PIP_TEMPLATE.format(python=python, function=function))
    marks = d / "marks"
    marks.mkdir()
    app, custom, home, startup = d / "app", d / "custom", d / "home", d / "startup.py"
    app.mkdir()
    custom.mkdir()
    for name in SHADOWED:
        (app / f"{name}.py").write_text(tattler(marks, name))
    (custom / "sitecustomize.py").write_text(tattler(marks, "sitecustomize"))
    startup.write_text(tattler(marks, "startup"))
    user_site = Path(
        subprocess.run(
            [str(python), "-c", "import site; print(site.getusersitepackages())"],
            env={"HOME": str(home), "PATH": os.defpath},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    user_site.mkdir(parents=True)
    for name in SHADOWED:
        (user_site / f"{name}.py").write_text(tattler(marks, name))
    (user_site / "usercustomize.py").write_text(tattler(marks, "usercustomize"))
    return {
        "isolated": isolated,
        "console": console,
        "marks": marks,
        "app": app,
        "custom": custom,
        "home": home,
        "startup": startup,
    }


# variable(s) set adversarially -> what they are set to (from the lab)
CASES = {
    "PYTHONPATH": lambda lab: {"PYTHONPATH": str(lab["app"])},
    "sitecustomize": lambda lab: {"PYTHONPATH": str(lab["custom"])},
    "PYTHONWARNINGS": lambda lab: {"PYTHONWARNINGS": "error"},
    "PYTHONHOME": lambda lab: {"PYTHONHOME": "/nonexistent/python-home"},
    "PYTHONSTARTUP": lambda lab: {"PYTHONSTARTUP": str(lab["startup"]), "PYTHONINSPECT": "1"},
    "PYTHONOPTIMIZE": lambda lab: {"PYTHONOPTIMIZE": "2"},
    "PYTHONDEVMODE": lambda lab: {"PYTHONDEVMODE": "1"},
    "user-site": lambda lab: {"HOME": str(lab["home"])},
}
# What a console script cannot keep out, since it acts before any pyinit code
# runs (docs/pyinit.md#the-images-python-settings): the interpreter fails to start
# with a bad PYTHONHOME, and sitecustomize/usercustomize run once before the re-exec.
BEFORE_PYINIT = {"sitecustomize", "usercustomize"}


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.mark.parametrize("launcher", ["isolated", "console"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_images_python_settings_reach_the_app_not_pyinit(
    pyinit_run, tmp_path: Path, lab: dict[str, Path], launcher: str, case: str
) -> None:
    """pyinit boots, supervises, answers svctl and shuts down cleanly; the main
    command, a service, setuser and pyinit-env see the variables exactly as set;
    the application's modules never run in pyinit's interpreter."""
    if launcher == "console" and case == "PYTHONHOME":
        pytest.skip(
            "a console script's interpreter cannot start with a bad PYTHONHOME "
            "(documented: use the -I launchers)"
        )
    for mark in lab["marks"].iterdir():
        mark.unlink()
    bin_dir = lab[launcher]
    adversarial = CASES[case](lab)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(adversarial)
    write_script(
        tmp_path / "service" / "svc" / "run", f"env > {tmp_path}/svc-env\nexec sleep 1000\n"
    )
    run = pyinit_run(
        "--",
        "sh",
        "-c",
        f"env > {tmp_path}/main-env; exec sleep 1000",
        command=[str(bin_dir / "pyinit")],
        env=env,
    )
    wait_for(
        lambda: (tmp_path / "svc-env").exists() and (tmp_path / "main-env").exists(),
        30,
        "the service and the main command to start",
    )
    wait_for(lambda: "\n" in (tmp_path / "svc-env").read_text(), 10, "the service's env")
    wait_for(lambda: "\n" in (tmp_path / "main-env").read_text(), 10, "the main command's env")

    def tool(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / args[0]), *args[1:]],
            env=env,
            text=True,
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    svctl = ["svctl", "--run-dir", str(tmp_path / "run")]
    check = tool(*svctl, "-w", "20", "check", "svc")
    assert check.returncode == 0 and "ok: run: svc" in check.stdout, check
    status = tool(*svctl, "status", "svc", "nosuch")  # one failure: exit code 1
    assert status.returncode == 1 and "run: svc" in status.stdout, status
    as_nobody = tool("setuser", "nobody", "env")
    assert as_nobody.returncode == 0, as_nobody
    with_env = tool("pyinit-env", "--env-dir", str(tmp_path / "container_environment"), "env")
    assert with_env.returncode == 0, with_env

    seen = {"main": env_file(tmp_path / "main-env"), "service": env_file(tmp_path / "svc-env")}
    for text, who in ((as_nobody.stdout, "setuser"), (with_env.stdout, "pyinit-env")):
        seen[who] = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    for who, got in seen.items():
        for key, value in adversarial.items():
            if not (key == "HOME" and who == "setuser"):  # setuser sets the user's HOME
                assert got.get(key) == value, (who, key, got.get(key))
    cmdline = Path(f"/proc/{run.init_pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1] == b"-I", f"PID 1's interpreter is not isolated: {cmdline}"

    run.kill(signal.SIGTERM)
    assert run.wait(30) == 128 + signal.SIGTERM, run.err
    assert "Traceback" not in run.err + check.stderr + status.stderr, run.err
    ran = {mark.name for mark in lab["marks"].iterdir()}
    allowed = BEFORE_PYINIT if launcher == "console" else set()
    assert ran <= allowed, f"the application's code ran in pyinit or its tools: {ran}"


@pytest.mark.parametrize("launcher", ["isolated", "console"])
@pytest.mark.parametrize("extra", [{}, {"PYTHONPATH": "/nonexistent"}, {"LC_CTYPE": "C.UTF-8"}])
def test_the_c_locale_reaches_the_main_command_unchanged(
    tmp_path: Path, lab: dict[str, Path], launcher: str, extra: dict[str, str]
) -> None:
    """In the C locale Python puts LC_CTYPE=C.UTF-8 in its own environment (PEP 538):
    pyinit takes it out again, so the main command gets the environment as started
    (with or without the re-exec); a LC_CTYPE that was set stays."""
    env = {"PATH": os.environ.get("PATH", os.defpath), **extra}
    r = subprocess.run(
        [
            str(lab[launcher] / "pyinit"),
            "--skip-startup-files",
            "--skip-runit",
            "--run-dir",
            str(tmp_path / "run"),
            "--env-dir",
            str(tmp_path / "env"),
            "--",
            "env",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r
    got = env_file_text(r.stdout)
    assert {k: v for k, v in got.items() if k.startswith("LC_")} == {
        k: v for k, v in extra.items() if k.startswith("LC_")
    }


def env_file_text(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
