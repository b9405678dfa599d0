"""Drop-in fidelity found by review (after issues 17 and 18): where pyinit's tools still
behaved differently from Debian's sv, tini, dumb-init or phusion's tools, side by side."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_services
from helpers import ROOT, wait_for
from test_dropin import HUP_PROOF, SV, _second_passed, needs_runit, normal, runsvdir
from test_services import SVCTL_CODE, service

box = test_services.box  # the fixture: pyinit as PID 1 and the ways to talk to it


def svctl_in(b, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """svctl run from the directory cwd, as a script in a service dir runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYINIT_RUN_DIR", None)
    argv = [sys.executable, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=30)


# --- a SERVICE word starting with '.' is a path from the caller's cwd ------------------------
DOT_PATHS = [
    ["status", "."],
    ["-w", "5", "down", "."],
    ["status", ".", "../a", "./"],
    ["-w", "5", "up", "../a/", "."],
    ["-w", "5", "once", "."],
    ["status", "./nosuch", "."],
]


@needs_runit
@pytest.mark.pid1
def test_dot_paths_are_from_the_callers_cwd_as_sv(box, tmp_path: Path, tag: str) -> None:
    """`cd /etc/service/a && sv status .` (and `sv down .` in a finish script): sv takes a
    word starting with '.' as a path from its cwd. On main, svctl resolved it from PID 1's
    cwd (`/`) and failed: `fail: .: unable to change to service directory`."""
    mine = service(tmp_path, tag, "a", HUP_PROOF)
    b = box()
    b.ready("a")
    with runsvdir(tmp_path, tag, ["a"]) as root:
        env = {**os.environ, "SVDIR": "/nonexistent"}  # '.' words never look at SVDIR
        wait_for(lambda: (root / "a" / "ready").exists(), 10, "runsv's a to be up")
        for argv in DOT_PATHS:
            wait_for(
                lambda: _second_passed(root / "a") and _second_passed(mine),
                3,
                "the status records' second to pass",
            )
            theirs = subprocess.run(
                [SV or "sv", *argv],
                capture_output=True,
                text=True,
                env=env,
                cwd=root / "a",
                timeout=30,
            )
            ours = svctl_in(b, mine, *argv)
            assert (ours.returncode, normal(ours.stdout)) == (
                theirs.returncode,
                normal(theirs.stdout),
            ), (argv, ours, theirs)
    b.stop()
