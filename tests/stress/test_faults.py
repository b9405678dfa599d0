"""Fault injection on PID 1's own I/O and resources: its stdout closed or a full pipe,
its run dir read-only, out of fds (EMFILE), fork failing (RLIMIT_NPROC). Each failure
is logged once; PID 1 survives, keeps supervising, and recovers when the fault ends."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, can_unshare, kill_tree, wait_for, write_script
from stresskit import count, report, running, service, status, try_status

from pyinit.control.protocol import request

pytestmark = pytest.mark.pid1

TICKER = "while :; do echo tick; sleep 0.02; done\n"


def to_fifo(tmp: Path) -> tuple[int, list[str]]:
    """A fifo for pyinit's stdout: our read end, and the wrapper that points fd 1 at it."""
    path = tmp / "stdout.fifo"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    return fd, ["sh", "-c", f'exec "$@" > {path}', "sh"]


def read_until(fd: int, needle: bytes, timeout: float = 10) -> bytes:
    got = b""

    def more():
        nonlocal got
        if select.select([fd], [], [], 0.05)[0]:
            got += os.read(fd, 65536)
        return needle in got

    wait_for(more, timeout, f"{needle!r} on pyinit's stdout")
    return got


def restart(tmp: Path, name: str) -> None:
    """`svctl restart` over the socket, waiting until it took effect."""
    sock = str(tmp / "run" / "control.sock")
    r = request(sock, {"cmd": "control", "action": "t", "services": [name], "wait": 10}, timeout=15)
    assert r["ok"] and r["results"][0].get("done"), r


def test_stdout_closed(pyinit_run, tmp_path):
    fd, wrapper = to_fifo(tmp_path)
    service(tmp_path, "talker", TICKER, yaml="log: prefix\n")
    run = pyinit_run("--", "sleep", "100000", wrapper=wrapper)
    read_until(fd, b"talker | tick")
    os.close(fd)  # the reader is gone: EPIPE from now on
    lost = "service output to fd 1 lost"
    wait_for(lambda: lost in run.err, 10, "the loss to be logged")
    before = status(tmp_path)["talker"]["dropped_bytes"]
    wait_for(
        lambda: status(tmp_path)["talker"]["dropped_bytes"] > before + 100,
        10,
        "more output dropped",
    )
    restart(tmp_path, "talker")  # PID 1 keeps supervising
    assert count(run.err, lost) == 1, run.err
    run.kill(15)
    assert run.wait(30) == 143
    report("fault: stdout closed", logged=count(run.err, lost))


def test_stdout_full_pipe(pyinit_run, tmp_path):
    fd, wrapper = to_fifo(tmp_path)
    service(
        tmp_path,
        "burst",
        "head -c 3000000 /dev/zero | tr '\\0' x | fold -w 999\n" + TICKER,
        yaml="log: prefix\n",
    )
    run = pyinit_run("--", "sleep", "100000", wrapper=wrapper)
    full = "output is not being read fast enough"
    wait_for(lambda: full in run.err, 20, "the drop to be logged")
    assert running(tmp_path, "burst")  # answering while its stdout is full
    got = bytearray()
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            if select.select([fd], [], [], 0.05)[0]:
                got.extend(os.read(fd, 1 << 16))

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        wait_for(lambda: "output flowing again" in run.err, 20, "the output to flow again")
        mark = len(got)
        wait_for(lambda: b"burst | tick" in got[mark:], 10, "new lines after recovery")
    finally:
        stop.set()
        reader.join()
        os.close(fd)
    assert count(run.err, full) == 1, run.err
    dropped = status(tmp_path)["burst"]["dropped_bytes"]
    run.kill(15)
    assert run.wait(30) == 143
    report("fault: stdout a full pipe", logged=count(run.err, full), dropped_bytes=dropped)


def test_run_dir_read_only(pyinit_run, tmp_path, tag):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    wrapper = [
        "sh",
        "-c",
        'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"',
        str(run_dir),
    ]
    marks = tmp_path / "starts"
    service(tmp_path, "svc", f"echo $$ >> {marks}\nexec sleep 100000\n")
    main = write_script(
        tmp_path / "main.sh", f"while [ ! -e {tmp_path}/go ]; do sleep 0.05; done\nexit 5\n"
    )
    run = pyinit_run("--", str(main), wrapper=wrapper)
    wait_for(marks.exists, 20, "the service to start")
    first = int(marks.read_text().split()[0])
    assert not (run_dir / "control.sock").exists()
    # supervision goes on without the socket: kill the service, it is restarted
    victim = wait_for(
        lambda: [p for p in run.descendants() if p.name() == "sleep"], 10, "the service process"
    )[0]
    victim.kill()
    wait_for(lambda: len(marks.read_text().split()) >= 2, 20, "the service restarted")
    (tmp_path / "go").touch()
    assert run.wait(30) == 5  # the main command's exit code, as always
    warned = count(run.err, "no control socket")
    report("fault: run dir read-only", logged=warned, first_pid=first)
    assert warned == 1, run.err
    assert "Traceback" not in run.err


