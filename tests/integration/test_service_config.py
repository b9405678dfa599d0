"""service.yaml (issue 4) with pyinit as a real PID 1: dependencies and their order,
readiness (notification-fd, sd_notify, check/tcp/http probes, settle, start_timeout),
restart policies and limits, essential services, oneshots, the s6-overlay layout,
schema errors, /readyz, the main command waiting for services, `svctl check`, the
per-service process setup and stop settings.

Services are runit dirs written by test_services.service(): `run` execs
`./main.sh TAG NAME`, so everything a test starts carries its tag (leak check).
Many bodies wait for a file `go` in their dir: the test decides when they proceed.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, wait_for, write_script
from test_services import (
    LONG,
    READY,
    SEC,
    SVCTL_CODE,
    Box,
    assert_lines,
    line_re,
    read_lines,
    service,
)

pytestmark = pytest.mark.pid1

PY = sys.executable
GATE = "while [ ! -e go ]; do sleep 0.02; done\n"  # wait for the test to touch `go`


def stamp_to(path: object) -> str:
    """Shell: write the wall clock time to path, atomically."""
    return f"date +%s.%N > {path}.tmp && mv {path}.tmp {path}\n"


STAMP = stamp_to("started")  # when this run began


@pytest.fixture
def box(pyinit_run, tmp_path: Path, tag: str):
    """test_services' box, with every path of pyinit's inside tmp_path (pyinit.yaml,
    cont-init.d and cont-finish.d included) and a 1 s kill timeout."""
    def start(*args: str, flags: tuple = (), **kw) -> Box:
        (tmp_path / "service").mkdir(exist_ok=True)
        base = ("--config", str(tmp_path / "pyinit.yaml"),
                "--cont-init-dir", str(tmp_path / "cont-init.d"),
                "--cont-finish-dir", str(tmp_path / "cont-finish.d"),
                "--kill-timeout", "1")
        run = pyinit_run(*args, flags=(*base, *flags), **kw)
        b = Box(run, tmp_path, tag, tmp_path / "run")
        wait_for(lambda: os.path.exists(b.sock), 10, "the control socket")
        return b
    return start


def svc(tmp: Path, tag: str, name: str, body: str = LONG, yaml: str | None = None,
        **kw) -> Path:
    """A service dir with an optional service.yaml."""
    d = service(tmp, tag, name, body, **kw)
    if yaml is not None:
        (d / "service.yaml").write_text(textwrap.dedent(yaml))
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stamp(path: Path) -> float:
    return float(path.read_text())


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def svctl_json(b: Box, *names: str) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(b.ok("status", "--json", *names))}


def host_proc(b: Box, name: str) -> psutil.Process:
    return psutil.Process(b.host_pid(b.ready(name)))


# =========================================================================================
# dependencies
# =========================================================================================
def test_requires_and_after_wait_for_readiness(box, tmp_path: Path, tag: str) -> None:
    """web `requires: [db]`, worker `after: [db]`: neither starts before db wrote the
    newline on its s6 `notification-fd` (3). `after` a service that is down does not
    wait; `requires` one does."""
    db = svc(tmp_path, tag, "db", READY + GATE + stamp_to("released") + "echo >&3\n"
             "trap 'kill $! 2>/dev/null; exit 0' TERM\nsleep 1000 & wait $!\n")
    (db / "notification-fd").write_text("3\n")
    web = svc(tmp_path, tag, "web", STAMP + LONG, "requires: [db]\n")
    worker = svc(tmp_path, tag, "worker", STAMP + LONG, "after: [db]\n")
    svc(tmp_path, tag, "lazy", down=True)
    svc(tmp_path, tag, "x_after", STAMP + LONG, "after: [lazy]\n")
    svc(tmp_path, tag, "x_requires", STAMP + LONG, "requires: [lazy]\n")
    b = box()
    b.ready("db")
    b.wait_running("x_after")  # after a service that is down: no wait
    recs = b.status()
    assert recs["db"]["ready"] is False
    for name, target in (("web", "db"), ("worker", "db"), ("x_requires", "lazy")):
        assert recs[name]["pid"] is None and recs[name]["state"] == "down", recs[name]
        assert recs[name]["waiting_for"] == [target], recs[name]
    assert not (web / "started").exists() and not (worker / "started").exists()
    assert_lines(b.ok("status", "web"),
                 line_re("down: web: ", SEC, ", normally up, want up, waiting for db"))

    (db / "go").touch()
    b.wait_running("web", "worker")
    wait_for(lambda: (web / "started").exists() and (worker / "started").exists(), 5, "stamps")
    released = stamp(db / "released")
    assert stamp(web / "started") >= released and stamp(worker / "started") >= released
    recs = b.status()
    assert recs["db"]["ready"] is True and recs["web"]["waiting_for"] == []
    assert recs["x_requires"]["pid"] is None and recs["x_requires"]["waiting_for"] == ["lazy"]

    b.ok("up", "lazy")
    b.wait_running("x_requires")
    b.stop()


def test_dependency_order_does_not_depend_on_names(box, tmp_path: Path, tag: str) -> None:
    db = svc(tmp_path, tag, "db", READY + GATE + "echo >&3\n" + LONG)
    (db / "notification-fd").write_text("3\n")
    svc(tmp_path, tag, "api", "touch started\n" + LONG, "requires: [db]\n")
    svc(tmp_path, tag, "cache", "touch started\n" + LONG, "after: [db]\n")
    b = box()
    b.ready("db")
    recs = b.status()
    b.stop()
    for name in ("api", "cache"):
        assert recs[name]["pid"] is None and recs[name]["waiting_for"] == ["db"], recs[name]
        assert not (tmp_path / "service" / name / "started").exists()


def test_shutdown_stops_dependencies_after_their_dependants(box, tmp_path: Path,
                                                            tag: str) -> None:
    """front `after: [web]`, web `requires: [db]`. Each TERM trap appends its name to `order`; the
    dependants take 0.3 s, so a parallel stop would record db first."""
    order = tmp_path / "order"

    def body(name: str, delay: str) -> str:
        return (f"trap 'kill $! 2>/dev/null; sleep {delay}; echo {name} >> {order}; exit 0' "
                "TERM\n" + READY + "sleep 1000 & wait $!\n")

    svc(tmp_path, tag, "db", body("db", "0"))
    svc(tmp_path, tag, "web", body("web", "0.3"), "requires: [db]\n")
    svc(tmp_path, tag, "front", body("front", "0.3"), "after: [web]\n")
    b = box()
    for name in ("db", "web", "front"):
        b.ready(name)
    b.stop()
    assert read_lines(order) == ["front", "web", "db"]


# =========================================================================================
# readiness
# =========================================================================================
SD_NOTIFY = f"""\
exec {PY} - "$1" <<'EOF'
import os, socket, time
open("ready.tmp", "w").write(str(os.getpid())); os.rename("ready.tmp", "ready")
while not os.path.exists("go"):
    time.sleep(0.02)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\\nSTATUS=serving", os.environ["NOTIFY_SOCKET"])
