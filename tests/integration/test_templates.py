"""Service templates, instances, counted instances, `svctl scale` and `setup` (issue 12),
with pyinit as a real PID 1 (and a subreaper where it matters).

Every process a test starts runs `main.sh TAG ...`, so it carries the test's tag (leak
check). Instances share their template's directory, so what they write is named after
their instance.
"""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
from helpers import wait_for, write_script
from test_services import Box, read_lines

from pyinit.control.protocol import request

pytestmark = pytest.mark.pid1

# main.sh TAG SERVICE INSTANCE: once its trap is set, records what it got (seen-INSTANCE),
# then runs until TERM (recorded in `stopped`).
WORKER = """\
trap 'echo "$3" >> stopped; kill $! 2>/dev/null; exit 0' TERM
echo "$3|$PYINIT_INSTANCE|$PYINIT_SERVICE" > "seen-$3"
echo "hello from $3"
sleep 1000 & wait $!
"""
RUN = 'exec /bin/sh ./main.sh {tag} "$PYINIT_SERVICE" "$1"\n'


@pytest.fixture
def box(pyinit_run, tmp_path: Path, tag: str):
    def start(*args: str, flags: tuple = (), **kw) -> Box:
        (tmp_path / "service").mkdir(exist_ok=True)
        run = pyinit_run(
            *args,
            flags=("--config", str(tmp_path / "pyinit.yaml"), "--kill-timeout", "2", *flags),
            **kw,
        )
        b = Box(run, tmp_path, tag, tmp_path / "run")
        wait_for(lambda: os.path.exists(b.sock), 10, "the control socket")
        return b

    return start


def template(
    tmp: Path, tag: str, name: str, body: str = WORKER, yaml: str | None = None, **scripts: str
) -> Path:
    """A service dir (a template when name ends in '@') whose run passes $1 on."""
    d = tmp / "service" / name
    d.mkdir(parents=True)
    write_script(d / "main.sh", body)
    write_script(d / "run", RUN.format(tag=tag))
    for script, text in scripts.items():
        write_script(d / script, text)
    if yaml is not None:
        (d / "service.yaml").write_text(textwrap.dedent(yaml))
    return d


def running(b: Box, *names: str) -> bool:
    recs = b.try_status()
    return all(n in recs and recs[n]["state"] == "run" and recs[n]["pid"] for n in names)


def run_line(name: str, log: bool = False) -> re.Pattern:
    """sv's line for a running service: `run: NAME: (pid N) Ns` (then its logger's)."""
    logger = r"; run: log: \(pid \d+\) \d+s" if log else ""
    return re.compile(rf"run: {re.escape(name)}: \(pid \d+\) \d+s{logger}")


def status_lines(b: Box, *args: str) -> list[str]:
    return b.svctl("status", *args).stdout.splitlines()


