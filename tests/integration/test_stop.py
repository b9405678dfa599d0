"""Stopping, in every state a process can be in, as a real PID 1 (and as a
subreaper): the shutdown gate (nothing starts once kill-all has begun), stopped
(SIGSTOP) processes, processes in a session of their own, processes that ignore
the stop signal; and the control socket's fairness between users."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from helpers import Run, tagged_processes, wait_for, write_script

PY = sys.executable
SVCTL = "from pyinit.cli.svctl import main; main()"
# Ignores SIGTERM, records that it started, then waits (tagged, to find leaks).
STUBBORN = ("trap '' TERM\necho {what} >> {events}\n"
            "exec {py} -c 'import time; time.sleep(1000)' {tag} {what}\n")


def finish(run: Run, timeout: float = 30) -> tuple[int, str]:
    code = run.wait(timeout)
    err = run.err
    assert "Traceback" not in err, err
    return code, err


def lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


# --- finding 6: nothing starts after kill-all ----------------------------------------


@pytest.mark.parametrize("pid1", [True, False], ids=["pid1", "subreaper"])
def test_nothing_starts_after_kill_all(pyinit_run, tmp_path: Path, tag: str,
                                       pid1: bool) -> None:
    """run and log/run ignore SIGTERM and the main command uses up the shutdown
    budget: kill-all SIGKILLs them, and then neither `finish` nor a new logger may
    start (in subreaper mode such a logger would outlive pyinit)."""
    events = tmp_path / "events"
    svc = tmp_path / "service" / "svc"
    fmt = {"events": events, "py": PY, "tag": tag}
    write_script(svc / "run", STUBBORN.format(what="run", **fmt))
    write_script(svc / "finish", STUBBORN.format(what="finish", **fmt))
    write_script(svc / "log" / "run", STUBBORN.format(what="logger", **fmt))
    main = f"trap '' TERM; echo main >> {events}; exec sleep 1000"
    run = pyinit_run("sh", "-c", main, pid1=pid1,
                     flags=("--kill-timeout", "1", "--shutdown-timeout", "1",
                            "--kill-all-timeout", "0.5"))
    wait_for(lambda: len(tagged_processes(tag)) == 2 and len(lines(events)) == 3, 10,
             "the service, its logger and the main command")
    run.kill(signal.SIGTERM)
    code, err = finish(run)
    assert code == 128 + signal.SIGKILL  # the main command ignored SIGTERM
    assert "sending SIGKILL" in err
    assert sorted(lines(events)) == ["logger", "main", "run"]
    assert tagged_processes(tag) == []


# --- finding 4: the control socket's fairness between users --------------------------

HOG = """
import json, os, socket, sys
path, report, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
# a wait that never ends, then a ping: a held connection answers the ping (replies to
# waits come when the wait ends), a refused one has an error line or nothing, then EOF
req = (json.dumps({"v": 1, "cmd": "wait", "action": "d", "services": ["web"],
                   "wait": 3600}) + "\\n" + json.dumps({"v": 1, "cmd": "ping"}) + "\\n").encode()
conns, held, refused = [], [], []
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # blocking: waits for the backlog
    try:
        s.connect(path)
        s.sendall(req)
        conns.append(s)
    except OSError as exc:
        refused.append(str(exc))
for s in conns:
    s.settimeout(10)
    try:
        line = s.makefile("rb").readline().decode(errors="replace").strip()
    except OSError as exc:
        line = str(exc)
    if line and json.loads(line).get("ok"):
        held.append(s)
    else:
        refused.append(line or "EOF")
with open(report + ".tmp", "w") as f:
    json.dump({"held": len(held), "refused": refused[:3], "nrefused": len(refused)}, f)
os.rename(report + ".tmp", report)
sys.stdin.read()  # hold them until the test is done
"""


@pytest.fixture(scope="module")
def hog_user():
    import pwd
    import subprocess

    name = "pyinit-hog"
    subprocess.run(["userdel", "-r", name], capture_output=True)
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True)
    yield pwd.getpwnam(name).pw_uid
    subprocess.run(["userdel", "-r", name], capture_output=True)


def test_unprivileged_user_cannot_lock_root_out(pyinit_run, tmp_path: Path, tag: str,
                                                hog_user: int) -> None:
    """A user of a widened control socket holds as many `wait` requests as it can:
    it gets MAX_PER_USER, the rest are refused with a reason, and root's status,
    check and shutdown-container still get through."""
    import json
    import shutil
    import subprocess

    from helpers import ROOT

    from pyinit import control

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv(1) is not installed")
    uid = hog_user
    as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if subprocess.run([*as_user, PY, "-c", "import pyinit"], env=env).returncode != 0:
        pytest.skip("no python that an unprivileged user can run")
    run_dir = Path(f"/tmp/{tag}-run")  # tmp_path is private to root
    write_script(tmp_path / "service" / "web" / "run", "exec sleep 1000\n")
    hog_py, report = Path(f"/tmp/{tag}-hog.py"), Path(f"/tmp/{tag}-hog.json")
    hog_py.write_text(HOG)
    hog = None
    try:
        run = pyinit_run(flags=("--run-dir", str(run_dir)))
        sock = run_dir / "control.sock"
        wait_for(sock.exists, 10, "the control socket")
        os.chmod(run_dir, 0o755)
        os.chmod(sock, 0o666)  # widened, as docs/control-protocol.md suggests

        def svctl(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([PY, "-c", SVCTL, "--run-dir", str(run_dir),
                                   *args], capture_output=True, text=True, env=env,
                                  timeout=30)

        wait_for(lambda: "run: web:" in svctl("status", "web").stdout, 10, "web up")
        hog = subprocess.Popen([*as_user, PY, str(hog_py), str(sock), str(report), "200", tag],
                               stdin=subprocess.PIPE, env=env, start_new_session=True)
        wait_for(report.exists, 30, "the hog's report")
        got = json.loads(report.read_text())
        for _ in range(3):
            r = svctl("status")
            assert r.returncode == 0 and "run: web:" in r.stdout, (r.stderr, got)
            r = svctl("check", "web")
            assert r.returncode == 0, r.stderr
        per_user = getattr(control, "MAX_PER_USER", None)
        assert got["held"] == per_user, got
        assert got["nrefused"] == 200 - per_user, got
        assert "too many clients" in got["refused"][0], got
        assert run.err.count("control socket: refused") == 1, run.err  # rate-limited
        r = svctl("shutdown-container", "--exit-code", "7")
        assert r.returncode == 0, r.stderr
        assert finish(run)[0] == 7
    finally:
        if hog is not None:
            hog.kill()
            hog.wait(10)
        shutil.rmtree(run_dir, ignore_errors=True)
        hog_py.unlink(missing_ok=True)
        report.unlink(missing_ok=True)