def test_out_of_fds(pyinit_run, tmp_path):
    service(tmp_path, "svc", "exec sleep 100000\n", yaml="log: prefix\n")
    run = pyinit_run("--", "sleep", "100000")
    wait_for(lambda: running(tmp_path, "svc"), 20, "svc running")
    pid = run.init_pid
    hard = psutil.Process(pid).rlimit(psutil.RLIMIT_NOFILE)[1]
    n = len(os.listdir(f"/proc/{pid}/fd"))
    subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={n + 1}:"], check=True)
    socks = []
    sock = str(tmp_path / "run" / "control.sock")
    try:
        for _ in range(6):  # the first takes the last fd; the others cannot be accepted
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock)
            socks.append(s)
        failed = "accept failed: Too many open files"
        wait_for(lambda: failed in run.err, 10, "EMFILE to be logged")
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    finally:
        for s in socks:
            s.close()
        subprocess.run(["prlimit", "--pid", str(pid), f"--nofile={min(hard, 1024)}:"], check=True)
    wait_for(lambda: try_status(tmp_path).get("svc"), 10, "status answered again")
    restart(tmp_path, "svc")
    assert count(run.err, failed) == 1, run.err
    assert count(run.err, "accepting connections again") == 1, run.err
    run.kill(15)
    assert run.wait(30) == 143
    report("fault: out of fds", logged=count(run.err, failed))


UID = 4243
PYTHON = "/usr/bin/python3"  # any uid can run it (a venv may live under /root)


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(PYTHON), reason=f"needs root and {PYTHON}"
)
@pytest.mark.skipif(can_unshare() is not None, reason=str(can_unshare()))
def test_fork_fails_under_rlimit_nproc(tmp_path):
    """pyinit runs as an unprivileged uid (root ignores RLIMIT_NPROC); its soft nproc
    limit is lowered so that restarting a service cannot fork, then raised again."""
    public = Path(tempfile.mkdtemp(prefix="pyinit-stress-"))
    public.chmod(0o755)
    as_uid = ["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups"]
    errf = open(tmp_path / "err.txt", "wb")  # noqa: SIM115 (closed below)
    proc = None
    try:
        service(public, "svc", "exec sleep 100000\n")
        (public / "run").mkdir()
        for d in public.rglob("*"):
            os.chown(d, UID, UID)
        os.chown(public, UID, UID)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                *as_uid,
                PYTHON,
                "-m",
                "pyinit",
                "--skip-startup-files",
                "--config",
                str(public / "none"),
                "--env-dir",
                str(public / "env"),
                "--run-dir",
                str(public / "run"),
                "--service-dir",
                str(public / "service"),
                "--",
                "sleep",
                "100000",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errf,
            env=env,
            start_new_session=True,
        )
        first = wait_for(lambda: running(public, "svc"), 20, "svc running")["svc"]["pid"]
        init = psutil.Process(proc.pid).children()[0].pid
        subprocess.run([*as_uid, "prlimit", "--pid", str(init), "--nproc=1:"], check=True)
        sock = str(public / "run" / "control.sock")
        assert request(sock, {"cmd": "control", "action": "t", "services": ["svc"]})["ok"]
        err = lambda: (tmp_path / "err.txt").read_text()  # noqa: E731
        wait_for(lambda: status(public)["svc"]["restarts"] >= 4, 20, "failed retries")
        assert status(public)["svc"]["pid"] is None
        subprocess.run([*as_uid, "prlimit", "--pid", str(init), "--nproc=10000:"], check=True)
        again = wait_for(lambda: running(public, "svc"), 20, "svc running again")["svc"]
        assert again["pid"] != first
        failed = "cannot start run: ./run: cannot fork"
        report(
            "fault: fork fails (RLIMIT_NPROC)",
            retries=again["restarts"],
            logged=count(err(), failed),
        )
        assert count(err(), failed) == 1, err()
        assert count(err(), "run started again") == 1, err()
        os.kill(init, 15)
        assert proc.wait(30) == 143
    finally:
        if proc is not None and proc.poll() is None:
            kill_tree(proc.pid)
            proc.wait(10)
        errf.close()
        shutil.rmtree(public)
