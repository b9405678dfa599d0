"""A supervisord [eventlistener:x] under the supervisord personality as PID 1: the
bridge sends pyinit's events to the listener in supervisord's protocol."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from helpers import can_unshare, kill_tree, lines, tagged_processes, wait_for, write_script

pytestmark = pytest.mark.skipif(bool(can_unshare()), reason=str(can_unshare()))
BIN = Path(sys.executable).parent / "pyinit"
HEADER = re.compile(
    r"^ver:3\.0 server:supervisor serial:(\d+) pool:listen poolserial:(\d+) "
    r"eventname:(\w+) len:(\d+)$"
)
LISTENER = """#!{python}
import sys
out = open(sys.argv[1], "a")
rejected = False
while True:
    sys.stdout.write("READY\\n")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        break
    size = int(line.split("len:")[1])
    payload = sys.stdin.read(size)
    out.write(line.rstrip("\\n") + "\\n" + payload + "\\n")
    out.flush()
    print("listener got " + line.split("eventname:")[1].split()[0], file=sys.stderr, flush=True)
    if not rejected:  # the first one is rejected: supervisord sends it again
        rejected = True
        sys.stdout.write("RESULT 4\\nFAIL")
    else:
        sys.stdout.write("RESULT 2\\nOK")
    sys.stdout.flush()
"""


def received(path: Path) -> list[tuple[str, int, str, dict[str, str]]]:
    """(eventname, serial, payload, its fields) of each event the listener wrote."""
    got = lines(path)
    out = []
    for head, payload in zip(got[::2], got[1::2]):
        match = HEADER.match(head)
        assert match, head
        assert int(match.group(4)) == len(payload.encode())
        fields = dict(part.split(":", 1) for part in payload.split())
        out.append((match.group(3), int(match.group(1)), payload, fields))
    return out


def find(path: Path, name: str, process: str) -> list[dict[str, str]]:
    return [f for n, _, _, f in received(path) if n == name and f["processname"] == process]


def test_eventlistener_gets_process_state_events(tmp_path: Path, tag: str) -> None:
    (tmp_path / "bin").mkdir()
    supervisord = tmp_path / "bin" / "supervisord"
    supervisord.symlink_to(BIN)
    got = tmp_path / "got"
    write_script(tmp_path / "listener.py", LISTENER.format(python=sys.executable))
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"""[supervisord]
nodaemon=true
logfile=/dev/null
childlogdir=%(here)s/logs
[eventlistener:listen]
command={tmp_path}/listener.py {got} {tag}
events=PROCESS_STATE,PROCESS_LOG
stderr_logfile=/dev/stderr
[program:crash]
command=sh -c "exit 3"
startsecs=0
autorestart=false
[program:flaky]
command=sh -c "exit 1"
startsecs=1
startretries=1
[program:web]
command=sh -c "sleep 1000; :" {tag}
startsecs=0
""")
    env = dict(os.environ, PYINIT_RUN_DIR=str(tmp_path / "run"))
    out = open(tmp_path / "out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", str(supervisord),
                             "-c", str(conf)], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: find(got, "PROCESS_STATE_EXITED", "crash"), 30, "crash's EXITED")
        wait_for(lambda: find(got, "PROCESS_STATE_FATAL", "flaky"), 30, "flaky's FATAL")
        exited = find(got, "PROCESS_STATE_EXITED", "crash")
        assert len(exited) == 1
        assert exited[0]["groupname"] == "crash" and exited[0]["from_state"] == "RUNNING"
        assert exited[0]["expected"] == "0" and int(exited[0]["pid"]) > 1
        running = find(got, "PROCESS_STATE_RUNNING", "crash")
        assert running and running[0]["from_state"] == "STARTING"
        assert running[0]["pid"] == exited[0]["pid"]
        backoff = find(got, "PROCESS_STATE_BACKOFF", "flaky")
        assert backoff and all(f["from_state"] == "STARTING" for f in backoff)
        assert find(got, "PROCESS_STATE_FATAL", "flaky")[0]["from_state"] == "BACKOFF"
        assert not find(got, "PROCESS_STATE_EXITED", "flaky")  # early exits are BACKOFF
        events = received(got)
        assert events[0][:3] == events[1][:3]  # the rejected first event came again
        serials = [s for _, s, _, _ in events[1:]]
        assert serials == sorted(set(serials))
        text = (tmp_path / "out").read_text()
        assert "listener got PROCESS_STATE_" in text  # its stderr: the service's log
        assert "[eventlistener:listen] events: not provided by pyinit" in text
        assert "PROCESS_LOG" in text
        assert len(tagged_processes(tag)) >= 3  # the bridge, the listener, web's sh
        psutil.Process(proc.pid).children()[0].send_signal(signal.SIGTERM)  # PID 1
        assert proc.wait(30) == 0
        assert tagged_processes(tag) == []  # the bridge and the listener stopped too
    finally:
        kill_tree(proc.pid)
        proc.wait(10)
        out.close()


TICKER = "\\n".join([  # statements for exec('...'): no quote but ", no newline in a string
    "import os, sys",
    "say = lambda *a: print(*a, file=sys.stderr, flush=True)",
    "say(\"uid\", os.getuid(), \"gid\", os.getgid())",
    "while True:",
    "    sys.stdout.write(\"READY\" + chr(10)); sys.stdout.flush()",
    "    line = sys.stdin.readline()",
    "    if not line: break",
    "    payload = sys.stdin.read(int(line.split(\"len:\")[1]))",
    "    say(\"got\", line.split(\"eventname:\")[1].split()[0], payload)",
    "    sys.stdout.write(\"RESULT 2\" + chr(10) + \"OK\"); sys.stdout.flush()",
])  # fmt: skip


@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="no /usr/bin/python3")
def test_eventlistener_as_a_user_gets_ticks(tmp_path: Path, tag: str) -> None:
    """user= runs the listener (not the bridge) as that user; TICK_5 comes from the
    bridge, on a multiple of 5 seconds."""
    (tmp_path / "bin").mkdir()
    supervisord = tmp_path / "bin" / "supervisord"
    supervisord.symlink_to(BIN)
    conf = tmp_path / "supervisord.conf"
    quoted = TICKER.replace('"', '\\"')  # in the command's "...", as shlex reads it
    conf.write_text(f"""[supervisord]
logfile=/dev/null
[eventlistener:ticks]
command=/usr/bin/python3 -c "exec('{quoted}')" {tag}
events=TICK_5
user=nobody
directory=/
stderr_logfile=/dev/stderr
""")
    env = dict(os.environ, PYINIT_RUN_DIR=str(tmp_path / "run"))
    out = open(tmp_path / "out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", str(supervisord),
                             "-c", str(conf)], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        said = wait_for(lambda: [x for x in lines(tmp_path / "out") if x.startswith("got ")],
                        20, "a TICK_5")  # fmt: skip
        assert re.fullmatch(r"got TICK_5 when:\d+", said[0]), said  # type: ignore[index]
        assert int(said[0].split(":")[1]) % 5 == 0  # type: ignore[index]
        nobody = __import__("pwd").getpwnam("nobody")
        assert f"uid {nobody.pw_uid} gid {nobody.pw_gid}" in lines(tmp_path / "out")
        psutil.Process(proc.pid).children()[0].send_signal(signal.SIGTERM)  # PID 1
        assert proc.wait(30) == 0
        assert tagged_processes(tag) == []
    finally:
        kill_tree(proc.pid)
        proc.wait(10)
        out.close()
