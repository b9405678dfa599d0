"""Stopping, in every state a process can be in, as a real PID 1 (and as a
subreaper): the shutdown gate (nothing starts once kill-all has begun), stopped
(SIGSTOP) processes, processes in a session of their own, processes that ignore
the stop signal; and the control socket's fairness between users."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from helpers import Run, finish, lines, tagged_processes, wait_for, write_script

PY = sys.executable
SVCTL = "from pyinit.cli.svctl import main; main()"
# Ignores SIGTERM, records that it started, then waits (tagged, to find leaks).
STUBBORN = (
    "trap '' TERM\necho {what} >> {events}\n"
    "exec {py} -c 'import time; time.sleep(1000)' {tag} {what}\n"
)




# --- finding 6: nothing starts after kill-all ----------------------------------------


@pytest.mark.parametrize("pid1", [True, False], ids=["pid1", "subreaper"])
def test_nothing_starts_after_kill_all(pyinit_run, tmp_path: Path, tag: str, pid1: bool) -> None:
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
    run = pyinit_run(
        "sh",
        "-c",
        main,
        pid1=pid1,
        flags=("--kill-timeout", "1", "--shutdown-timeout", "1", "--kill-all-timeout", "0.5"),
    )
    wait_for(
        lambda: len(tagged_processes(tag)) == 2 and len(lines(events)) == 3,
        10,
        "the service, its logger and the main command",
    )
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
    s.connect(path)
    try:
        s.sendall(req)
    except OSError:
        pass  # refused and closed already: its error line still waits to be read
    conns.append(s)
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


def test_unprivileged_user_cannot_lock_root_out(
    pyinit_run, tmp_path: Path, tag: str, hog_user: int
) -> None:
    """A user of a widened control socket holds as many `wait` requests as it can:
    it gets MAX_PER_USER, the rest are refused with a reason, and root's status,
    check and shutdown-container still get through."""
    import json
    import shutil
    import subprocess

    from helpers import ROOT

    from pyinit.control import server as control

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
            return subprocess.run(
                [PY, "-c", SVCTL, "--run-dir", str(run_dir), *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=30,
            )

        wait_for(lambda: "run: web:" in svctl("status", "web").stdout, 10, "web up")
        hog = subprocess.Popen(
            [*as_user, PY, str(hog_py), str(sock), str(report), "200", tag],
            stdin=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
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
        assert all("too many clients" in line for line in got["refused"]), got
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


# --- every process pyinit stops, in every state: stopped, own session, ignoring -------

# Traps TERM (writes "NAME got TERM" to EVENTS and exits 0), or ignores it; says it is
# ready; waits. Modes: "stop" (SIGSTOPs itself), "ignore", "setsid" (and a child,
# NAME-child, in a session of its own).
TRAPPER = """
import os, signal, sys, time
events, name = sys.argv[1], sys.argv[2]
def on_term(signum, frame):
    with open(events, "a") as f:
        f.write(name + " got TERM\\n")
    os._exit(0 if len(sys.argv) < 5 else 128 + signum)
mode = sys.argv[3]
if "ignore" in mode:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, on_term)
if "setsid" in mode and os.fork() == 0:  # a child in a session of its own
    os.setsid()
    name += "-child"
with open(events, "a") as f:
    f.write(name + " ready %d\\n" % os.getpid())
if "stop" in mode:
    os.kill(os.getpid(), signal.SIGSTOP)
while True:
    time.sleep(1000)
