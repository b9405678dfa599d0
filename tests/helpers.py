"""Shared test helpers: run pyinit as a real PID 1 (unshare) or as a subreaper,
wait on conditions with a deadline, and make sure nothing started is left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import psutil

ROOT = Path(__file__).resolve().parent.parent


def wait_for(cond: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Return cond()'s first truthy value; fail the test if timeout passes first."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def can_unshare() -> str | None:
    """None when `unshare --pid --fork --mount-proc` works here, else the reason."""
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    try:
        r = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"],
            capture_output=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if r.returncode != 0:
        return f"unshare --pid needs root or user namespaces: {r.stderr.decode().strip()}"
    return None


def finish(run: Run, timeout: float = 30) -> tuple[int, str]:
    """Wait for pyinit to exit; its exit code and stderr, which never holds a traceback
    or an internal error."""
    code = run.wait(timeout)
    err = run.err
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    return code, err


def lines(path: Path) -> list[str]:
    """The lines of a file a test process writes; none while it does not exist."""
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def write_script(path: Path, body: str, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if body.startswith("#!") else "#!/bin/sh\n" + body)
    path.chmod(mode)
    return path


class Run:
    """One pyinit process (PID 1 in a new namespace, or a subreaper) and its output."""

    def __init__(self, args: Sequence[str], tmp: Path, pid1: bool = True,
                 env: dict[str, str] | None = None, flags: Sequence[str] = (),
                 wrapper: Sequence[str] = (), python: str = sys.executable,
                 run_dir: bool = True, stdout: int | None = None,
                 command: Sequence[str] | None = None) -> None:
        """wrapper: a command that execs its arguments, run in front of pyinit
        (inside the namespace), e.g. to set up the signal state pyinit inherits.
        python: the interpreter (one an unprivileged uid may run). run_dir=False:
        no --run-dir, so pyinit picks one itself (rundir.py). stdout: an fd for
        pyinit's stdout instead of a file (`out` is then empty). command: how to
        start pyinit (a launcher) instead of `python -m pyinit` with PYTHONPATH set
        to the checkout; env then reaches it as given."""
        self.tmp = tmp
        self.out_path = tmp / f"out-{time.monotonic_ns()}.txt"
        self.err_path = tmp / f"err-{time.monotonic_ns()}.txt"
        base = [
            *(command or [python, "-m", "pyinit"]),
            "--env-dir", str(tmp / "container_environment"),
            "--init-dir", str(tmp / "my_init.d"),
            "--rc-local", str(tmp / "rc.local"),
            "--pre-shutdown-dir", str(tmp / "pre_shutdown.d"),
            "--post-shutdown-dir", str(tmp / "post_shutdown.d"),
            *(["--run-dir", str(tmp / "run")] if run_dir else []),
            "--service-dir", str(tmp / "service"),
            *flags,
        ]
        unshare = ["unshare", "--pid", "--fork", "--mount-proc"] if pid1 else []
        argv = unshare + list(wrapper) + base + list(args)
        full_env = dict(os.environ)
        full_env.update(env or {})
        if command is None:
            full_env["PYTHONPATH"] = str(ROOT)
        self.pid1 = pid1
        self._out = open(self.out_path, "wb")  # noqa: SIM115 - closed in cleanup()
        self._err = open(self.err_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._out if stdout is None else stdout,
                                     stderr=self._err, env=full_env, start_new_session=True)
        self.init_pid = self._find_init() if pid1 else self.proc.pid

    def _find_init(self) -> int:
        def child() -> int | None:
            try:
                kids = psutil.Process(self.proc.pid).children()
            except psutil.NoSuchProcess:
                return None
            return kids[0].pid if kids else None
        return int(wait_for(child, 10, "unshare's child (PID 1)"))

    @property
    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def kill(self, signum: int) -> None:
        os.kill(self.init_pid, signum)

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"pyinit did not exit in {timeout}s\nstderr:\n{self.err}"
            ) from None

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.init_pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def cleanup(self) -> list[int]:
        """Kill whatever is left; return the pids that were still alive (leaks)."""
        leaked = []
        if self.proc.poll() is None:
            procs = self.descendants()
            leaked = [p.pid for p in procs]
            for p in procs:
                _kill(p.pid)
            _kill(self.init_pid)
            _kill(self.proc.pid)
            self.proc.wait(10)
        self._out.close()
        self._err.close()
        return leaked


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def kill_session(sid: int) -> None:
    """SIGKILL every process of session sid (a test's start_new_session=True child and
    everything it started, whatever process groups they moved to)."""
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            if pid != os.getpid() and os.getsid(pid) == sid:
                os.kill(pid, signal.SIGKILL)


def kill_tree(pid: int) -> None:
    """SIGKILL pid and all its descendants (whatever session or group they are in),
    then whatever is left of its session."""
    with contextlib.suppress(psutil.Error):
        procs = psutil.Process(pid).children(recursive=True)
        for p in [psutil.Process(pid), *procs]:
            with contextlib.suppress(psutil.Error):
                p.kill()
    kill_session(pid)


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Processes whose command line holds tag (tests mark what they start with it)."""
    out = []
    for p in psutil.process_iter(["cmdline", "pid"]):
        try:
            if any(tag in part for part in (p.info["cmdline"] or [])):
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return [p for p in out if p.pid != os.getpid()]


def run_python(code: str, env: dict[str, str] | None = None,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter with pyinit importable; fail the test on a
    non-zero exit (so state such as blocked signals never touches the test runner)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=full_env, timeout=timeout)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def unmanaged_ignored_bits() -> int:
    """SigIgn bits this process inherited for signals Python cannot touch (glibc's
    reserved 32 and 33): they pass through every exec unchanged, so children have them."""
    import signal as _signal

    valid = {int(s) for s in _signal.valid_signals()}
    mask = sum(1 << (n - 1) for n in range(1, 65) if n not in valid)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split(":", 1)[1].strip(), 16) & mask
    return 0
