"""What every benchmark scenario shares: running an init as PID 1 of its own pid+mount
namespace, reading its processes from /proc, and summarizing trials."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
# pyinit runs under the interpreter images ship: a venv made from Debian's
# /usr/bin/python3 (`make bench` makes it: .bench-venv, with pyinit's launchers in its
# bin/, whose `#!` line runs the interpreter isolated as the .deb's do).
BENCH_VENV = ROOT / ".bench-venv"
PYINIT_BIN = BENCH_VENV / "bin" if (BENCH_VENV / "bin" / "pyinit").exists() else None
PY = (
    str(BENCH_VENV / "bin" / "python")
    if PYINIT_BIN
    else str(VENV_PY)
    if VENV_PY.exists()
    else sys.executable
)
RESULTS = ROOT / "bench" / "results"
CLK = os.sysconf("SC_CLK_TCK")

# Runs the init as PID 1: the shell is PID 1 for the bind mount, then execs the init.
BIND_AND_EXEC = 'mount --bind "$0" "$1" && shift && exec "$@"'


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_until(
    cond: Callable[[], object], timeout: float, what: str, step: float = 0.005
) -> object:
    """cond()'s first truthy value; RuntimeError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


# /proc ---------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """utime + stime of pid (0 when it is gone)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def ctx_switches(pid: int) -> int:
    """voluntary + nonvoluntary context switches of pid (0 when it is gone)."""
    total = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    except OSError:
        return 0
    return total


def pss_kib(pid: int) -> int:
    """Proportional set size of pid in KiB, from smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(root: int) -> list[int]:
    """Every process below root (host pids)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid = int(_stat_fields(int(name))[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


# an init as PID 1 ----------------------------------------------------------------------


class Namespace:
    """argv run as PID 1 of a new pid+mount namespace, with src bind-mounted on mnt."""

    def __init__(
        self,
        argv: Sequence[str],
        src: Path,
        mnt: Path,
        errlog: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        mnt.mkdir(parents=True, exist_ok=True)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYINIT_")}
        full_env.update(env or {})
        self.err = open(errlog, "ab")  # noqa: SIM115 (closed in kill)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                "--",
                "sh",
                "-c",
                BIND_AND_EXEC,
                str(src),
                str(mnt),
                *argv,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.err,
            env=full_env,
            start_new_session=True,
        )
        self.argv0 = os.path.basename(argv[0])
        self.pid = int(wait_until(self._init_pid, 10, "the init to start"))

    def _init_pid(self) -> int | None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.argv0} exited at once: {self.proc.returncode}")
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = f.read().split()
        except OSError:
            return None
        if not kids:
            return None
        pid = int(kids[0])
        try:  # after the exec: the shell's command line is gone
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if BIND_AND_EXEC.encode() in f.read():
                    return None
        except OSError:
            return None
        return pid

    def processes(self) -> list[int]:
        return [self.pid, *descendants(self.pid)]

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL PID 1: the kernel kills the rest of the namespace."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            if self.wait(20) is None:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


# statistics ----------------------------------------------------------------------------


def summary(values: Iterable[float]) -> dict:
    """Median and spread of trial values."""
    v = sorted(values)
    if not v:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "n": len(v), "values": v}


def p99(values: Sequence[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]


def interpreter() -> str:
    """The interpreter pyinit runs under in this run, by path and version."""
    out = subprocess.run(
        [PY, "-I", "-c", "import sys; print(sys.version.split()[0], sys._base_executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    how = "a venv of " if PYINIT_BIN else ""
    return f"{how}{out[1]} (Python {out[0]})"


def machine() -> dict:
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pyinit_python": interpreter(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"scenario": name, "machine": machine(), **data}
    path.write_text(json.dumps(data, indent=1) + "\n")
    log(f"wrote {path.relative_to(ROOT)}")
    return path
