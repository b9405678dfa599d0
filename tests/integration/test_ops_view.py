"""What operators see (issue 21, parts 2 and 4), with pyinit as a real PID 1:
`svctl status -l` / `svctl list` over real services (a crashing one, one run as an
unprivileged user), colored only on a terminal without NO_COLOR; `/metrics` scraped
over HTTP and parsed by Prometheus's own parser (restarts, last exit, reaped
orphans); `svctl logs` of several services merged in order, and `-f` following
them all."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import ROOT, tagged_processes, wait_for
from prometheus_client.parser import text_string_to_metric_families
from test_service_config import free_port, http_get
from test_services import LONG, SVCTL_CODE, Box, service

from pyinit.core import statustable

pytestmark = pytest.mark.pid1

PY = sys.executable
USER = "pyi-opsview"  # this file's own user (created and removed here)
CRASH = "echo crashing; exit 3\n"
ORPHAN = f"( {PY} -c 'import time; time.sleep(0.5)' \"$1\" orphan & )\n" + LONG


@pytest.fixture
def box(pyinit_run, tmp_path: Path, tag: str):
    def start(*args: str, flags: tuple = (), **kw) -> Box:
        (tmp_path / "service").mkdir(exist_ok=True)
        base = ("--config", str(tmp_path / "pyinit.yaml"), "--kill-timeout", "1")
        run = pyinit_run(*args, flags=(*base, *flags), **kw)
        b = Box(run, tmp_path, tag, tmp_path / "run")
        wait_for(lambda: os.path.exists(b.sock), 10, "the control socket")
        return b

    return start


@pytest.fixture
def user():
    subprocess.run(["userdel", USER], capture_output=True)
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", USER], check=True)
    yield USER
    subprocess.run(["userdel", USER], capture_output=True)


def svc(tmp: Path, tag: str, name: str, body: str = LONG, yaml: str | None = None) -> Path:
    d = service(tmp, tag, name, body)
    if yaml is not None:
        (d / "service.yaml").write_text(textwrap.dedent(yaml))
    return d


def svctl_tty(b: Box, *args: str, env: dict[str, str]) -> str:
    """svctl's output with its stdout on a terminal (a pty)."""
    primary, secondary = pty.openpty()
    try:
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **env}
        argv = [PY, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), *args]
        r = subprocess.run(argv, stdout=secondary, stderr=subprocess.PIPE, env=full, timeout=30)
        assert r.returncode == 0, r.stderr
        os.close(secondary)
        secondary = -1
        out = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            out += chunk
        return out.decode()
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)


def rows(text: str) -> dict[str, list[str]]:
    """The table's rows by name (the columns split on runs of two spaces)."""
    import re

    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST", "EXIT",
                                "READY", "USER"]  # fmt: skip
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", x.strip()) for x in lines[1:])}


def test_status_l_shows_restarts_last_exit_and_user(box, user, tmp_path: Path, tag: str):
    svc(tmp_path, tag, "web", yaml=f"user: {user}\n")
    svc(tmp_path, tag, "crashy", CRASH, yaml="backoff: {initial: 0.05, max: 0.2}\n")
    svc(tmp_path, tag, "off").joinpath("down").touch()
    b = box()
    b.wait("web", lambda r: r["pid"] and r["ready"], 10, "web to run")  # it cannot write `ready`
    b.wait("crashy", lambda r: r["restarts"] >= 2, 10, "crashy to restart twice")
    before = b.ok("status")  # the sv-style default
    # crashy is between runs or in one (it restarts every 0.2 s at most)
    assert before.startswith(("down: crashy: ", "run: crashy: ")) and "run: web: (pid " in before
    table = b.ok("status", "-l")
    assert "\033" not in table  # a pipe: plain
    got = rows(table)
    assert list(got) == ["crashy", "off", "web"]
    web = got["web"]
    assert web[1:3] == ["up", str(b.rec("web")["pid"])] and web[-2:] == ["yes", user]
    assert web[3].endswith("s") and web[4] == "0" and web[5] == "-"
    crashy = got["crashy"]
    assert crashy[1] in ("backoff", "up", "down") and int(crashy[4]) >= 2
    assert crashy[5].startswith("exit 3, ") and crashy[5].endswith("s ago")
    assert got["off"][1:] == ["down", "-", "-", "0", "-", "-", "-"]
    listed = rows(b.ok("list", "web", "off"))  # in the order named
    assert list(listed) == ["web", "off"] and listed["off"] == got["off"]
    # a terminal gets colors, unless NO_COLOR is set (to anything)
    colored = svctl_tty(b, "status", "-l", env={"TERM": "xterm"})
    assert f"{statustable.GREEN}up{statustable.RESET}" in colored
    assert "\033" not in svctl_tty(b, "status", "-l", env={"TERM": "xterm", "NO_COLOR": "1"})
    assert b.svctl("list", "nosuch").returncode == 1
    b.stop()


