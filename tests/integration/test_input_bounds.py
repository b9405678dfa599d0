# ruff: noqa: F811 - `box` is a fixture imported from test_service_config
"""Bounded, strict input with pyinit as a real PID 1 (issue 17 findings 2, 3 and 5, issue
18 item 10): alias bombs in service.yaml, a service.yaml that is a FIFO, numeric ids in
non-ASCII digits or out of range, several problems in one file, and environment values
too large for execve. In each case PID 1 keeps reaping and answering, the other
services and the main command still start, and every message is one bounded line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import wait_for
from test_service_config import box, svc  # noqa: F401 - box is a fixture
from test_services import LONG
from test_setuser import setuser

pytestmark = pytest.mark.pid1

MAX_LOG_LINE = 1000  # no line pyinit writes about bad input comes near this


def bomb(levels: int) -> str:
    """The billion-laughs service.yaml of issue 17: 288 bytes at 7 levels, 360 at 9."""
    text = "restart:\n  - &a [" + ",".join(["laugh"] * 9) + "]\n"
    for prev, name in zip("abcdefgh", "bcdefghi"[: levels - 1]):
        text += f"  - &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


ORPHAN = '(sh -c "sleep 0.1" "$1" &)\n'  # a child that outlives its parent: PID 1 reaps it


@pytest.mark.parametrize("levels, size", [(7, 288), (9, 360)])
def test_alias_bomb_is_refused_and_pid1_keeps_reaping_and_answering(
    box, tmp_path: Path, tag: str, levels: int, size: int
) -> None:
    assert len(bomb(levels)) == size
    svc(tmp_path, tag, "bomb", "touch started\n" + LONG, bomb(levels))
    svc(tmp_path, tag, "good", ORPHAN + LONG)
    b = box()
    b.wait_running("good", timeout=30)
    path = tmp_path / "service" / "bomb" / "service.yaml"
    rec = b.rec("bomb")
    assert rec["error"] == f"{path}: more than 10000 YAML values, with aliases expanded"
    assert rec["pid"] is None and not (tmp_path / "service" / "bomb" / "started").exists()
    r = b.svctl("status")
    assert r.returncode == 1 and len(r.stdout) < 2000, r.stdout[:2000]
    assert b.svctl("check", "good").returncode == 0
    r = b.svctl("status", "--json")
    assert r.returncode == 0 and len(r.stdout) < 8000
    assert {rec["name"] for rec in json.loads(r.stdout)} == {"bomb", "good"}
    from pyinit.control.protocol import request

    def reaped() -> bool:
        return request(b.sock, {"cmd": "ping"}, timeout=5)["orphans_reaped"] >= 1

    wait_for(reaped, 10, "PID 1 to reap the orphan")
    b.stop()
    assert "Traceback" not in b.run.err
    assert max(len(line) for line in b.run.err.splitlines()) < MAX_LOG_LINE


def test_a_service_yaml_fifo_does_not_block_pid1(box, tmp_path: Path, tag: str) -> None:
    d = svc(tmp_path, tag, "fifo", "touch started\n" + LONG)
    os.mkfifo(d / "service.yaml")
    svc(tmp_path, tag, "good")
    b = box()
    b.wait_running("good", timeout=30)
    assert b.rec("fifo")["error"] == (
        f"{d / 'service.yaml'}: cannot read: service.yaml is not a regular file"
    )
    b.stop()


@pytest.mark.parametrize(
    "yaml, why",
    [
        ('user: "٠"\n', "key 'user' must be a name or a number in digits 0-9, not '٠'"),
        ('user: nobody\ngroup: "٠"\n', "key 'group' must be a name or a number in digits 0-9"),
        (
            "user: 99999999999\n",
            "key 'user' must be a name or a number from 0 to 4294967294, not 99999999999",
        ),
        ("user: '4294967295'\n", "must be a name or a number from 0 to 4294967294"),
        ("log: {user: '²'}\n", "log: key 'user' must be a name or a number in digits 0-9"),
    ],
)
def test_bad_numeric_ids_reject_the_definition(
    box, tmp_path: Path, tag: str, yaml: str, why: str
) -> None:
    d = svc(tmp_path, tag, "web", "id -u > uid; id -g > gid\n" + LONG, yaml)
    svc(tmp_path, tag, "good")
    b = box()
    b.wait_running("good", timeout=30)
    rec = b.rec("web")
    assert rec["error"] and rec["error"].startswith(f"{d / 'service.yaml'}: ")
    assert why in rec["error"], rec["error"]
    assert rec["pid"] is None and not (d / "uid").exists()
    b.stop()
    assert "Traceback" not in b.run.err


def test_every_problem_of_a_service_yaml_is_reported(box, tmp_path: Path, tag: str) -> None:
    d = svc(tmp_path, tag, "web", LONG, "restart: sometimes\nnice: 30\nusr: x\nlog: {mode: fil}\n")
    svc(tmp_path, tag, "good")
    b = box()
    b.wait_running("good", timeout=30)
    where = d / "service.yaml"
    problems = [
        f"{where}: key 'restart' must be one of always, on-failure, never, not 'sometimes'",
        f"{where}: key 'nice' must be an integer from -20 to 19, not 30",
        f"{where}: unknown key 'usr' (did you mean 'user'?)",
        f"{where}: log: key 'mode' must be one of inherit, prefix, file, not 'fil'",
    ]
    assert b.rec("web")["error"] == "\n".join(problems)
    out = b.svctl("status", "web").stdout
    assert out == "fail: web: " + "; ".join(problems) + "\n"
    b.stop()
    logged = [line for line in b.run.err.splitlines() if "[web] cannot supervise: " in line]
    assert [line.split("cannot supervise: ", 1)[1] for line in logged] == problems


def fill_env(tmp: Path, case: str) -> None:
    env_dir = tmp / "container_environment"
    env_dir.mkdir()
    (env_dir / "GOOD").write_text("yes")
    if case == "one-ca-bundle":
        pem = "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBa\n"
        (env_dir / "CA_BUNDLE").write_text(pem * (200 * 1024 // len(pem) + 1))
    else:  # 30 values of 100 KiB: each fits, together they are over ARG_MAX (2 MiB)
        for i in range(30):
            (env_dir / f"BIG{i:02}").write_text("b" * 100 * 1024)


@pytest.mark.parametrize("case", ["one-ca-bundle", "over-arg-max"])
def test_environment_too_large_for_exec_is_cut_and_everything_starts(
    pyinit_run, tmp_path: Path, tag: str, case: str
) -> None:
    fill_env(tmp_path, case)
    d = svc(
        tmp_path,
        tag,
        "web",
        'echo "$GOOD" > got; echo >&3\n' + LONG,
        "env_file: app.env\nenvironment: {MINE: '1'}\nready: {notification_fd: 3}\n",
    )
    (d / "app.env").write_text("APP_BUNDLE=" + "a" * 200 * 1024 + "\nAPP=ok\n")
    main = tmp_path / "main.txt"
    run = pyinit_run(
        "--services-ready-timeout",
        "20",
        "--",
        "sh",
        "-c",
        f'echo "$GOOD" > {main}; test -e {d / "got"} || exit 9',
        tag,
    )
    assert run.wait(60) == 0, run.err
    assert main.read_text() == "yes\n"
    assert (d / "got").read_text() == "yes\n"
    warnings = [
        line for line in run.err.splitlines() if "not passing" in line or "skipping" in line
    ]
    if case == "one-ca-bundle":
        assert sum("CA_BUNDLE" in line for line in warnings) == 1, run.err
    else:
        assert any("ARG_MAX" in line and line.startswith("pyinit: error: ") for line in warnings), (
            run.err
        )
    assert sum("[web] not passing APP_BUNDLE" in line for line in warnings) == 1, run.err
    assert "Traceback" not in run.err
    assert max(len(line) for line in run.err.splitlines()) < MAX_LOG_LINE


@pytest.mark.skipif(os.geteuid() != 0, reason="setuser needs root")
@pytest.mark.parametrize(
    "spec, message",
    [
        ("nobody:٠", "gid '٠' is written in digits other than 0-9"),  # was: runs with gid 0
        ("٠", "uid '٠' is written in digits other than 0-9"),
        ("4294967296", "uid must be a number from 0 to 4294967294, not '4294967296'"),
        ("nobody:99999999999", "gid must be a number from 0 to 4294967294, not '99999999999'"),
        ("²", "uid '²' is written in digits other than 0-9"),
    ],
)
def test_setuser_bad_ids_exit_111_with_one_line(spec: str, message: str) -> None:
    r = setuser(spec, "id")
    assert (r.returncode, r.stdout, r.stderr) == (111, "", f"setuser: error: {message}\n")


def test_status_json_of_a_bad_definition_is_bounded(box, tmp_path: Path, tag: str) -> None:
    """25 problems: 20 lines and a count, so the status record stays small."""
    d = svc(tmp_path, tag, "web", LONG, "".join(f"bogus{i}: 1\n" for i in range(25)))
    b = box()
    rec = b.wait("web", lambda r: r["error"], 10, "web's error")
    lines = rec["error"].splitlines()
    assert len(lines) == 21 and lines[-1] == "and 5 more problems"
    assert lines[0].startswith(f"{d / 'service.yaml'}: unknown key 'bogus0'")
    assert len(json.dumps(rec)) < 20000
    b.stop()


def test_every_problem_of_pyinit_yaml_is_reported(pyinit_run, tmp_path: Path, tag: str) -> None:
    svc(tmp_path, tag, "web", "touch started\n" + LONG)
    conf = tmp_path / "pyinit.yaml"
    conf.write_text("wait_for_service: true\ndefaults:\n  restart: sometimes\n  nice: 30\n")
    none = str(tmp_path / "none")
    run = pyinit_run(
        "/bin/sh",
        "-c",
        "exec sleep 1000",
        tag,
        flags=("--config", str(conf), "--cont-init-dir", none, "--cont-finish-dir", none),
    )
    assert run.wait(20) == 2
    lines = run.err.splitlines()
    assert lines[0].startswith("usage: pyinit ")
    assert lines[1:] == [
        f"pyinit: error: {conf}: unknown key 'wait_for_service' (did you mean "
        "'wait_for_services'?)",
        f"pyinit: error: {conf}: defaults: key 'restart' must be one of always, on-failure, "
        "never, not 'sometimes'",
        f"pyinit: error: {conf}: defaults: key 'nice' must be an integer from -20 to 19, not 30",
    ]
    assert not (tmp_path / "service" / "web" / "started").exists()


def test_pending_waits_per_connection_are_bounded(box, tmp_path: Path, tag: str) -> None:
    """Each pending wait is re-checked at every state change: one connection may hold 8;
    the 9th is refused at once, and a name listed 1000 times is one target."""
    import socket

    svc(tmp_path, tag, "web")
    b = box()
    b.wait_running("web")
    wait = {"v": 1, "cmd": "wait", "action": "d", "services": ["web"] * 1000, "wait": 60}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20)
        s.connect(b.sock)
        s.sendall((json.dumps(wait) + "\n").encode() * 9)
        reply = b""
        while b"\n" not in reply:
            chunk = s.recv(65536)
            assert chunk, "pyinit closed the connection"
            reply += chunk
        first = json.loads(reply.split(b"\n", 1)[0])
        assert first == {
            "ok": False,
            "error": "at most 8 waits may be pending on one connection",
            "v": 1,
        }
        assert b.rec("web")["pid"]  # still answering, web untouched
    b.stop()
