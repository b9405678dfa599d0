"""pyinit as the ENTRYPOINT of a real container under podman: output and exit codes,
`podman stop`, `podman exec svctl`, HEALTHCHECK, zombies, and a terminal with Ctrl-C."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time
from pathlib import Path

import pytest
from helpers import wait_for
from podmanlib import (
    Containers,
    build,
    exec_,
    logs,
    network_args,
    podman,
    state,
    wait_exit,
    wait_log,
)

APP = Path(__file__).parent / "images" / "app"


@pytest.fixture(scope="module")
def app_image(base_image: str) -> str:
    return build(APP, "app", args={"BASE": base_image})


def svctl_ready(name: str, timeout: float = 60) -> str:
    """Wait until every service is up and ready (svctl -w check), return svctl status."""
    r = exec_(name, "svctl", "-w", str(timeout), "check", timeout=timeout + 30)
    assert r.returncode == 0, r.stdout + r.stderr
    return exec_(name, "svctl", "status").stdout


@pytest.mark.parametrize(("cmd", "code"), [
    ("exit 0", 0),
    ("exit 7", 7),
    ("kill -TERM $$", 128 + 15),
    ("kill -KILL $$", 128 + 9),
])
def test_main_command_exit_code(containers: Containers, app_image: str, cmd: str, code: int):
    r = containers.run(app_image, "--", "sh", "-c", f"echo main: running; {cmd}",
                       opts=["--rm"])
    out = r.stdout + r.stderr
    assert r.returncode == code, out
    assert "my_init.d: 10-first-boot ran" in out
    assert "main: running" in out
    # startup scripts run before the main command, services before it too
    assert out.index("10-first-boot ran") < out.index("main: running")
    assert "Traceback" not in out


def test_services_output_and_status(containers: Containers, app_image: str):
    name = containers.start(app_image)
    status = svctl_ready(name)
    assert re.search(r"^run: web: \(pid \d+\) \d+s", status, re.M), status
    assert re.search(r"^run: worker: \(pid \d+\) \d+s", status, re.M), status
    assert re.search(r"^down: stubborn: \d+s", status, re.M), status
    out = wait_log(name, "worker: started")
    assert "web: started" in out
    assert "my_init.d: 10-first-boot ran as PID" in out


def test_podman_stop_is_graceful(containers: Containers, app_image: str):
    name = containers.start(app_image)
    svctl_ready(name)
    t0 = time.monotonic()
    podman("stop", "-t", "20", name, timeout=60)
    elapsed = time.monotonic() - t0
    st = state(name)
    assert not st["running"]
    assert st["exit_code"] == 0, logs(name)  # 137 would mean podman had to SIGKILL pyinit
    out = logs(name)
    assert "web: got TERM" in out and "worker: got TERM" in out, out
    assert elapsed < 15, f"podman stop took {elapsed:.1f}s"


def test_term_ignoring_service_is_killed_before_podman_does(containers: Containers,
                                                           app_image: str):
    name = containers.start(app_image, opts=["-e", "STUBBORN=1"])
    status = svctl_ready(name)
    assert re.search(r"^run: stubborn: \(pid \d+\)", status, re.M), status
    t0 = time.monotonic()
    podman("stop", "-t", "20", name, timeout=60)
    elapsed = time.monotonic() - t0
    st = state(name)
    out = logs(name)
    assert st["exit_code"] == 0, out  # pyinit exited by itself, not podman's SIGKILL
    assert "stubborn: ignoring TERM" in out, out
    assert "web: got TERM" in out, out
    # stop_timeout is 2 s: the stubborn service is killed after it, well before 20 s
    assert 1.5 < elapsed < 15, f"podman stop took {elapsed:.1f}s\n{out}"


def test_exec_svctl_restart_and_check(containers: Containers, app_image: str):
    name = containers.start(app_image)
    status = svctl_ready(name)
    pid = re.search(r"^run: web: \(pid (\d+)\)", status, re.M).group(1)
    r = exec_(name, "svctl", "-w", "30", "restart", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok: run: web:"), r.stdout
    status = exec_(name, "svctl", "status", "web").stdout
    new = re.search(r"^run: web: \(pid (\d+)\)", status, re.M).group(1)
    assert new != pid
    assert exec_(name, "svctl", "check", "web").returncode == 0
    bad = exec_(name, "svctl", "status", "nosuch")
    assert bad.returncode != 0 and "nosuch" in (bad.stdout + bad.stderr)


def test_healthcheck_turns_healthy_then_unhealthy(containers: Containers, app_image: str):
    name = containers.start(app_image)
    svctl_ready(name)
    r = podman("healthcheck", "run", name, check=False, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert state(name)["health"] == "healthy"
    # web now fails every start: after max_restarts (3) it is failed for good
    assert exec_(name, "sh", "-c", "touch /tmp/web-broken && svctl kill web").returncode == 0
    wait_for(lambda: exec_(name, "svctl", "status", "web").stdout.startswith("fail: web:"),
             30, "web to fail for good")
    r = podman("healthcheck", "run", name, check=False, timeout=60)
    assert r.returncode != 0
    assert state(name)["health"] == "unhealthy"
    # and back: `svctl up` after the fix
    assert exec_(name, "sh", "-c", "rm /tmp/web-broken && svctl up web").returncode == 0
    r = podman("healthcheck", "run", name, check=False, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert state(name)["health"] == "healthy"


def test_leaked_orphans_leave_no_zombie(containers: Containers, app_image: str):
    name = containers.start(app_image)
    wait_log(name, "leaker: leaked 20 orphans")

    last = [""]

    def settled() -> bool:
        ps = last[0] = exec_(name, "ps", "-eo", "stat=,ppid=,args=").stdout
        if "sleep 0.5" in ps:
            return False  # orphans (adopted by PID 1) still running
        # an orphan that has just exited is a zombie until PID 1 reaps it: wait for that
        # (a snapshot could catch one in between); one that is never reaped fails here
        return not any(line.split()[0].startswith("Z") for line in ps.splitlines())

    deadline = time.monotonic() + 30
    while not settled():
        assert time.monotonic() < deadline, f"orphans not all gone and reaped:\n{last[0]}"
        time.sleep(0.2)


def test_interactive_ctrl_c_reaches_main_command(containers: Containers, app_image: str):
    """`podman run -it`: the terminal is the main command's, Ctrl-C is its SIGINT."""
    name = containers.name()
    argv = ["podman", "run", "-it", "--name", name, *network_args(), app_image,
            "--", "ctrl-c-main"]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    out = b""
    try:
        out = _read_until(fd, b"main: ready", 60)
        assert b"foreground=True" in out, out
        os.write(fd, b"\x03")
        out += _read_until(fd, b"main: got SIGINT", 30)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 130, out
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
    assert wait_exit(name, 30) == 130


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    buf = b""
    while needle not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {needle!r}: {buf[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"terminal closed before {needle!r}: {buf[-2000:]!r}")
            buf += chunk
    return buf
