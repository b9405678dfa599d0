"""`svctl status`'s import budget: the exact modules it loads, against a fake control
socket. A new import on this path (json, socket, typing, dataclasses, argparse, psutil
each cost it milliseconds of its ~10 ms above the interpreter's start) has to be a
decision made here, not an accident.

Stdlib and third-party modules are compared by top-level name, beyond what the
interpreter had loaded before svctl started (site differs between interpreters:
Debian's runs sitecustomize, a venv its .pth files).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pyinit.core.views import ProcessView, ServiceView, service_record

REPO = str(Path(__file__).resolve().parents[2])

# What `svctl status` may load, beyond the bare interpreter.
PYINIT_STATUS = {
    "pyinit",
    "pyinit.entry",
    "pyinit.cli",
    "pyinit.cli.stdio",
    "pyinit.cli.svctl",
    "pyinit.control",
    "pyinit.control.protocol",
    "pyinit.core",
    "pyinit.core.lines",
    "pyinit.core.protocol",
    "pyinit.core.svstatus",
}
# Without --run-dir, svctl looks for pyinit's socket (runtime/rundir.py).
PYINIT_FIND = {"pyinit.runtime", "pyinit.runtime.rundir", "pyinit.linux", "pyinit.linux.safefs"}
STDLIB_STATUS = {"__future__", "_json", "_socket", "errno", "math", "time", "_signal"}

# Runs svctl as the launchers do (python -I, pyinit.entry) and writes to argv[1], at
# exit, the modules loaded before svctl started, a blank line, and those loaded since.
WRAPPER = """
import sys, atexit
before = set(sys.modules)
out, repo = sys.argv[1], sys.argv[2]
def dump():
    with open(out, "w") as f:
        f.write(" ".join(sorted(before)) + "\\n\\n" + " ".join(sorted(set(sys.modules) - before)))
atexit.register(dump)
if sys.argv[3] == "--reexec":  # as entry.py runs in the interpreter it re-executed with -I
    path = repo + "/pyinit/entry.py"
    sys.argv = [path, "--pyinit-isolated", "svctl", "-", "-", "svctl", *sys.argv[4:]]
    code = compile(open(path).read(), path, "exec")
    exec(code, {"__name__": "__main__", "__file__": path})
sys.path.insert(0, repo)
sys.argv = ["svctl", *sys.argv[3:]]
import pyinit.entry
pyinit.entry.svctl()
"""


def reply() -> bytes:
    """A status reply for two services, as pyinit sends it."""
    up = ServiceView("web", ProcessView(state="run", pid=42, since=1.0, want="u"), path="/x/web")
    down = ServiceView("db", ProcessView(), path="/x/db", normally_up=False)
    records = [service_record(view, 10.0, 1000.0) for view in (up, down)]
    return json.dumps({"ok": True, "services": records, "v": 1}).encode() + b"\n"


@pytest.fixture
def control(tmp_path: Path):
    """A fake control socket answering one status request with reply(); yields its dir."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "control.sock"))
    server.listen(1)
    server.settimeout(30)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            if json.loads(buf).get("cmd") == "status":
                conn.sendall(reply())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield tmp_path
    server.close()
    thread.join(30)


def loaded(tmp_path: Path, argv: list[str], env: dict[str, str]) -> tuple[set[str], set[str], str]:
    """The modules loaded before the wrapper ran `svctl ARGV`, those it loaded, its stdout."""
    out = tmp_path / "modules"
    run = subprocess.run(
        [sys.executable, "-I", "-c", WRAPPER, str(out), REPO, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    before, _, since = out.read_text().partition("\n\n")
    return set(before.split()), set(since.split()), run.stdout


def check(got: set[str], bare: set[str], pyinit: set[str]) -> None:
    """got is exactly pyinit's modules and the stdlib budget (beyond those in bare)."""
    top = {name.partition(".")[0] for name in got if not name.startswith("pyinit")}
    mods = {name for name in got if name == "pyinit" or name.startswith("pyinit.")}
    bare_top = {name.partition(".")[0] for name in bare}
    problems = []
    for what, seen, want in (
        ("pyinit modules", mods, pyinit),
        ("stdlib/third-party modules", top - bare_top, STDLIB_STATUS - bare_top),
    ):
        if seen - want:
            problems.append(f"svctl status now loads {what} {sorted(seen - want)}")
        if want - seen:
            problems.append(f"svctl status no longer loads {what} {sorted(want - seen)}")
    assert not problems, "; ".join(problems) + " (update the budget if that is a decision)"


@pytest.mark.parametrize("how", ["run-dir", "found", "reexec"])
def test_svctl_status_loads_exactly_its_budget(control: Path, how: str) -> None:
    """svctl status with --run-dir, finding the run dir, and in the interpreter a
    console script re-executes with -I (entry.py's _resume)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    argv = ["--run-dir", str(control), "status"]
    want = set(PYINIT_STATUS)
    if how == "found":
        env["PYINIT_RUN_DIR"] = str(control)
        argv = ["status"]
        want |= PYINIT_FIND
    elif how == "reexec":
        argv.insert(0, "--reexec")
        want.discard("pyinit.entry")  # it is __main__ there
    bare, got, stdout = loaded(control, argv, env)
    assert stdout.splitlines()[0].startswith("run: web: (pid 42) ")
    assert stdout.splitlines()[1].startswith("down: db: ")
    check(got, bare, want)


def test_the_budget_check_names_a_new_module() -> None:
    with pytest.raises(AssertionError, match=r"now loads stdlib/third-party modules \['json'\]"):
        check(PYINIT_STATUS | STDLIB_STATUS | {"json", "json.decoder"}, set(), PYINIT_STATUS)
    with pytest.raises(AssertionError, match=r"no longer loads pyinit modules \['pyinit.entry'\]"):
        check((PYINIT_STATUS - {"pyinit.entry"}) | STDLIB_STATUS, set(), PYINIT_STATUS)