def test_template_instances_from_symlinks_and_svctl_up(box, tmp_path: Path, tag: str) -> None:
    d = template(
        tmp_path, tag, "worker@", finish='echo "$1 $2 $3 $PYINIT_INSTANCE" >> "finished-$3"\n'
    )
    # one logger per instance, each with the instance as $1
    write_script(
        d / "log" / "main.sh", 'while read -r line; do echo "$line" >> "../logged-$3"; done\n'
    )
    write_script(d / "log" / "run", f'exec /bin/sh ./main.sh {tag} log "$1"\n')
    (tmp_path / "service" / "worker@a").symlink_to("worker@")
    (tmp_path / "service" / "worker@b").symlink_to(d)  # absolute works too
    b = box()
    wait_for(lambda: running(b, "worker@a", "worker@b"), 10, "the symlinked instances")
    assert sorted(b.status()) == ["worker@a", "worker@b"]  # the template is not started

    assert b.svctl("up", "worker@x").returncode == 0
    wait_for(lambda: running(b, "worker@x"), 10, "the on-demand instance")
    for inst in ("a", "b", "x"):
        seen = wait_for(lambda i=inst: read_lines(d / f"seen-{i}"), 5, f"seen-{inst}")
        assert seen == [f"{inst}|{inst}|worker@{inst}"]
    lines = status_lines(b)
    assert len(lines) == 3
    for line, inst in zip(lines, "abx"):
        assert run_line(f"worker@{inst}", log=True).fullmatch(line), line
        assert wait_for(lambda i=inst: read_lines(d / f"logged-{i}"), 5) == [f"hello from {inst}"]
    by_path = status_lines(b, str(tmp_path / "service" / "worker@b"))
    assert len(by_path) == 1 and by_path[0].startswith(f"run: {tmp_path}/service/worker@b: (pid")
    rec = b.rec("worker@x")
    assert (rec["instance"], rec["group"]) == ("x", "worker@")
    # the template's name means all of its instances
    assert [ln.split(":")[1] for ln in status_lines(b, "worker@")] == [
        " worker@a",
        " worker@b",
        " worker@x",
    ]

    # finish gets runit's two arguments, then the instance
    b.ok("down", "worker@x")
    assert wait_for(lambda: read_lines(d / "finished-x"), 5, "finish") == ["0 0 x x"]
    assert "worker@x" in b.status()  # down, still listed until a reload
    b.ok("rescan")
    wait_for(lambda: "worker@x" not in b.try_status(), 5, "worker@x to be forgotten")
    assert running(b, "worker@a", "worker@b")

    # bad instance names and templates of nothing
    r = b.svctl("up", "worker@.hidden", "nosuch@x")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "fail: worker@.hidden: the instance name must not contain '/' or start with '.'",
        "fail: nosuch@x: unable to change to service directory: file does not exist",
    ]
    assert sorted(b.status()) == ["worker@a", "worker@b"]
    assert (d / "supervise").exists() is False  # instances share the dir: no supervise/
    b.stop()
    assert sorted(read_lines(d / "stopped")) == ["a", "b", "x"]


def test_counted_instances_scale_up_and_down_highest_first(box, tmp_path: Path, tag: str) -> None:
    d = template(tmp_path, tag, "worker", yaml="instances: 3\n")
    b = box()
    names = [f"worker@{i}" for i in range(1, 6)]
    wait_for(lambda: running(b, *names[:3]), 10, "three instances")
    lines = status_lines(b, "worker")
    assert [ln.split(": ")[1] for ln in lines] == names[:3]
    assert [ln.split(": ")[1] for ln in status_lines(b, str(d))] == names[:3]  # by its path
    assert all(run_line(n).fullmatch(ln) for n, ln in zip(names, lines)), lines
    assert b.rec("worker@3")["group"] == "worker"
    for i in (1, 2, 3):
        assert wait_for(lambda i=i: read_lines(d / f"seen-{i}"), 5) == [f"{i}|{i}|worker@{i}"]

    b.ok("scale", "worker", "5")
    wait_for(lambda: running(b, *names), 10, "five instances")
    wait_for(lambda: all((d / f"seen-{i}").exists() for i in (4, 5)), 5, "their traps")
    pids = {n: b.rec(n)["pid"] for n in names[:2]}
    b.ok("scale", "worker", "2")
    wait_for(lambda: sorted(b.try_status()) == names[:2], 10, "two instances left")
    assert read_lines(d / "stopped") == ["5", "4", "3"]  # gracefully, highest first
    assert {n: b.rec(n)["pid"] for n in names[:2]} == pids  # the others untouched
    assert "[worker] scaling to 2 instances" in b.run.err

    # scale survives a rescan; errors name the service
    b.ok("rescan")
    assert sorted(b.status()) == names[:2]
    template(tmp_path, tag, "plain")
    b.ok("rescan")
    for args, rc, out in (
        (
            ("scale", "plain", "2"),
            1,
            "fail: plain: not a counted service (no 'instances' in its service.yaml)\n",
        ),
        (
            ("scale", "nosuch", "2"),
            1,
            "fail: nosuch: unable to change to service directory: file does not exist\n",
        ),
        (("scale", "worker", "1001"), 100, ""),
        (("scale", "worker"), 100, ""),
    ):
        r = b.svctl(*args)
        assert (r.returncode, r.stdout) == (rc, out), args
    for req, error in (
        ({"count": True}, "'count': the count must be an integer from 0 to 1000"),
        ({"count": 2, "services": ["a", "b"]}, "'scale' takes exactly one service"),
    ):
        reply = request(b.sock, {"cmd": "scale", "services": ["worker"], **req})
        assert reply == {"ok": False, "error": error, "v": 1}
    assert sorted(b.status()) == ["plain", *names[:2]]
    b.stop()


