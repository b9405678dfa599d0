"""A thin layer over the podman command for the container tests: is a runtime here,
build an image, run/exec/stop containers, and remove everything a test started."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[2]
BASE = os.environ.get("PYINIT_TEST_BASE", "localhost/lab/debian:bookworm")
PREFIX = "localhost/pyinit-test"
LABEL = "pyinit-test=1"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def podman(*args: str, timeout: float = 300, check: bool = True,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS`; on failure raise with its output (check=True)."""
    r = subprocess.run(["podman", *args], capture_output=True, text=True,
                       timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {r.returncode}:\n"
                             f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@functools.cache
def network_args() -> tuple[str, ...]:
    """The default network when it works here, else the host's (no netavark firewall)."""
    for args in ((), ("--network", "host")):
        r = subprocess.run(["podman", "run", "--rm", *args, BASE, "true"],
                           capture_output=True, timeout=120)
        if r.returncode == 0:
            return args
    return ("--network", "none")


@functools.cache
def unavailable() -> str | None:
    """None when podman can run the base image here, else why the tests are skipped."""
    if shutil.which("podman") is None:
        return "podman is not installed (run ../shared/tools/container-lab setup)"
    try:
        r = subprocess.run(["podman", "image", "exists", BASE], capture_output=True, timeout=60)
        if r.returncode != 0:
            return f"base image {BASE} is missing (run ../shared/tools/container-lab setup)"
        r = subprocess.run(["podman", "run", "--rm", "--network", "none", BASE, "true"],
                           capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman does not work here: {exc}"
    if r.returncode != 0:
        return f"podman run does not work here: {r.stderr.strip()[-300:]}"
    return None


@functools.cache
def _pip_ca_dir() -> str | None:
    """A pip config that trusts this machine's CA bundle (egress proxies re-sign TLS)."""
    if not HOST_CA.is_file():
        return None
    d = Path(tempfile.mkdtemp(prefix="pyinit-pipca-"))
    shutil.copy(HOST_CA, d / "ca.crt")
    (d / "pip.conf").write_text("[global]\ncert = /etc/xdg/pip/ca.crt\n")
    d.chmod(0o755)
    return str(d)


def build(context: Path, name: str, file: str | Path | None = None,
          args: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Build CONTEXT (docker format, so HEALTHCHECK survives) as PREFIX/NAME; return the tag."""
    tag = f"{PREFIX}/{name}:latest"
    cmd = ["build", "--format", "docker", "-t", tag, *network_args()]
    ca = _pip_ca_dir()
    if ca:
        cmd += ["-v", f"{ca}:/etc/xdg/pip:ro"]
    if file is not None:
        cmd += ["-f", str(file)]
    for k, v in (args or {}).items():
        cmd += ["--build-arg", f"{k}={v}"]
    podman(*cmd, str(context), timeout=timeout)
    return tag


def containerfile(dir: Path, text: str) -> Path:
    """Write DIR/Containerfile (a build context) and return DIR."""
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "Containerfile").write_text(text)
    return dir


class Containers:
    """The containers one test starts, all removed (with force) at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def name(self) -> str:
        n = f"pyinit-test-{uuid.uuid4().hex[:10]}"
        self.names.append(n)
        return n

    def run(self, image: str, *cmd: str, opts: Sequence[str] = (), timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """`podman run` in the foreground until the container exits."""
        return podman("run", "--name", self.name(), "--label", LABEL, *network_args(),
                      *opts, image, *cmd, timeout=timeout, check=False, input=input)

    def start(self, image: str, *cmd: str, opts: Sequence[str] = ()) -> str:
        """`podman run -d`; return the container's name."""
        n = self.name()
        podman("run", "-d", "--name", n, "--label", LABEL, *network_args(), *opts, image, *cmd)
        return n

    def cleanup(self) -> None:
        for n in self.names:
            # -v: with their anonymous volumes
            podman("rm", "-f", "-v", "-t", "0", n, check=False, timeout=120)


def exec_(name: str, *cmd: str, timeout: float = 60,
          opts: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    return podman("exec", *opts, name, *cmd, timeout=timeout, check=False)


def logs(name: str) -> str:
    r = podman("logs", name, check=False)
    return r.stdout + r.stderr


def state(name: str) -> dict[str, object]:
    """Running, ExitCode and Health status of a container."""
    r = podman("inspect", "--format",
               "{{.State.Running}} {{.State.ExitCode}} {{.State.Health.Status}}", name)
    running, code, *health = r.stdout.split()
    return {"running": running == "true", "exit_code": int(code),
            "health": health[0] if health else ""}


def wait_exit(name: str, timeout: float) -> int:
    """Wait for the container to exit (deadline) and return its exit code."""
    r = podman("wait", name, timeout=timeout)
    return int(r.stdout.strip().splitlines()[-1])


def wait_log(name: str, text: str, timeout: float = 60) -> str:
    """Wait until the container's log holds TEXT; return the log."""
    deadline = time.monotonic() + timeout
    while True:
        out = logs(name)
        if text in out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {text!r} in:\n{out[-3000:]}")
        time.sleep(0.2)


FETCH = ("import sys, urllib.request;"
         "print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())")


def fetch(name: str, url: str) -> str:
    """GET URL from inside the container (its python3), failing the test on an error."""
    r = exec_(name, "python3", "-c", FETCH, url)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout
