"""Signals that reach pyinit while it starts (issue 17, finding 7).

As PID 1 of a pid namespace, a signal pyinit has not blocked yet (nor handled) is
dropped by the kernel, so a `docker stop` during start-up would be lost. pyinit
blocks them in the first statement of its entry point, before it imports anything,
and acts on the ones pending once its loop reads the signalfd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, can_unshare, kill_tree, wait_for

BIN = Path(sys.executable).parent

# Runs a launcher as __main__ with an import spy that notes, for every module
# imported, whether SIGTERM was blocked at that moment.
SPY = """
import _signal, json, runpy, sys
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        seen.append([name, _signal.SIGTERM in _signal.pthread_sigmask(_signal.SIG_BLOCK, [])])
sys.meta_path.insert(0, Spy())
script = sys.argv[1]
sys.argv = [script, "--version"]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass
sys.stderr.write(json.dumps(seen))
"""


@pytest.mark.parametrize("launcher", ["console", "isolated"])
def test_signals_are_blocked_before_pyinit_imports_anything(tmp_path: Path, launcher: str) -> None:
    """From the first pyinit module on, every import happens with SIGTERM blocked:
    only the interpreter's own start-up and the launcher come before the block."""
    if launcher == "console":
        script = BIN / "pyinit"  # the wheel's console script (the venv's editable install)
    else:
        subprocess.run(
            [sys.executable, "-I", "-m", "pyinit.launchers", str(tmp_path)],
            check=True,
            capture_output=True,
        )
        script = tmp_path / "pyinit"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    r = subprocess.run(
        [sys.executable, "-c", SPY, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "pyinit" in r.stdout, r
    seen = json.loads(r.stderr)
    first = next(i for i, (name, _) in enumerate(seen) if name.startswith("pyinit"))
    # the entry module itself is found before it runs; everything after it is blocked
    late = [
        name
        for name, blocked in seen[first:]
        if not blocked and name not in ("pyinit", "pyinit.entry")
    ]
    assert not late, f"imported before the signals were blocked: {late}"


WRAPPER = """
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
child = os.fork()
if child == 0:
    os.kill(os.getppid(), signal.SIGTERM)
    os._exit(0)
os.waitpid(child, 0)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_a_sigterm_that_arrives_during_start_up_stops_the_boot(pyinit_run, tmp_path: Path) -> None:
    """A SIGTERM already pending when pyinit's loop first reads its signals (sent by
    another process while pyinit started) stops the boot before the main command
    starts: exit 128+15 at once, the main command never ran."""
    marker = tmp_path / "main-ran"
    run = pyinit_run(
        "--",
        "sh",
        "-c",
        f"touch {marker}; exec sleep 1000",
        wrapper=[sys.executable, "-c", WRAPPER],
    )
    assert run.wait(30) == 128 + signal.SIGTERM, run.err
    assert not marker.exists(), "the main command started after the SIGTERM"
    assert "Traceback" not in run.err


def started_python(proc: subprocess.Popen[bytes]) -> int | None:
    """unshare's child (PID 1) once it runs the interpreter (before, it is unshare
    itself, which blocks SIGTERM for a moment around its fork)."""
    try:
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if kids and os.readlink(f"/proc/{kids[0]}/exe") == os.path.realpath(sys.executable):
            return int(kids[0])
    except OSError:
        pass
    return None


def sigterm_blocked(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigBlk:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.pid1
@pytest.mark.parametrize("name", ["pyinit", "tini"])
def test_sigterm_from_outside_at_start_ends_pyinit_cleanly(tmp_path: Path, name: str) -> None:
    """Ten times: start as PID 1, send SIGTERM from the parent namespace the moment
    the signals are blocked (pyinit is still importing): a clean exit 143, not the
    runtime's SIGKILL after a timeout."""
    reason = can_unshare()
    if reason:
        pytest.skip(reason)
    launcher = tmp_path / name
    launcher.symlink_to(BIN / "pyinit")
    flags = (
        [
            "--skip-startup-files",
            "--skip-runit",
            "--run-dir",
            str(tmp_path / "run"),
            "--env-dir",
            str(tmp_path / "env"),
        ]
        if name == "pyinit"
        else []
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TINI_"))}
    env["PYTHONPATH"] = str(ROOT)  # a leaking variable: through the -I re-exec as well
    for _ in range(10):
        proc = subprocess.Popen(
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                str(launcher),
                *flags,
                "--",
                "sleep",
                "1000",
            ],
            env=env,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            pid1 = int(wait_for(lambda p=proc: started_python(p), 10, "PID 1 to run python"))
            wait_for(lambda p=pid1: sigterm_blocked(p), 10, "pyinit to block SIGTERM")
            os.kill(pid1, signal.SIGTERM)
            assert proc.wait(30) == 128 + signal.SIGTERM
            assert proc.stderr is not None
            assert b"Traceback" not in proc.stderr.read()
        finally:
            kill_tree(proc.pid)
            proc.wait(10)
            if proc.stderr is not None:
                proc.stderr.close()