"""


def ready_pid(events: Path, name: str) -> int:
    def find() -> int | None:
        for line in lines(events):
            if line.startswith(f"{name} ready "):
                return int(line.split()[-1])
        return None

    return int(wait_for(find, 10, f"{name} to be ready"))


def host_pid_of(run: Run, tag: str, name: str) -> int:
    """The host pid of the tagged python running as NAME."""

    def find() -> int | None:
        for p in tagged_processes(tag):
            argv = p.cmdline()
            if len(argv) > 3 and argv[1].endswith("trapper.py") and argv[3] == name:
                return p.pid
        return None

    return int(wait_for(find, 10, name))


def is_stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.parametrize("pid1", [True, False], ids=["pid1", "subreaper"])
def test_stopped_main_command_acts_on_sigterm(
    pyinit_run, tmp_path: Path, tag: str, pid1: bool
) -> None:
    """A SIGSTOPped main command gets SIGCONT after the forwarded SIGTERM: it runs
    its handler and dies of it (143), instead of being SIGKILLed (137)."""
    events, trapper = tmp_path / "events", tmp_path / "trapper.py"
    trapper.write_text(TRAPPER)
    run = pyinit_run(
        PY,
        str(trapper),
        str(events),
        "main",
        "stop",
        tag,
        pid1=pid1,
        flags=("--kill-timeout", "30", "--shutdown-timeout", "30"),
    )
    pid = host_pid_of(run, tag, "main")
    ready_pid(events, "main")
    wait_for(lambda: is_stopped(pid), 10, "the main command to stop itself")
    run.kill(signal.SIGTERM)
    code, err = finish(run)
    assert lines(events)[1:] == ["main got TERM"]
    assert code == 128 + signal.SIGTERM
    assert "SIGKILL" not in err


@pytest.mark.parametrize("mode", ["setsid", "ignore", "stop-ignore", "setsid-ignore"])
def test_main_command_in_every_state_is_stopped(
    pyinit_run, tmp_path: Path, tag: str, mode: str
) -> None:
    """Its own session: the signal still reaches it (143). Ignoring SIGTERM (also
    while stopped): SIGKILL after the kill timeout (137). Its orphan in a session of
    its own, ignoring SIGTERM too, is SIGKILLed by kill-all."""
    events, trapper = tmp_path / "events", tmp_path / "trapper.py"
    trapper.write_text(TRAPPER)
    orphan = f"setsid {PY} {trapper} {events} orphan ignore {tag} &"
    run = pyinit_run(
        "sh",
        "-c",
        f"{orphan} exec {PY} {trapper} {events} main {mode} {tag}",
        flags=("--kill-timeout", "1", "--kill-all-timeout", "1"),
    )
    ready_pid(events, "orphan")
    ready_pid(events, "main")
    if "setsid" in mode:
        ready_pid(events, "main-child")
    if "stop" in mode:
        wait_for(lambda: is_stopped(host_pid_of(run, tag, "main")), 10, "main stopped")
    run.kill(signal.SIGTERM)
    code, err = finish(run)
    ignores = "ignore" in mode
    assert code == 128 + (signal.SIGKILL if ignores else signal.SIGTERM)
    assert ("main got TERM" in lines(events)) != ignores
    if "setsid" in mode:  # kill-all's SIGTERM reaches it
        assert ("main-child got TERM" in lines(events)) != ignores
    assert "orphan got TERM" not in lines(events)
    assert "processes still running after SIGTERM: sending SIGKILL" in err


@pytest.mark.parametrize("mode", ["stop", "setsid", "ignore"])
def test_service_in_every_state_is_stopped(pyinit_run, tmp_path: Path, tag: str, mode: str) -> None:
    """A service's run, its logger and its finish, each stopped (SIGSTOP), in a
    session of its own, or ignoring SIGTERM: the shutdown ends, with exit 0 (no
    main command), within the timeouts; a stopped one gets SIGCONT and acts on TERM."""
    events, trapper = tmp_path / "events", tmp_path / "trapper.py"
    trapper.write_text(TRAPPER)
    svc = tmp_path / "service" / "svc"
    write_script(svc / "run", f"exec {PY} {trapper} {events} run {mode} {tag}\n")
    write_script(svc / "log" / "run", f"exec {PY} {trapper} {events} logger {mode} {tag}\n")
    write_script(svc / "finish", f"exec {PY} {trapper} {events} finish {mode} {tag}\n")
    (svc / "service.yaml").write_text("stop_timeout: 1\nfinish_timeout: 1\n")
    run = pyinit_run(flags=("--kill-timeout", "1", "--kill-all-timeout", "1"))
    for name in ("run", "logger") + (("run-child", "logger-child") if mode == "setsid" else ()):
        ready_pid(events, name)
        if mode == "stop":
            wait_for(lambda n=name: is_stopped(host_pid_of(run, tag, n)), 10, f"{name} stopped")
    run.kill(signal.SIGTERM)
    if mode != "ignore":  # run exits on TERM, and finish starts (runit does)
        ready_pid(events, "finish")
    code, err = finish(run)
    assert code == 0
    got = [line for line in lines(events) if "got TERM" in line]
    if mode == "ignore":
        assert got == []
    else:
        assert "run got TERM" in got and "logger got TERM" in got
    if mode == "setsid":  # beyond the process group: kill-all's SIGTERM reaches them
        assert "run-child got TERM" in got and "logger-child got TERM" in got
    assert tagged_processes(tag) == []


def test_stopped_startup_script_acts_on_sigterm(pyinit_run, tmp_path: Path, tag: str) -> None:
    """A startup script still running (and stopped) at SIGTERM gets SIGCONT too."""
    events, trapper = tmp_path / "events", tmp_path / "trapper.py"
    trapper.write_text(TRAPPER)
    write_script(
        tmp_path / "my_init.d" / "10-slow", f"exec {PY} {trapper} {events} script stop {tag}\n"
    )
    run = pyinit_run("true", flags=("--kill-timeout", "30", "--shutdown-timeout", "30"))
    pid = host_pid_of(run, tag, "script")
    wait_for(lambda: is_stopped(pid), 10, "the script to stop itself")
    run.kill(signal.SIGTERM)
    code, _ = finish(run)
    assert "script got TERM" in lines(events)
    assert code == 128 + signal.SIGTERM  # the main command never started
