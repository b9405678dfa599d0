"""pyinit as /sbin/my_init and /sbin/setuser in a phusion-style image, run as phusion's
CI runs it (`/sbin/my_init --enable-insecure-key`): the insecure key is installed
before the startup scripts; the syslog daemon a startup script started outlives the
services and is stopped by the post-shutdown script (kill-all comes after it);
setuser sets UID and finds its program as the user; the container environment has
phusion's modes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import wait_for
from podmanlib import Containers, build, exec_, logs, podman, wait_exit

PHUSION = Path(__file__).parent / "images" / "phusion"


@pytest.fixture(scope="module")
def phusion_image(base_image: str) -> str:
    return build(PHUSION, "phusion", args={"BASE": base_image})


def read_file(name: str, path: str, tmp_path: Path) -> str:
    """A file of a (stopped) container."""
    dest = tmp_path / Path(path).name
    podman("cp", f"{name}:{path}", str(dest))
    return dest.read_text()


def test_phusion_image_boot_and_shutdown(
    containers: Containers, phusion_image: str, tmp_path: Path
) -> None:
    name = containers.start(phusion_image, "/sbin/my_init", "--enable-insecure-key")

    def syslog() -> str:
        return exec_(name, "cat", "/var/log/syslog").stdout

    wait_for(lambda: "app: started" in syslog(), 60, "the service's first syslog line")

    # 1. the key is installed, and before the startup scripts
    keys = exec_(name, "cat", "/root/.ssh/authorized_keys")
    assert keys.returncode == 0, logs(name)
    assert keys.stdout.endswith("baseimage-docker-insecure-key\n"), keys.stdout
    out = logs(name)
    assert "Success: insecure key has been added to /root/.ssh/authorized_keys" in out, out
    assert out.index("running /usr/sbin/enable_insecure_key") < out.index(
        "running /etc/my_init.d/10_syslog.init"
    ), out

    # 3. and 5. setuser: UID besides HOME and USER; the program found on PATH as app
    # (the root-only copy in /root/.local/bin, first on PATH, is skipped)
    uid = exec_(name, "id", "-u", "app").stdout.strip()
    assert f"app: started as app UID={uid} USER=app HOME=/home/app" in syslog(), syslog()
    assert "root-only copy" not in out

    # 4. the container environment: phusion's modes (the variable files 0600)
    st = exec_(
        name,
        "stat",
        "-c",
        "%n %a %U:%G",
        "/etc/container_environment",
        "/etc/container_environment.sh",
        "/etc/container_environment.json",
        "/etc/container_environment/PATH",
    ).stdout.splitlines()
    assert st == [
        "/etc/container_environment 700 root:root",
        "/etc/container_environment.sh 640 root:docker_env",
        "/etc/container_environment.json 640 root:docker_env",
        "/etc/container_environment/PATH 600 root:root",
    ], st

    # 2. shutdown: the service's last line reaches the syslog, which the post-shutdown
    # script finds alive and stops; only then kill-all (with nothing left to kill)
    podman("stop", "-t", "20", name, timeout=60)
    assert wait_exit(name, 30) == 2  # my_init: "Init system aborted." on SIGTERM
    out = logs(name)
    assert "Traceback" not in out, out
    assert "processes still running" not in out, out
    lines = read_file(name, "/var/log/syslog", tmp_path).splitlines()
    said = [
        next((i for i, line in enumerate(lines) if text in line), None)
        for text in (
            "app: started",
            "app: stopping on SIGTERM",
            "shutdown: post-shutdown: the syslog still collects",
            "minisyslogd: exiting on SIGTERM",
        )
    ]
    assert None not in said and said == sorted(said), lines
    assert read_file(name, "/var/log/shutdown.log", tmp_path).splitlines() == [
        "post-shutdown: minisyslogd alive",
        "post-shutdown: minisyslogd stopped",
    ]
    assert re.search(
        r"running post-shutdown script /etc/my_init.post_shutdown.d/"
        r"10_syslog.shutdown",
        out,
    ), out


def test_my_init_without_enable_insecure_key_script_says_so(
    containers: Containers, phusion_image: str
) -> None:
    r = containers.run(
        phusion_image,
        "sh",
        "-c",
        "rm /usr/sbin/enable_insecure_key && exec /sbin/my_init "
        "--enable-insecure-key --skip-runit -- true",
        opts=["--rm"],
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    said = [line for line in out.splitlines() if "--enable-insecure-key" in line]
    assert said == [
        "pyinit: warning: --enable-insecure-key: /usr/sbin/enable_insecure_key "
        "does not exist: no SSH key installed"
    ], out