def test_metrics_count_restarts_exits_and_reaped_orphans(box, tmp_path: Path, tag: str):
    port = free_port()
    svc(tmp_path, tag, "web")
    svc(tmp_path, tag, "crashy", CRASH, yaml="backoff: {initial: 0.05, max: 0.2}\n")
    svc(tmp_path, tag, "orph", ORPHAN)
    svc(tmp_path, tag, 'we"ird\\name')
    b = box(flags=("--health-listen", f"127.0.0.1:{port}"))
    b.ready("web")
    b.wait("crashy", lambda r: r["restarts"] >= 2, 10, "crashy to restart twice")

    def scrape() -> dict[tuple[str, tuple], float]:
        code, body = http_get(port, "/metrics")
        assert code == 200
        families = text_string_to_metric_families(body.decode())
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in families for s in f.samples}  # fmt: skip

    def orphans_gone() -> bool:
        return not [p for p in tagged_processes(tag) if "orphan" in (p.info["cmdline"] or [])]

    wait_for(orphans_gone, 10, "the orphan to exit and be reaped")
    wait_for(lambda: scrape()[("pyinit_orphans_reaped_total", ())] >= 1, 5, "the reap counted")
    m = scrape()
    web, crashy = (("service", "web"),), (("service", "crashy"),)
    assert m[("pyinit_service_up", web)] == 1 and m[("pyinit_service_ready", web)] == 1
    assert m[("pyinit_service_restarts_total", web)] == 0
    assert ("pyinit_service_last_exit_code", web) not in m  # never exited
    assert m[("pyinit_service_uptime_seconds", web)] > 0
    assert m[("pyinit_service_state", (*web, ("state", "up")))] == 1
    assert m[("pyinit_service_restarts_total", crashy)] >= 2
    assert m[("pyinit_service_last_exit_code", crashy)] == 3
    assert m[("pyinit_service_dropped_log_bytes_total", crashy)] == 0
    assert m[("pyinit_service_up", (("service", 'we"ird\\name'),))] == 1
    assert sum(v for (n, labels), v in m.items()
               if n == "pyinit_service_state" and ("service", "crashy") in labels) == 1  # fmt: skip
    assert m[("pyinit_build_info", (("version", __import__("pyinit").__version__),))] == 1
    b.ok("kill", "web")  # a signal: 128+9
    b.wait("web", lambda r: r["last_signal"] == 9, 5, "web to be killed")
    assert scrape()[("pyinit_service_last_exit_code", web)] == 128 + 9
    b.stop()


def test_logs_of_several_services_merged_in_order_and_followed(box, tmp_path: Path, tag: str):
    def step(first: str, gate: str, then: str) -> str:
        return (f"echo {first}\nwhile [ ! -e {gate} ]; do sleep 0.02; done\necho {then}\n"
                + LONG)  # fmt: skip

    svc(tmp_path, tag, "alpha", step("a1", "go-a", "a2"), yaml="log: prefix\n")
    bravo = svc(tmp_path, tag, "bravo", step("b1", "go-b", "b2"), yaml="log: prefix\n")
    svc(tmp_path, tag, "quiet")  # inherit: pyinit keeps no lines of it
    b = box()

    def logs(*args: str) -> str:
        return b.ok("logs", *args)

    wait_for(lambda: logs("alpha") == "a1\n" and logs("bravo") == "b1\n", 10, "a1 and b1")
    (tmp_path / "service" / "alpha" / "go-a").touch()  # a2 after b1 and a1
    wait_for(lambda: logs("alpha") == "a1\na2\n", 10, "a2")
    # a1 and b1 came in either order; a2 after both
    merged = logs().splitlines()
    assert sorted(merged[:2]) == ["alpha | a1", "bravo | b1"] and merged[2] == "alpha | a2"
    assert logs("-n", "1") == "alpha | a2\n"
    assert logs("bravo", "alpha", "-n", "2").splitlines() == merged[1:]
    r = b.svctl("logs", "alpha", "quiet")
    assert r.returncode == 100 and "pyinit keeps no lines of quiet:" in r.stderr
    assert "`log: prefix` in service.yaml, or pyinit --log-mode prefix" in r.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    follow = subprocess.Popen([PY, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), "logs", "-f",
                               "-n", "1"], stdout=subprocess.PIPE, env=env)  # fmt: skip
    try:
        assert follow.stdout is not None
        # the last line comes in the reply that also starts the following
        assert follow.stdout.readline() == b"alpha | a2\n"
        (bravo / "go-b").touch()
        assert follow.stdout.readline() == b"bravo | b2\n"
    finally:
        follow.kill()
        follow.wait(10)
    b.stop()
