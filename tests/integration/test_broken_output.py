"""Every command-line tool on a broken or closed stdout/stderr: no traceback, the
conventional exit (141 for EPIPE, 1 for another write error); and pyinit as PID 1
never dies because its own stdout or stderr is a broken pipe."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, wait_for, write_script

PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SVCTL = "from pyinit.cli.svctl import main; main()"
TOOLS = {
    "pyinit": [PY, "-m", "pyinit", "--help"],
    "setuser": [PY, "-m", "pyinit.cli.setuser_main", "--help"],
    "pyinit-env": [PY, "-c", "from pyinit.cli.pyinit_env import main; main()", "--help"],
    "tini": [PY, "-c", "from pyinit.cli.tini import main; main()", "-h"],
    "dumb-init": [PY, "-c", "from pyinit.cli.dumb_init import main; main()", "--help"],
    "my_init": [PY, "-c", "from pyinit.cli.my_init import main; main()", "--help"],
}
EPIPE_EXIT = 128 + signal.SIGPIPE
F_SETPIPE_SZ = 1031


def to_broken_pipe(argv: list[str], **kw) -> subprocess.CompletedProcess:
    """Run argv with stdout a pipe whose reader is already gone."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(
            argv, stdout=w, stderr=subprocess.PIPE, text=True, env=ENV, timeout=30, **kw
        )
    finally:
        os.close(w)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_on_a_broken_pipe(tool: str) -> None:
    r = to_broken_pipe(TOOLS[tool])
    assert "Traceback" not in r.stderr, r.stderr
    # argparse (pyinit and its personalities) drops the help quietly with 0
    assert r.returncode in (0, EPIPE_EXIT), (r.returncode, r.stderr)
    if tool in ("setuser", "pyinit-env"):
        assert (r.returncode, r.stderr) == (EPIPE_EXIT, "")


@pytest.mark.parametrize("tool", ["setuser", "pyinit-env"])
def test_help_on_a_full_disk_and_closed_streams(tool: str) -> None:
    with open("/dev/full", "w") as full:
        r = subprocess.run(
            TOOLS[tool], stdout=full, stderr=subprocess.PIPE, text=True, env=ENV, timeout=30
        )
    assert (r.returncode, r.stderr) == (1, f"{tool}: write error: No space left on device\n")
    for redirect in (">&-", "2>&- >/dev/null", ">&- 2>&-"):
        r = subprocess.run(
            ["sh", "-c", f'"$@" {redirect}', "sh", *TOOLS[tool]],
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            timeout=30,
        )
        assert "Traceback" not in r.stderr and r.returncode == 0, (redirect, r)


def test_launchers_on_a_broken_pipe_and_a_full_disk(tmp_path: Path) -> None:
    """python -m pyinit.launchers prints a line per command it wrote: a reader gone
    is 141 without a word, a full disk one `write error` line and 1."""
    argv = [PY, "-m", "pyinit.launchers", "--python", PY, str(tmp_path)]
    r = to_broken_pipe(argv)
    assert (r.returncode, r.stderr) == (EPIPE_EXIT, ""), r
    assert (tmp_path / "svctl").read_text().startswith(f"#!{PY} -I\n")
    with open("/dev/full", "w") as full:
        r = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, env=ENV,
                           timeout=30)
    assert r.returncode == 1 and r.stderr == (
        "pyinit.launchers: write error: No space left on device\n"), r


def test_exec_gets_sigpipe_back() -> None:
    """setuser and pyinit-env exec with SIGPIPE at its default (not Python's
    SIG_IGN): a command writing to a closed pipe dies of SIGPIPE as without them."""
    for wrapper in (
        ["-m", "pyinit.cli.setuser_main", "root"],
        ["-c", "from pyinit.cli.pyinit_env import main; main()"],
    ):
        r = to_broken_pipe([PY, *wrapper, "sh", "-c", "echo hi"])
        assert r.returncode == -signal.SIGPIPE, r


