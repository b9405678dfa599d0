"""A supervisord image (nginx, a worker with numprocs, autorestart=unexpected and
environment, Debian's /etc/supervisor layout) run unchanged with pyinit installed as
supervisord and supervisorctl: `CMD ["supervisord", "-n", "-c", ...]` boots the
programs, `supervisorctl status|stop|start` answers as supervisorctl does, and `podman
stop` stops each program with its stopsignal (nginx QUIT, the workers TERM), exit 0."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import wait_for
from podmanlib import Containers, build, exec_, fetch, logs, podman, wait_exit, wait_log

IMAGE = Path(__file__).parent / "images" / "supervisord"


@pytest.fixture(scope="module")
def supervisord_image(base_image: str) -> str:
    return build(IMAGE, "supervisord", args={"BASE": base_image})


def status(name: str) -> dict[str, list[str]]:
    r = exec_(name, "supervisorctl", "status")
    return {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()}


def test_supervisord_image(containers: Containers, supervisord_image: str) -> None:
    name = containers.start(supervisord_image)
    out = wait_log(name, "worker 1 id=1 hello, world (worker_1)", 60)
    assert "worker 0 id=0 hello, world (worker_0)" in out
    assert "[inet_http_server]" not in out  # not in the file: nothing said
    assert "[unix_http_server] not served" in out and "pidfile: not written" in out
    assert "rpcinterface" not in out and "supervisorctl]" not in out  # harmless: silent

    wait_for(lambda: all(v[:1] == ["RUNNING"] for v in status(name).values()), 60,
             "every program RUNNING")  # fmt: skip
    r = exec_(name, "supervisorctl", "status")
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["nginx", "worker:worker_0", "worker:worker_1"]
    assert lines[0].startswith("nginx" + " " * 28 + "RUNNING   pid "), lines
    assert ", uptime 0:00:" in lines[0]
    assert "Welcome to nginx" in fetch(name, "http://127.0.0.1/")

    # an expected exit code (3 in exitcodes): EXITED, not restarted
    exec_(name, "touch", "/tmp/stop-1")
    wait_for(lambda: status(name).get("worker:worker_1", [""])[0] == "EXITED", 30, "EXITED")
    assert logs(name).count("worker 1 id=1") == 1
    r = exec_(name, "supervisorctl", "status", "worker:*")
    assert r.returncode == 3, r  # one not running
    exec_(name, "rm", "/tmp/stop-1")
    r = exec_(name, "supervisorctl", "start", "worker:worker_1")
    assert (r.returncode, r.stdout) == (0, "worker:worker_1: started\n"), r
    r = exec_(name, "supervisorctl", "restart", "nginx")
    assert r.stdout == "nginx: stopped\nnginx: started\n", r
    assert "Welcome to nginx" in fetch(name, "http://127.0.0.1/")

    podman("stop", "-t", "20", name, timeout=60)
    assert wait_exit(name, 30) == 0
    out = logs(name)
    assert "worker 0 got TERM" in out and "worker 1 got TERM" in out, out[-3000:]
    assert out.count("gracefully shutting down") >= 2, out[-3000:]  # QUIT: restart + stop
    assert "SIGKILL" not in out, out[-3000:]
