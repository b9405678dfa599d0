"""The import budget of PID 1: booting plain runit services (no service.yaml, no
pyinit.yaml, no health endpoint, no main command: what `make bench`'s boot and
memory scenarios run), supervising them and shutting down on SIGTERM loads exactly
the modules listed here. A new import on that path is a decision: update the lists.

How the set is read from the real PID 1: pyinit runs as PID 1 of a new pid namespace
through its real entry point (pyinit.entry.pyinit, under `python -I`, so no
re-exec), from a `-c` driver that only wraps os._exit, pyinit's last call, to write
sorted(sys.modules) to a file first. Nothing is imported before the entry point."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, tagged_processes, wait_for, write_script

pytestmark = pytest.mark.pid1

# Every pyinit module PID 1 loads in a plain life (boot, supervision, shutdown).
PYINIT_MODULES = """
pyinit pyinit.boot pyinit.cli pyinit.cli.init_command pyinit.cli.pyinit pyinit.cli.stdio
pyinit.config pyinit.control pyinit.control.commands pyinit.control.listener
pyinit.control.logs pyinit.control.requests pyinit.control.server pyinit.control.status
pyinit.control.waits pyinit.core pyinit.core.bounds pyinit.core.deps pyinit.core.envdir
pyinit.core.events pyinit.core.exits pyinit.core.instances pyinit.core.lines
pyinit.core.machine pyinit.core.model pyinit.core.protocol pyinit.core.records pyinit.core.repeats
pyinit.core.schema pyinit.core.signames pyinit.core.svstatus pyinit.core.tai64
pyinit.core.views pyinit.entry pyinit.linux pyinit.linux.inotify pyinit.linux.libc
pyinit.linux.prctl pyinit.linux.proctree pyinit.linux.safefs pyinit.linux.signals
pyinit.linux.users pyinit.output pyinit.output.capture pyinit.output.logdir
pyinit.output.sinks pyinit.runtime pyinit.runtime.endgame pyinit.runtime.environment
pyinit.runtime.events pyinit.runtime.launch pyinit.runtime.log pyinit.runtime.loop
pyinit.runtime.reaper pyinit.runtime.rundir pyinit.runtime.scripts pyinit.runtime.spawn
pyinit.services
pyinit.services.api pyinit.services.captures pyinit.services.gates pyinit.services.host
pyinit.services.manager pyinit.services.readiness pyinit.services.readyhost
pyinit.services.reconcile pyinit.services.records pyinit.services.runner
pyinit.services.servicedir pyinit.services.shutdown pyinit.services.supervise
pyinit.services.watcher
"""

# Top-level names of the other modules it loads, beyond what the bare interpreter
# (`python -I -c pass`) has loaded already; private ones (`_json`, ...) go with
# their public module and are left out, so the list holds across Python versions.
OTHER_MODULES = """
argparse array ast bz2 collections copy ctypes dataclasses dis fcntl gc gettext grp
heapq inspect json linecache locale lzma math opcode pwd select selectors shlex shutil
signal socket struct token tokenize typing weakref zlib
"""

DRIVER = """\
import os, sys
sys.path.insert(0, {root!r})
sys.argv[0] = "pyinit"
_real_exit = os._exit
def _dump_then_exit(code):
    with open({dump!r}, "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
    _real_exit(code)
os._exit = _dump_then_exit
from pyinit.entry import pyinit
pyinit()
"""


def bare_interpreter() -> set[str]:
    out = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; print(*sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return set(out.stdout.split())


def difference(kind: str, loaded: set[str], budget: str) -> str:
    expected = set(budget.split())
    appeared = sorted(loaded - expected)
    vanished = sorted(expected - loaded)
    return (
        f"{kind} loaded by PID 1 changed: appeared {appeared}, vanished {vanished}; "
        "if that is the decision, update the list in tests/integration/test_import_budget.py"
    )


def test_plain_boot_loads_exactly_the_budgeted_modules(
    pyinit_run, tmp_path: Path, tag: str
) -> None:
    write_script(tmp_path / "service" / "a" / "run", f"exec /bin/sh -c 'sleep 1000; :' {tag}\n")
    write_script(tmp_path / "service" / "b" / "run", f"exec /bin/sh -c 'sleep 1000; :' {tag}\n")
    write_script(
        tmp_path / "service" / "b" / "log" / "run", f"exec /bin/sh -c 'cat >/dev/null; :' {tag}\n"
    )
    dump = tmp_path / "modules.txt"
    driver = DRIVER.format(root=str(ROOT), dump=str(dump))
    run = pyinit_run(
        "--config", str(tmp_path / "no-pyinit.yaml"), command=[sys.executable, "-I", "-c", driver]
    )
    # both services and the logger run: boot is over, supervision has begun
    wait_for(lambda: len(tagged_processes(tag)) == 3, 20, "the services and the logger")
    run.kill(signal.SIGTERM)
    assert run.wait() == 0, run.err
    assert "ERROR" not in run.err and "BUG" not in run.err, run.err
    modules = set(dump.read_text().split())
    ours = {m for m in modules if m == "pyinit" or m.startswith("pyinit.")}
    bare = bare_interpreter()
    others = {m.split(".")[0] for m in modules - ours - bare}
    others = {m for m in others if not m.startswith("_")}
    print("PYINIT", " ".join(sorted(ours)))
    print("OTHER", " ".join(sorted(others)))
    assert ours == set(PYINIT_MODULES.split()), difference("pyinit modules", ours, PYINIT_MODULES)
    # python-prctl is an optional backend (`make test` installs it where it builds)
    budget = OTHER_MODULES + (" prctl" if importlib.util.find_spec("prctl") else "")
    assert others == set(budget.split()), difference("other modules", others, budget)