def test_after_a_counted_service_waits_for_every_instance(box, tmp_path: Path, tag: str) -> None:
    # each instance is ready once its file ready-N exists (a check probe)
    template(
        tmp_path,
        tag,
        "worker",
        check='[ -e "go-$1" ]\n',
        yaml="""\
        instances: 3
        ready: {check: true, interval: 0.05}
        """,
    )
    template(tmp_path, tag, "web", yaml="after: [worker]\n")
    b = box()
    wait_for(lambda: running(b, "worker@1", "worker@2", "worker@3"), 10, "the workers")
    waiting = r"down: web: \d+s, normally up, want up, waiting for worker@1, worker@2, worker@3"
    assert re.fullmatch(waiting, status_lines(b, "web")[0]), status_lines(b, "web")
    d = tmp_path / "service" / "worker"
    (d / "go-3").touch()
    (d / "go-1").touch()
    b.wait("web", lambda r: r["waiting_for"] == ["worker@2"], 5, "web to wait for worker@2")
    assert b.rec("web")["pid"] is None
    (d / "go-2").touch()
    wait_for(lambda: running(b, "web"), 5, "web to start")
    b.stop()


SETUP_FAILS = """\
echo "setup of $1 ($PYINIT_INSTANCE) says hello"
[ -e ok ] || exit 3
"""


@pytest.mark.parametrize("pid1", [True, False], ids=["pid1", "subreaper"])
def test_setup_failures_back_off_and_its_output_goes_with_the_service(
    box, tmp_path: Path, tag: str, pid1: bool
) -> None:
    (tmp_path / "pyinit.yaml").write_text("defaults: {log: prefix}\n")
    d = template(tmp_path, tag, "job@", setup=SETUP_FAILS, yaml="backoff: {initial: 0.2}\n")
    (tmp_path / "service" / "job@1").symlink_to("job@")
    b = box(pid1=pid1)
    rec = b.wait("job@1", lambda r: r["restarts"] >= 2, 10, "two failed starts")
    assert rec["group"] == "job@" and rec["instance"] == "1"
    assert rec["last_exit_code"] == 3 and rec["state"] in ("down", "setup")
    assert not (d / "seen-1").exists()  # run never started
    wait_for(lambda: "[job@1] setup exited with exit code 3" in b.run.err, 5, "the warning")
    wait_for(lambda: "job@1 | setup of 1 (1) says hello" in b.run.out, 5, "setup's output")
    delays = [line for line in status_lines(b, "job@1") if line]
    assert re.fullmatch(
        r"(down: job@1: \d+s, normally up, want up|"
        r"setup: job@1: \(pid \d+\) \d+s)",
        delays[0],
    ), delays
    (d / "ok").touch()
    wait_for(lambda: running(b, "job@1"), 10, "run after a good setup")
    assert wait_for(lambda: read_lines(d / "seen-1"), 5, "run") == ["1|1|job@1"]
    b.stop()


