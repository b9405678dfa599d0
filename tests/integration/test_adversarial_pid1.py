# ruff: noqa: F811 - `box` and `lab` are fixtures imported from other test files
"""Adversarial review of issues 17 and 23 (branch review-sec): each test is an attack
that worked on main, run against pyinit as a real PID 1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers import wait_for, write_script
from test_isolation import lab  # noqa: F401 - a fixture
from test_service_config import box, svc  # noqa: F401 - box is a fixture
from test_services import LONG

pytestmark = pytest.mark.pid1

MAX_LOG_LINE = 1000

# a YAML 1.1 sexagesimal float: 3 + 45000 bytes whose integer part is too big for a float
SEXAGESIMAL = "1" + ":59" * 15000 + ".5"


def test_yaml_number_too_big_for_a_float_is_a_bad_definition(box, tmp_path: Path, tag: str) -> None:
    """`stop_timeout: 1:59:59:...:59.5` made pyyaml raise OverflowError, which
    load_yaml did not catch: a traceback instead of a one-line definition error."""
    svc(tmp_path, tag, "bad", "touch started\n" + LONG, f"stop_timeout: {SEXAGESIMAL}\n")
    svc(tmp_path, tag, "good", LONG)
    b = box()
    b.wait_running("good", timeout=30)
    path = tmp_path / "service" / "bad" / "service.yaml"
    rec = b.rec("bad")
    want = f"{path}: not valid YAML: a number or date out of range"
    assert rec["error"] == want, rec["error"][:300]
    assert rec["pid"] is None and not (tmp_path / "service" / "bad" / "started").exists()
    b.stop()
    assert "Traceback" not in b.run.err
    assert all(len(line) < MAX_LOG_LINE for line in b.run.err.splitlines())


def test_pythonexecutable_does_not_replace_pid1(pyinit_run, tmp_path: Path) -> None:
    """PYTHONEXECUTABLE sets sys.executable on Linux too (even under -I), and the
    re-exec with -I (`python -m pyinit` with PYTHONPATH set, the wheel's console
    scripts) ran `sys.executable -I ...`: PID 1 became whatever program the variable
    named. Now pyinit runs, and the main command gets the variable unchanged and its
    exit code is pyinit's."""
    marks = tmp_path / "marks"
    marks.mkdir()
    hijack = write_script(tmp_path / "hijack", f"#!/bin/sh\ntouch {marks}/hijacked\nexit 99\n")
    run = pyinit_run(
        "--",
        "sh",
        "-c",
        f'echo "$PYTHONEXECUTABLE" > {tmp_path}/seen; exit 3',
        env={"PYTHONEXECUTABLE": str(hijack)},
    )
    assert run.wait(30) == 3, run.err
    assert not (marks / "hijacked").exists()
    assert (tmp_path / "seen").read_text() == f"{hijack}\n"
    assert "Traceback" not in run.err and "warning" not in run.err, run.err


@pytest.mark.parametrize(
    "content",
    [b"A=x\0y\n", b"A\0B=1\n", b"A=" + b"\xff" * 10 + b"\n", b"A=" + b"x" * (1 << 19) + b"\n"],
    ids=["nul-in-value", "nul-in-name", "invalid-utf8", "half-mib-line"],
)
def test_hostile_env_file_is_one_line_and_pid1_goes_on(
    box, tmp_path: Path, tag: str, content: bytes
) -> None:
    """An env_file its service dir's owner wrote: a NUL, invalid UTF-8, a long line.
    A NUL in a value was `cannot run ./run: embedded null byte`, without the
    service's name or the file's."""
    d = svc(tmp_path, tag, "bad", f"env > {tmp_path}/bad-env\n" + LONG, "env_file: vars\n")
    (d / "vars").write_bytes(content)
    svc(tmp_path, tag, "good", LONG)
    b = box()
    b.wait_running("good", timeout=30)
    if b"\0" in content:  # execve cannot take it: the env_file's line is named
        where = "line 1: a NUL byte in the value" if b"=x" in content else "line 1: expected"
        wait_for(
            lambda: f"[bad] cannot start run: {d / 'vars'}: {where}" in b.run.err,
            10,
            "the env_file error",
        )
    b.stop()
    assert "Traceback" not in b.run.err and "embedded null" not in b.run.err, b.run.err[-3000:]
    assert all(len(line) < MAX_LOG_LINE for line in b.run.err.splitlines())


def test_pythonexecutable_does_not_hide_a_venv_from_the_i_launchers(
    pyinit_run, tmp_path: Path, lab: dict[str, Path]
) -> None:
    """The recipes' launchers (`#!/opt/pyinit/bin/python -I`, a venv): with
    PYTHONEXECUTABLE set the interpreter looked for pyvenv.cfg beside that program,
    so `import pyinit.entry` failed and PID 1 died with a traceback."""
    hijack = write_script(tmp_path / "hijack", "#!/bin/sh\nexit 99\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONEXECUTABLE"] = str(hijack)
    run = pyinit_run(
        "--",
        "sh",
        "-c",
        f'echo "$PYTHONEXECUTABLE" > {tmp_path}/seen; exit 3',
        command=[str(lab["isolated"] / "pyinit")],
        env=env,
    )
    assert run.wait(30) == 3, run.err
    assert (tmp_path / "seen").read_text() == f"{hijack}\n"
    assert "Traceback" not in run.err, run.err


def test_reexec_does_not_run_another_python3_found_on_path(pyinit_run, tmp_path: Path) -> None:
    """Started as `python3 -m pyinit` (argv[0] without a slash) by a starter that
    did not look it up on this PATH, with another `python3` first on PATH: sys.executable
    names that one (CPython's guess from argv[0]), and the re-exec with -I ran it as
    PID 1. Now the running interpreter's own file is re-executed."""
    marks = tmp_path / "marks"
    marks.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_script(bin_dir / "python3", f"#!/bin/sh\ntouch {marks}/hijacked\nexit 99\n")
    exec_as_python3 = "import os, sys; os.execv(sys.argv[1], ['python3', *sys.argv[2:]])"
    run = pyinit_run(
        "--",
        "sh",
        "-c",
        "exit 3",
        wrapper=[sys.executable, "-c", exec_as_python3],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert run.wait(30) == 3, run.err
    assert not (marks / "hijacked").exists()
    assert "Traceback" not in run.err, run.err