def test_svctl_status_and_logs_follow_on_a_closed_pipe(
    pyinit_run, tmp_path: Path, tag: str
) -> None:
    for i in range(40):
        write_script(
            tmp_path / "service" / f"s{i:02}" / "run",
            f"echo line-{i}; exec sleep 1000\n"
            if i
            else "for n in $(seq 200); do echo chatty-$n; done; exec sleep 1000\n",
        )
    run = pyinit_run(flags=("--log-mode", "prefix"))
    run_dir = tmp_path / "run"

    def svctl(*args: str, broken: bool) -> subprocess.CompletedProcess:
        argv = [PY, "-c", SVCTL, "--run-dir", str(run_dir), *args]
        if broken:
            return to_broken_pipe(argv)
        return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=30)

    wait_for(
        lambda: svctl("status", broken=False).stdout.count("run: ") == 40, 20, "40 services up"
    )
    for args in (["status"], ["logs", "s00"], ["logs", "-f", "s00"], ["tree"]):
        r = svctl(*args, broken=True)
        assert (r.returncode, r.stderr) == (EPIPE_EXIT, ""), (args, r)
    for redirect in (">&-", "2>&-", ">&- 2>&-"):  # closed: output dropped, as runit's sv
        r = subprocess.run(
            [
                "sh",
                "-c",
                f'"$@" {redirect}',
                "sh",
                PY,
                "-c",
                SVCTL,
                "--run-dir",
                str(run_dir),
                "status",
            ],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=30,
        )
        assert (r.returncode, "Traceback" in r.stderr) == (0, False), (redirect, r)
    # a real `| head -1`, reader closing after the first line: a one-page pipe, so
    # status --json (40 records) cannot be written whole before the reader is gone;
    # logs -f notices the reader leaving while it waits for the next line
    for args in (["status", "--json"], ["logs", "-f", "s00"]):
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
        with subprocess.Popen(
            [PY, "-c", SVCTL, "--run-dir", str(run_dir), *args],
            stdout=w,
            stderr=subprocess.PIPE,
            env=ENV,
        ) as p:
            os.close(w)
            with os.fdopen(r, "rb") as reader:
                assert reader.readline()
            assert p.wait(30) == EPIPE_EXIT, args
            assert p.stderr is not None and p.stderr.read() == b""
    run.kill(signal.SIGTERM)
    assert run.wait() == 0


@pytest.mark.parametrize("stream", ["broken", "closed"])
def test_pid1_survives_its_own_broken_or_closed_output(
    pyinit_run, tmp_path: Path, stream: str
) -> None:
    """pyinit's stdout and stderr a pipe without reader, or closed: it logs (-v),
    passes on service output (prefix mode), and still exits with the main command's
    code."""
    done = tmp_path / "done"
    write_script(
        tmp_path / "service" / "chatty" / "run",
        "for n in $(seq 3000); do echo chatty-$n; echo err-$n >&2; done\nexec sleep 1000\n",
    )
    r, w = os.pipe()
    os.close(r)
    wrapper = (
        ("sh", "-c", 'exec "$@" 2>&1', "sh")
        if stream == "broken"
        else ("sh", "-c", 'exec "$@" >&- 2>&-', "sh")
    )
    main = (
        f"while ! [ -e {done} ]; do sleep 0.05; done; "
        f"{PY} -c 'from pyinit.cli.svctl import main; main()' --run-dir {tmp_path}/run "
        "status >/dev/null; exit 7"
    )
    try:
        run = pyinit_run(
            "sh", "-c", main, wrapper=wrapper, stdout=w, flags=("-v", "-v", "--log-mode", "prefix")
        )
    finally:
        os.close(w)
    wait_for(lambda: (tmp_path / "run" / "control.sock").exists(), 10, "the control socket")
    done.touch()
    assert run.wait(30) == 7


def test_pid1_with_closed_std_fds_keeps_them_for_stdio(pyinit_run, tmp_path: Path) -> None:
    """Started with fd 0, 1 and 2 closed, pyinit puts /dev/null there before it opens
    anything, so its epoll, signalfd, sockets or supervise/ files never take those
    numbers (its log would be written into them, and children would inherit them)."""
    write_script(tmp_path / "service" / "s" / "run", "echo hello; exec sleep 1000\n")
    run = pyinit_run(
        "sleep", "1000", wrapper=("sh", "-c", 'exec "$@" <&- >&- 2>&-', "sh"), flags=("-v",)
    )
    wait_for(lambda: (tmp_path / "run" / "control.sock").exists(), 10, "the control socket")
    fds = {fd: os.readlink(f"/proc/{run.init_pid}/fd/{fd}") for fd in (0, 1, 2)}
    assert fds == {0: "/dev/null", 1: "/dev/null", 2: "/dev/null"}, fds
    run.kill(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM
