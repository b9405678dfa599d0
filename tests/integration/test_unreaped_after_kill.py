"""A process that is not reaped after SIGKILL (stuck in the kernel) must not hold PID 1.

A real one is made without FUSE: a process outside pyinit's pid namespace attaches
to it with PTRACE_SEIZE and never waits for it. Once SIGKILLed it is a zombie that
only its tracer may reap first, so pyinit, its parent, cannot reap it until the
tracer goes, exactly as with a process in uninterruptible sleep."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
from helpers import Run, wait_for, write_script

PY = sys.executable
TRACER = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.ptrace(0x4206, int(sys.argv[1]), None, None) != 0:  # PTRACE_SEIZE
    sys.exit(f"ptrace: errno {ctypes.get_errno()}")
print("attached", flush=True)
sys.stdin.read()  # hold it until the test closes our stdin or kills us
"""


def traced(pid: int) -> subprocess.Popen[str]:
    """Attach a tracer to pid (a host pid) that never reaps it."""
    tracer = subprocess.Popen(
        [PY, "-c", TRACER, str(pid)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert tracer.stdout is not None
    if tracer.stdout.readline() != "attached\n":
        tracer.kill()
        tracer.wait()
        raise AssertionError("could not attach the tracer")
    return tracer


def tagged_pid(run: Run, tag: str) -> int:
    """The host pid of `PY -c CODE tag` once exec'd (not pyinit, nor its fork before
    the exec, whose command lines hold the tag too)."""

    def find() -> int | None:
        for p in run.descendants():
            try:
                argv = p.cmdline()
                if argv[1:2] == ["-c"] and argv[-1] == tag:
                    return p.pid
            except psutil.Error:
                pass
        return None

    return int(wait_for(find, 10, f"the process tagged {tag}"))


def stop_and_check(run: Run, tracer: subprocess.Popen[str], what: str) -> str:
    """SIGTERM pyinit; it must give up on the unreapable process and go on to kill-all
    while the process is still held; then release it and check the exit."""
    warned = re.compile(
        re.escape(what) + r"\d+\) not reaped \d+(\.\d+)?s after SIGKILL "
        r"\(stuck in the kernel\?\): going on without it\n"
    )
    try:
        run.kill(signal.SIGTERM)
        wait_for(lambda: warned.search(run.err), 30, "the warning")
        wait_for(lambda: "did not die after SIGKILL" in run.err, 30, "kill-all, after it")
    finally:
        tracer.kill()
        tracer.wait()
    run.wait(30)
    err = run.err
    assert "Traceback" not in err, err
    assert len(warned.findall(err)) == 1, err
    return err


def test_main_command_not_reaped_after_sigkill_does_not_hold_pid1(pyinit_run, tag) -> None:
    run = pyinit_run(
        "--kill-timeout",
        "1",
        "--",
        PY,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(1000)",
        tag,
    )
    tracer = traced(tagged_pid(run, tag))
    err = stop_and_check(run, tracer, "main command (pid ")
    assert "main command (pid 2) still running: sending SIGKILL" in err
    assert run.proc.returncode == 137  # SIGKILLed: 128 + 9, though pyinit never reaped it


def test_shutdown_script_not_reaped_after_sigkill_does_not_hold_pid1(
    pyinit_run, tag, tmp_path: Path
) -> None:
    scripts = tmp_path / "pre_shutdown.d"
    scripts.mkdir()
    write_script(
        scripts / "stuck",
        "#!/bin/sh\ntrap '' TERM\n"
        f"exec {PY} -c 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"time.sleep(1000)' {tag}\n",
    )
    run = pyinit_run("--kill-timeout", "2", "--", "sleep", "1000")  # 4 s to attach
    wait_for(lambda: run.descendants(), 10, "the main command")
    run.kill(signal.SIGTERM)
    tracer = traced(tagged_pid(run, tag))
    stop_and_check(run, tracer, f"{scripts}/stuck (pid ")