time.sleep(1000)
EOF
"""

TCP_SERVER = f"""\
exec {PY} - "$1" "$PORT" <<'EOF'
import os, socket, sys, time
open("ready.tmp", "w").write(str(os.getpid())); os.rename("ready.tmp", "ready")
while not os.path.exists("go"):
    time.sleep(0.02)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[2])))
s.listen(16)
while True:
    s.accept()[0].close()
EOF
"""

# answers 503 until `go` exists, logging every request's path and code to `hits`
HTTP_SERVER = f"""\
exec {PY} - "$1" "$PORT" <<'EOF'
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if os.path.exists("go") else 503
        with open("hits", "a") as f:
            f.write(f"{{self.path}} {{code}}\\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), H)
open("ready.tmp", "w").write(str(os.getpid())); os.rename("ready.tmp", "ready")
srv.serve_forever()
EOF
"""


def test_readiness_notification_fd_sd_notify_and_check(box, tmp_path: Path, tag: str) -> None:
    nfd = svc(tmp_path, tag, "nfd", READY + GATE + "echo >&4\n" + LONG,
              "ready: {notification_fd: 4}\n")
    sdn = svc(tmp_path, tag, "sdn", SD_NOTIFY, "ready: {sd_notify: true}\n")
    chk = svc(tmp_path, tag, "chk", check="echo x >> checks\ntest -e go\n",
              yaml="ready: {check: true, interval: 0.2}\n")
    b = box()
    for name in ("nfd", "sdn", "chk"):
        b.ready(name)
    wait_for(lambda: len(read_lines(chk / "checks")) >= 2, 5, "two failed checks")
    recs = b.status()
    for name in ("nfd", "sdn", "chk"):
        assert recs[name]["state"] == "run" and recs[name]["ready"] is False, recs[name]
    assert recs["sdn"]["status_text"] is None
    assert_lines(b.ok("status", "chk"),
                 line_re(f"run: chk: (pid {recs['chk']['pid']}) ", SEC, ", not ready"))
    environ = host_proc(b, "sdn").environ()
    assert environ["NOTIFY_SOCKET"] == str(tmp_path / "run" / "notify.sock")
    assert "NOTIFY_SOCKET" not in host_proc(b, "nfd").environ()  # only for sd_notify

    for d in (nfd, sdn, chk):
        (d / "go").touch()
    for name in ("nfd", "sdn", "chk"):
        b.wait(name, lambda r: r["ready"], 5, f"{name} ready")
    rec = b.rec("sdn")
    assert rec["status_text"] == "serving"
    assert_lines(b.ok("status", "sdn"), line_re(f"run: sdn: (pid {rec['pid']}) ", SEC))
    checks = len(read_lines(chk / "checks"))
    for name in ("nfd", "sdn", "chk"):
        assert b.rec(name)["restarts"] == 0
    b.stop()
    assert len(read_lines(chk / "checks")) == checks  # once ready, probing stops


def test_readiness_tcp_and_http_probes(box, tmp_path: Path, tag: str) -> None:
    tport, hport = free_port(), free_port()
    tcp = svc(tmp_path, tag, "tcp", f"PORT={tport}\n" + TCP_SERVER,
              f"ready: {{tcp: {tport}, interval: 0.2}}\n")
    web = svc(tmp_path, tag, "web", f"PORT={hport}\n" + HTTP_SERVER,
              f'ready: {{http: "http://127.0.0.1:{hport}/health", interval: 0.2}}\n')
    b = box()
    b.ready("tcp")
    b.ready("web")
    wait_for(lambda: len(read_lines(web / "hits")) >= 2, 5, "two probes of /health")
    assert set(read_lines(web / "hits")) == {"/health 503"}
    recs = b.status()
    assert recs["tcp"]["ready"] is False and recs["web"]["ready"] is False
    (tcp / "go").touch()
    (web / "go").touch()
    b.wait("tcp", lambda r: r["ready"], 5, "tcp ready")
    b.wait("web", lambda r: r["ready"], 5, "web ready")
    assert read_lines(web / "hits")[-1] == "/health 200"
    b.stop()


def test_readiness_settle_and_start_timeout(box, tmp_path: Path, tag: str) -> None:
    """settle: ready after 1 s up. start_timeout: a service never ready is stopped and
    restarted, and each of its exits counts as a failure."""
    svc(tmp_path, tag, "slow", yaml="ready: {settle: 1}\n")
    never = svc(tmp_path, tag, "never", "echo x >> starts\n" + LONG,
                'ready: {check: "false", interval: 0.1, start_timeout: 0.4}\n')
    b = box()
    b.ready("slow")
    rec = b.rec("slow")
    assert rec["ready"] is False and rec["uptime"] < 0.9, rec
    rec = b.wait("slow", lambda r: r["ready"], 5, "slow to settle")
    assert 0.95 <= rec["uptime"] < 2.5, rec
    wait_for(lambda: len(read_lines(never / "starts")) >= 3, 10, "never to be restarted twice")
    rec = b.rec("never")
    assert rec["ready"] is False and rec["restarts"] >= 2
    assert "[never] not ready within 0.4s: restarting it" in b.run.err
    b.stop()


# =========================================================================================
# restart policies and limits
# =========================================================================================
def test_restart_limit_reaches_failed_and_up_retries(box, tmp_path: Path, tag: str) -> None:
    flaky = svc(tmp_path, tag, "flaky", "echo x >> starts\nexit 1\n",
                "max_restarts: 2\nbackoff: {initial: 0.05}\n")
    svc(tmp_path, tag, "steady")
    b = box()
    b.wait("flaky", lambda r: r["failed"], 5, "flaky to fail")
    assert len(read_lines(flaky / "starts")) == 3  # the first start and 2 restarts
    reason = "2 restarts within 60s; svctl up to retry"
    r = b.svctl("status")
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0] == f"fail: flaky: {reason}"
    assert lines[1].startswith("run: steady: (pid ")
    rec = svctl_json(b, "flaky")["flaky"]
    assert rec["failed"] == reason and rec["outcome"] == "failed"
    assert rec["want"] == "d" and rec["pid"] is None and rec["last_exit_code"] == 1
    assert b.ok("up", "flaky") == ""
    wait_for(lambda: len(read_lines(flaky / "starts")) == 6 and b.rec("flaky")["failed"], 5,
             "three more starts, then failed again")
    assert b.rec("steady")["restarts"] == 0
    b.stop()


def test_restart_never_on_failure_and_success_exit_codes(box, tmp_path: Path,
                                                         tag: str) -> None:
    once = "echo x >> starts\nif [ -e ran ]; then\n" + LONG + "fi\ntouch ran\n"
    count = "echo x >> starts\n"
    svc(tmp_path, tag, "always0", count + "exit 0\n", "backoff: {initial: 0.05}\n")
    svc(tmp_path, tag, "never0", count + "exit 0\n", "restart: never\n")
    svc(tmp_path, tag, "never1", count + "exit 1\n", "restart: never\n")
    svc(tmp_path, tag, "onfail0", count + "exit 0\n", "restart: on-failure\n")
    svc(tmp_path, tag, "onfail1", once + "exit 1\n", "restart: on-failure\n")
    svc(tmp_path, tag, "code3", count + "exit 3\n",
        "restart: on-failure\nsuccess_exit_codes: [0, 3]\n")
    svc(tmp_path, tag, "code4", once + "exit 4\n",
        "restart: on-failure\nsuccess_exit_codes: [0, 3]\n")
    sdir = tmp_path / "service"
    b = box()

    def starts(name: str) -> int:
        return len(read_lines(sdir / name / "starts"))

    # the reference: restarted again and again meanwhile
    wait_for(lambda: starts("always0") >= 4, 5, "always0 to be restarted")
    b.wait_running("onfail1", "code4")
    recs = b.status()
    for name in ("never0", "never1", "onfail0", "code3"):
        rec = recs[name]
        assert starts(name) == 1, name
        assert rec["pid"] is None and rec["want"] == "d" and rec["next_start_in"] is None, rec
    for name, code in (("never0", 0), ("onfail0", 0), ("code3", 3)):
        assert recs[name]["outcome"] == "exited" and recs[name]["failed"] is None, recs[name]
        assert recs[name]["last_exit_code"] == code
    assert recs["never1"]["outcome"] == "failed"
    for name in ("onfail1", "code4"):
        assert recs[name]["restarts"] == 1 and starts(name) == 2
    r = b.svctl("status", "never0", "never1", "code3")
    assert r.returncode == 1
    assert_lines(r.stdout, line_re("down: never0: ", SEC, ", normally up"),
                 line_re("fail: never1: exited with exit code 1"),
                 line_re("down: code3: ", SEC, ", normally up"))
    b.stop()


# =========================================================================================
# essential services
# =========================================================================================
def main_is_sleeping(b: Box) -> bool:
    for p in b.run.descendants():
        try:
            if p.cmdline() == ["sleep", "1000"]:
                return True
        except psutil.Error:
            pass
    return False


def test_essential_service_exit_ends_the_container_with_its_code(box, tmp_path: Path,
                                                                 tag: str) -> None:
    crit = svc(tmp_path, tag, "crit", READY + GATE + "exit 3\n",
               "essential: true\nrestart: never\n")
    svc(tmp_path, tag, "other")
    b = box("/bin/sh", "-c", "exec sleep 1000", tag)
    b.ready("crit")
    wait_for(lambda: main_is_sleeping(b), 5, "the main command")
    assert b.run.proc.poll() is None
    (crit / "go").touch()
    assert b.run.wait(10) == 3, b.run.err
    assert ("[crit] essential service failed: shutting the container down with exit code 3"
            in b.run.err)


def test_essential_service_failed_by_restart_limit_subreaper(box, tmp_path: Path,
                                                             tag: str) -> None:
    crit = svc(tmp_path, tag, "crit", "echo x >> starts\n" + GATE + "exit 5\n",
               "essential: true\nmax_restarts: 1\nbackoff: {initial: 0.05}\n")
    b = box("/bin/sh", "-c", "exec sleep 1000", tag, pid1=False)
    b.wait_running("crit")
    assert b.run.proc.poll() is None
    (crit / "go").touch()
    assert b.run.wait(10) == 5, b.run.err
    assert len(read_lines(crit / "starts")) == 2
    assert "[crit] failed: 1 restart within 60s; svctl up to retry" in b.run.err
    assert "essential service failed: shutting the container down with exit code 5" in b.run.err


# =========================================================================================
# oneshots
# =========================================================================================
def test_oneshot_runs_once_and_gates_its_dependants(box, tmp_path: Path, tag: str) -> None:
    setup = svc(tmp_path, tag, "setup", "echo x >> starts\n" + READY + GATE + "exit 0\n",
                "oneshot: true\n")
    app = svc(tmp_path, tag, "worker", STAMP + LONG, "requires: [setup]\n")
    svc(tmp_path, tag, "bad", "echo x >> starts\nexit 1\n", "oneshot: true\nrestart: never\n")
    svc(tmp_path, tag, "dep", "touch started\n" + LONG, "requires: [bad]\n")
    sdir = tmp_path / "service"
    b = box()
    b.ready("setup")
    rec = b.rec("worker")
    assert rec["pid"] is None and rec["waiting_for"] == ["setup"]
    t = time.time()
    (setup / "go").touch()
    b.wait_running("worker")
    wait_for(lambda: (app / "started").exists(), 5, "worker's stamp")
    assert stamp(app / "started") >= t
    recs = b.status()
    assert recs["setup"]["outcome"] == "done" and recs["setup"]["ready"] is True
    assert recs["setup"]["oneshot"] is True and recs["setup"]["pid"] is None
    assert read_lines(setup / "starts") == ["x"]
    assert_lines(b.ok("status", "setup"), line_re("down: setup: ", SEC, ", done"))
    assert_lines(b.ok("check", "setup"), line_re("ok: down: setup: ", SEC, ", done"))

    # a oneshot that failed for good: its dependant fails too, and never ran
    b.wait("dep", lambda r: r["failed"], 5, "dep to fail")
    r = b.svctl("status", "bad", "dep")
    assert r.returncode == 2
    assert_lines(r.stdout, line_re("fail: bad: exited with exit code 1"),
                 line_re("fail: dep: requires bad, which failed"))
    assert read_lines(sdir / "bad" / "starts") == ["x"]
    assert not (sdir / "dep" / "started").exists()
    b.stop()


# =========================================================================================
# s6-overlay layout
# =========================================================================================
def test_s6_overlay_layout(box, tmp_path: Path, tag: str) -> None:
    """my_init.d, then cont-init.d, then rc.local; a services.d service with run, finish
    and notification-fd; at shutdown pre-shutdown, cont-finish.d (services still up),
    the services, post-shutdown."""
    order = tmp_path / "order"
    write_script(tmp_path / "my_init.d" / "50-my-init", f"echo my_init >> {order}\n")
    write_script(tmp_path / "cont-init.d" / "00-cont-init", f"echo cont-init >> {order}\n")
    write_script(tmp_path / "rc.local", f"echo rc.local >> {order}\n")
    write_script(tmp_path / "pre_shutdown.d" / "a", f"echo pre-shutdown >> {order}\n")
    write_script(tmp_path / "post_shutdown.d" / "a", f"echo post-shutdown >> {order}\n")
    s6d = tmp_path / "services.d" / "s6svc"
    write_script(tmp_path / "cont-finish.d" / "a",
                 f"kill -0 $(cat {s6d}/ready) && echo cont-finish:svc-up >> {order}\n")
    svc(tmp_path, tag, "s6svc",
        f"trap 'kill $! 2>/dev/null; echo svc-stop >> {order}; exit 0' TERM\n" + READY
        + GATE + "echo >&3\nsleep 1000 & wait $!\n",
        base="services.d", finish='echo "$1 $2" >> finish.txt\n')
    (s6d / "notification-fd").write_text("3\n")
    b = box(flags=("--service-dir", str(tmp_path / "services.d")))
    assert read_lines(order) == ["my_init", "cont-init", "rc.local"]
    b.ready("s6svc", base="services.d")
    assert b.rec("s6svc")["ready"] is False
    (s6d / "go").touch()
    b.wait("s6svc", lambda r: r["ready"], 5, "s6svc ready")
    # finish runs after a kill, the service comes back (ready at once: `go` exists)
    old = b.rec("s6svc")["pid"]
    b.ok("kill", "s6svc")
    wait_for(lambda: read_lines(s6d / "finish.txt") == ["-1 9"], 5, "finish -1 9")
    b.wait("s6svc", lambda r: r["ready"] and r["pid"] != old, 5, "s6svc back and ready")
    b.ready("s6svc", base="services.d")
    b.stop()
    assert read_lines(order) == ["my_init", "cont-init", "rc.local", "pre-shutdown",
                                 "cont-finish:svc-up", "svc-stop", "post-shutdown"]
    assert read_lines(s6d / "finish.txt") == ["-1 9", "0 0"]


# =========================================================================================
# schema errors
# =========================================================================================
def test_schema_errors_show_as_fail_lines_and_others_boot(box, tmp_path: Path,
                                                          tag: str) -> None:
    files = {
        "typo": "usr: nobody\n",
        "wrongtype": "max_restarts: lots\n",
        "badpolicy": "restart: sometimes\n",
        "twoprobes": 'ready: {tcp: 8080, http: "http://127.0.0.1:8080/"}\n',
        "badyaml": "a: [\n",
        "orphan": "requires: [nosuch]\n",
        "ping": "after: [pong]\n",
        "pong": "requires: [ping]\n",
    }
    sdir = tmp_path / "service"
    for name, text in files.items():
        svc(tmp_path, tag, name, "touch started\n" + LONG, text)
    (svc(tmp_path, tag, "s6bad") / "notification-fd").write_text("three\n")
    svc(tmp_path, tag, "good")
    svc(tmp_path, tag, "good2", yaml="after: [good]\nrestart: on-failure\n")
    b = box()
    b.wait_running("good", "good2")
    r = b.svctl("status")
    assert r.returncode == len(files) + 1, r.stdout
    got = {line.split(": ", 2)[1]: line for line in r.stdout.splitlines()}

    def yml(name: str) -> str:
        return f"fail: {name}: {sdir / name / 'service.yaml'}: "

    assert got["typo"] == yml("typo") + "unknown key 'usr' (did you mean 'user'?)"
    assert got["wrongtype"] == (yml("wrongtype") + "key 'max_restarts' must be an integer "
                                "from 0 to 1000000, not a str")
    assert got["badpolicy"] == (yml("badpolicy") + "key 'restart' must be one of always, "
                                "on-failure, never, not 'sometimes'")
    assert got["twoprobes"] == yml("twoprobes") + "ready: choose one of tcp, http, not several"
    assert got["badyaml"].startswith(yml("badyaml") + "not valid YAML (line 2, column 1): ")
    assert got["s6bad"] == (f"fail: s6bad: {sdir / 's6bad' / 'notification-fd'}: "
                            "must hold a number from 3 to 1023")
    assert got["orphan"].endswith("depends on unknown service 'nosuch'")
    for name in ("ping", "pong"):
        assert got[name].startswith(f"fail: {name}: ")
        assert got[name].endswith("dependency cycle: ping -> pong -> ping")
    assert got["good"].startswith("run: good: (pid ")
    assert got["good2"].startswith("run: good2: (pid ")
    for name in [*files, "s6bad"]:
        assert not (sdir / name / "started").exists(), name
    assert "Traceback" not in b.run.err
    b.stop()


def test_dependency_errors_name_their_file(box, tmp_path: Path, tag: str) -> None:
    sdir = tmp_path / "service"
    svc(tmp_path, tag, "web", yaml="requires: [nosuch]\n")
    svc(tmp_path, tag, "ping", yaml="after: [pong]\n")
    svc(tmp_path, tag, "pong", yaml="after: [ping]\n")
    b = box()
    wait_for(lambda: b.rec("web")["error"], 5, "web's error")
    out = b.svctl("status", "web", "ping").stdout
    b.stop()
    assert_lines(out,
                 line_re(f"fail: web: {sdir / 'web' / 'service.yaml'}: "
                         "depends on unknown service 'nosuch'"),
                 line_re(f"fail: ping: {sdir / 'ping' / 'service.yaml'}: "
                         "dependency cycle: ping -> pong -> ping"))


def test_bad_pyinit_yaml_exits_2_with_one_error_line(pyinit_run, tmp_path: Path,
                                                     tag: str) -> None:
    service(tmp_path, tag, "web", "touch started\n" + LONG)
    for text, error in (
        ("wait_for_service: true\n",
         "unknown key 'wait_for_service' (did you mean 'wait_for_services'?)"),
        ("defaults:\n  restart: sometimes\n",
         "defaults: key 'restart' must be one of always, on-failure, never, not 'sometimes'"),
    ):
        conf = tmp_path / "pyinit.yaml"
        conf.write_text(text)
        run = pyinit_run("/bin/sh", "-c", "exec sleep 1000", tag,
                         flags=("--config", str(conf), "--cont-init-dir", str(tmp_path / "x"),
                                "--cont-finish-dir", str(tmp_path / "x")))
        assert run.wait(10) == 2
        lines = run.err.splitlines()
        assert lines[0].startswith("usage: pyinit ")
        assert lines[1:] == [f"pyinit: error: {conf}: {error}"]
    assert not (tmp_path / "service" / "web" / "started").exists()


# =========================================================================================
# /healthz, /readyz, /status
# =========================================================================================
def test_health_endpoint_readyz_follows_readiness(box, tmp_path: Path, tag: str) -> None:
    """`flip` is ready when its check finds the file `ok`. /readyz is 503 until then, 200
    once it is; removing `ok` and SIGKILLing flip makes its next run not ready: 503
    again (restart: always, so it is wanted up). `svctl down` of another service
    (wanted down) keeps /readyz at 200."""
    port = free_port()
    flip = svc(tmp_path, tag, "flip", yaml='ready: {check: "test -e ok", interval: 0.1}\n')
    svc(tmp_path, tag, "other")
    b = box(flags=("--health-listen", f"127.0.0.1:{port}"))
    b.ready("flip")
    assert http_get(port, "/healthz") == (200, b"ok\n")
    assert http_get(port, "/readyz") == (503, b"not ready\n")
    (flip / "ok").touch()
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 5, "/readyz 200")
    code, body = http_get(port, "/status")
    assert code == 200
    recs = {r["name"]: r for r in json.loads(body)["services"]}
    assert recs["flip"]["ready"] is True and recs["other"]["state"] == "run"

    b.ok("-w", "5", "down", "other")
    assert http_get(port, "/readyz")[0] == 200
    first = b.rec("flip")["pid"]
    (flip / "ok").unlink()
    b.ok("kill", "flip")
    b.wait("flip", lambda r: r["pid"] != first, 5, "flip to go down")
    assert http_get(port, "/readyz") == (503, b"not ready\n")
    b.wait("flip", lambda r: r["pid"] and r["state"] == "run", 5, "flip restarted")
    assert http_get(port, "/readyz")[0] == 503
    assert http_get(port, "/healthz")[0] == 200
    (flip / "ok").touch()
    wait_for(lambda: http_get(port, "/readyz")[0] == 200, 5, "/readyz 200 again")
    b.stop()


# =========================================================================================
# the main command waits for services
# =========================================================================================
def main_cmd(tmp: Path, tag: str) -> tuple[str, ...]:
    return ("/bin/sh", "-c", stamp_to(tmp / "main-started") + "exec sleep 1000", tag)


def slow_service(tmp: Path, tag: str) -> Path:
    """Ready once `go` exists; its check logs each run and stamps when it passes."""
    return svc(tmp, tag, "slow", check="echo x >> checks\ntest -e go || exit 1\n"
               "[ -e passed ] || " + stamp_to("passed"),
               yaml="ready: {check: true, interval: 0.1}\n")


def test_main_command_waits_for_services(box, tmp_path: Path, tag: str) -> None:
    slow = slow_service(tmp_path, tag)
    b = box(*main_cmd(tmp_path, tag))
    wait_for(lambda: len(read_lines(slow / "checks")) >= 3, 5, "three failed checks")
    assert not (tmp_path / "main-started").exists()
    (slow / "go").touch()
    wait_for(lambda: (tmp_path / "main-started").exists(), 5, "the main command")
    assert stamp(slow / "passed") <= stamp(tmp_path / "main-started")
    assert b.rec("slow")["ready"] is True
    b.stop(expect=128 + signal.SIGTERM)


def test_main_command_without_waiting(box, tmp_path: Path, tag: str) -> None:
    slow_service(tmp_path, tag)
    b = box(*main_cmd(tmp_path, tag), flags=("--no-wait-for-services",))
    wait_for(lambda: (tmp_path / "main-started").exists(), 5, "the main command")
    assert b.rec("slow")["ready"] is False
    b.stop(expect=128 + signal.SIGTERM)
    assert "services not ready" not in b.run.err


def test_main_command_starts_after_services_ready_timeout(box, tmp_path: Path,
                                                          tag: str) -> None:
    slow_service(tmp_path, tag)
    t = time.time()
    b = box(*main_cmd(tmp_path, tag), flags=("--services-ready-timeout", "1"))
    wait_for(lambda: (tmp_path / "main-started").exists(), 5, "the main command")
    waited = stamp(tmp_path / "main-started") - t
    assert 1.0 <= waited < 3.5, waited
    assert b.rec("slow")["ready"] is False
    assert ("pyinit: warning: services not ready after 1s: starting the main command anyway"
            " (not ready: slow)\n" in b.run.err)
    b.stop(expect=128 + signal.SIGTERM)


# =========================================================================================
# svctl check
# =========================================================================================
def test_svctl_check_needs_ready(box, tmp_path: Path, tag: str) -> None:
    """The probe is a command, not ./check, so only pyinit's readiness decides."""
    d = svc(tmp_path, tag, "api", yaml='ready: {check: "test -e go", interval: 0.1}\n')
    b = box()
    pid = b.ready("api")
    r = b.svctl("-w", "0.5", "check", "api")
    assert r.returncode == 1
    assert_lines(r.stdout, line_re(f"timeout: run: api: (pid {pid}) ", SEC, ", not ready"))
    # a waiting check returns once the service becomes ready
    waiting = subprocess.Popen(
        [PY, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), "-w", "10", "check", "api"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_for(lambda: psutil.Process(waiting.pid).net_connections("unix"), 10,
                 "svctl to connect")
        assert waiting.poll() is None
        (d / "go").touch()
        out, _ = waiting.communicate(timeout=10)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 0
    assert_lines(out, line_re(f"ok: run: api: (pid {pid}) ", SEC))
    assert_lines(b.ok("check", "api"), line_re(f"ok: run: api: (pid {pid}) ", SEC))
    b.stop()


# =========================================================================================
# process setup: environment, env_file, working_directory, umask, nice, rlimits
# =========================================================================================
def test_process_setup_from_service_yaml(box, tmp_path: Path, tag: str) -> None:
    (tmp_path / "pyinit.yaml").write_text(
        "defaults:\n  environment: {SHARED: from-defaults, OVERRIDE: from-defaults}\n")
    d = tmp_path / "service" / "app"
    svc(tmp_path, tag, "app",
        f"trap 'kill $! 2>/dev/null; exit 0' TERM\necho $$ > {d}/ready\nsleep 1000 & wait $!\n",
        yaml="""\
        environment: {GREETING: hello, OVERRIDE: from-yaml, NUMBER: 42}
        env_file: app.env
        working_directory: work
        umask: "027"
        nice: 5
        rlimits: {nofile: [256, 512]}
        """)
    write_script(d / "run", f"exec /bin/sh {d}/main.sh {tag} app\n")
    (d / "work").mkdir()
    (d / "app.env").write_text('# comment\nOVERRIDE=from-file\nFROM_FILE="quoted value"\n'
                               "export EXPORTED=1\n")
    svc(tmp_path, tag, "plain")
    b = box()
    p = host_proc(b, "app")
    env = p.environ()
    assert env["GREETING"] == "hello" and env["NUMBER"] == "42"
    assert env["OVERRIDE"] == "from-yaml"  # environment wins over env_file and defaults
    assert env["FROM_FILE"] == "quoted value" and env["EXPORTED"] == "1"
    assert env["SHARED"] == "from-defaults"
    assert p.cwd() == str(d / "work")
    status = dict(line.split(":\t", 1) for line in
                  Path(f"/proc/{p.pid}/status").read_text().splitlines() if ":\t" in line)
    assert status["Umask"] == "0027"
    assert p.nice() == 5
    assert p.rlimit(psutil.RLIMIT_NOFILE) == (256, 512)

    plain = host_proc(b, "plain")
    penv = plain.environ()
    assert "GREETING" not in penv and "FROM_FILE" not in penv
    assert penv["SHARED"] == "from-defaults" and penv["OVERRIDE"] == "from-defaults"
    assert plain.cwd() == str(tmp_path / "service" / "plain")
    assert plain.nice() == psutil.Process(b.run.init_pid).nice()
    b.stop()


# =========================================================================================
# stop_signal and stop_timeout
# =========================================================================================
def test_stop_signal_and_stop_timeout(box, tmp_path: Path, tag: str) -> None:
    """USR1, not INT: a harness that starts the tests in the background (sh `&`) has
    SIGINT ignored, and pyinit passes ignored signals on, so a trap could not catch it."""
    sig = "trap 'echo {0} >> sig; kill $! 2>/dev/null; exit 0' {0}\n"
    sigsvc = svc(tmp_path, tag, "sigsvc",
                 sig.format("USR1") + sig.format("TERM") + READY + "sleep 1000 & wait $!\n",
                 "stop_signal: SIGUSR1\n")
    svc(tmp_path, tag, "stubborn", "trap '' TERM\n" + READY
        + "while :; do sleep 1000 & wait $!; done\n", "stop_timeout: 0.5\n")
    b = box(flags=("--kill-timeout", "5"))
    b.ready("sigsvc")
    b.ready("stubborn")
    assert_lines(b.ok("-w", "5", "down", "sigsvc"),
                 line_re("ok: down: sigsvc: ", SEC, ", normally up"))
    assert read_lines(sigsvc / "sig") == ["USR1"]
    assert b.rec("sigsvc")["last_exit_code"] == 0

    t = time.monotonic()
    assert b.ok("-w", "5", "down", "stubborn").startswith("ok: down: stubborn: ")
    took = time.monotonic() - t
    assert 0.4 < took < 2.5, took  # 0.5 s, not the 5 s kill timeout
    assert b.rec("stubborn")["last_signal"] == signal.SIGKILL

    b.ok("-w", "5", "up", "sigsvc")
    b.ready("sigsvc")
    b.stop()
    assert read_lines(sigsvc / "sig") == ["USR1", "USR1"]  # the shutdown uses it too