def test_setup_timeout_and_stop_during_setup(box, tmp_path: Path, tag: str) -> None:
    # a setup that hangs is SIGKILLed after ready.start_timeout: a failed start
    d = template(
        tmp_path,
        tag,
        "slow",
        yaml="""\
        ready: {start_timeout: 0.3}
        restart: never
        """,
        setup=f"exec /bin/sh ./main.sh {tag} setup-slow\n",
    )
    (d / "main.sh").write_text('[ "$2" = setup-slow ] && exec sleep 1000\n' + WORKER)
    template(
        tmp_path,
        tag,
        "held",
        setup=f"exec /bin/sh ./main.sh {tag} setup-held\n",
        body="[ \"$2\" = setup-held ] && { trap 'echo TERM > got; exit 0' TERM; "
        "echo > trapped; sleep 1000 & wait $!; }\n" + WORKER,
    )
    b = box()
    rec = b.wait("slow", lambda r: r["failed"] is not None, 10, "slow to fail")
    assert rec["failed"] == "setup did not exit within 0.3s"
    assert status_lines(b, "slow") == ["fail: slow: setup did not exit within 0.3s"]
    b.wait("held", lambda r: r["state"] == "setup" and r["pid"], 10, "held in setup")
    wait_for(lambda: (tmp_path / "service" / "held" / "trapped").exists(), 5, "setup's trap")
    assert re.fullmatch(r"setup: held: \(pid \d+\) \d+s", status_lines(b, "held")[0])
    assert b.svctl("-w", "5", "down", "held").returncode == 0
    assert read_lines(tmp_path / "service" / "held" / "got") == ["TERM"]
    rec = b.rec("held")
    assert (rec["state"], rec["want"], rec["pid"]) == ("down", "d", None)
    assert not (tmp_path / "service" / "held" / "seen-").exists()  # run never started
    b.stop()


def test_bad_instance_definitions(box, tmp_path: Path, tag: str) -> None:
    template(tmp_path, tag, "tpl@", yaml="instances: 2\n")
    (tmp_path / "service" / "tpl@1").symlink_to("tpl@")
    template(tmp_path, tag, "worker", yaml="instances: 2\n")
    template(tmp_path, tag, "worker@2")  # a directory of that name wins over the count
    b = box()
    wait_for(lambda: running(b, "worker@1", "worker@2"), 10, "worker@1 and worker@2")
    where = tmp_path / "service" / "tpl@1" / "service.yaml"
    assert (
        f"fail: tpl@1: {where}: key 'instances' does not apply to a template "
        "(its instances come from symlinks or svctl up)" in status_lines(b)
    )
    assert b.rec("worker@2")["instance"] is None  # the plain directory
    assert "instance 'worker@2' clashes with a service of that name: ignored" in b.run.err
    b.stop()


SLOW_STOP = """\
trap 'while [ ! -e release ]; do sleep 0.02; done; echo "$3" >> stopped; kill $!; exit 0' TERM
echo "$3|$PYINIT_INSTANCE|$PYINIT_SERVICE" > "seen-$3"
sleep 1000 & wait $!
"""


def test_an_instance_wanted_again_while_it_stops_comes_back(box, tmp_path: Path, tag: str) -> None:
    d = template(tmp_path, tag, "worker", body=SLOW_STOP, yaml="instances: 2\nstop_timeout: 30\n")
    b = box()
    wait_for(lambda: (d / "seen-2").exists() and running(b, "worker@2"), 10, "worker@2")
    old = b.rec("worker@2")["pid"]
    b.ok("scale", "worker", "1")
    b.wait("worker@2", lambda r: r["got_term"], 5, "worker@2 to be stopping")
    b.ok("scale", "worker", "2")
    assert b.rec("worker@2")["pid"] == old  # still stopping: one process per name
    (d / "release").touch()
    rec = b.wait("worker@2", lambda r: r["pid"] not in (None, old) and r["state"] == "run")
    assert rec["want"] == "u" and read_lines(d / "stopped") == ["2"]
    b.stop()
