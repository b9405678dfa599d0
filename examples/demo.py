"""`make demo`: boot the example in examples/demo/etc with pyinit as a real PID 1.

It copies the example into a temporary directory, starts pyinit in a new pid
namespace (`unshare`, as root or through a user namespace) or, where neither is
allowed, as a child subreaper; shows `svctl status` (db becomes ready, then the
migrate oneshot runs, then web starts), `svctl check`, starts the `down`
service, then sends SIGTERM and shows the shutdown in reverse dependency order.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def namespace_prefix() -> tuple[list[str], str]:
    """How to become PID 1 here: unshare as root, via a user namespace, or not at all."""
    base = ["unshare", "--pid", "--fork", "--mount-proc"]
    attempts = [(base, "PID 1 of a new pid namespace (unshare)")]
    if os.geteuid() != 0:
        attempts = [(base[:1] + ["--user", "--map-root-user"] + base[1:],
                     "PID 1 of a new user+pid namespace (unshare)")]
    for prefix, what in attempts:
        if shutil.which("unshare") and subprocess.run(
            prefix + ["true"], capture_output=True
        ).returncode == 0:
            return prefix, what
    return [], "a child subreaper (no pid namespace allowed here)"


def wait_until(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def svctl(*args: str, env: dict[str, str]) -> None:
    print(f"$ svctl {' '.join(args)}", flush=True)
    subprocess.run([str(BIN / "svctl"), *args], env=env)
    sys.stdout.flush()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="pyinit-demo-"))
    etc = work / "etc"
    shutil.copytree(HERE / "demo" / "etc", etc, symlinks=True)
    env = dict(os.environ)
    env.update(
        PYINIT_ENV_DIR=str(etc / "container_environment"),
        PYINIT_INIT_DIR=str(etc / "my_init.d"),
        PYINIT_RC_LOCAL=str(etc / "rc.local"),
        PYINIT_PRE_SHUTDOWN_DIR=str(etc / "my_init.pre_shutdown.d"),
        PYINIT_POST_SHUTDOWN_DIR=str(etc / "my_init.post_shutdown.d"),
        PYINIT_SERVICE_DIR=str(etc / "service"),
        PYINIT_RUN_DIR=str(work / "run"),
        PYINIT_CONFIG=str(etc / "pyinit.yaml"),
        PYINIT_CONT_INIT_DIR=str(etc / "cont-init.d"),
        PYINIT_CONT_FINISH_DIR=str(etc / "cont-finish.d"),
    )
    prefix, how = namespace_prefix()
    say(f"booting pyinit as {how}, example tree in {etc}")
    proc = subprocess.Popen(prefix + [str(BIN / "pyinit")], env=env, start_new_session=True)
    sock = work / "run" / "control.sock"
    try:
        if not wait_until(sock.exists, 15):
            print("pyinit did not open its control socket", file=sys.stderr)
            return 1
        time.sleep(2.5)  # a demo, not a test: let the services print a few lines
        say("services, as `svctl status` shows them (runit's sv format)")
        svctl("status", env=env)
        say("is every service that should be up, up and ready? (a HEALTHCHECK)")
        svctl("check", env=env)
        say("`batch` has a down file; start it and wait until it runs")
        svctl("-w", "5", "up", "batch", env=env)
        svctl("status", "batch", env=env)
        say("SIGTERM to PID 1: stop everything gracefully, within the timeouts")
        target = proc.pid
        if prefix:
            kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            target = int(kids[0]) if kids else proc.pid
        os.kill(target, signal.SIGTERM)
        code = proc.wait(30)
        say(f"pyinit exited with code {code}")
        return 0 if code == 0 else 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
