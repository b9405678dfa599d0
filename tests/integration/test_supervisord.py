"""The supervisord personality as PID 1 on a supervisord.conf, and supervisorctl."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from helpers import can_unshare, kill_tree, lines, tagged_processes, wait_for, write_script

pytestmark = pytest.mark.skipif(bool(can_unshare()), reason=str(can_unshare()))
BIN = Path(sys.executable).parent / "pyinit"


def tools(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "bin").mkdir()
    for name in ("supervisord", "supervisorctl"):
        (tmp_path / "bin" / name).symlink_to(BIN)
    return tmp_path / "bin" / "supervisord", tmp_path / "bin" / "supervisorctl"


def ctl(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(tmp_path / "bin" / "supervisorctl"), *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_supervisord_conf_as_pid1(tmp_path: Path, tag: str) -> None:
    supervisord, _ = tools(tmp_path)
    marks = tmp_path / "marks"
    write_script(
        tmp_path / "web.sh",
        f"""trap 'echo INT >> {marks}; exit 0' INT
trap 'echo HUP >> {marks}' HUP
echo "web $1 up"; echo "web to stderr" >&2
while :; do sleep 1; done
""",
    )
    write_script(
        tmp_path / "app.sh",
        f"""echo "app $WORKER $SUPERVISOR_PROCESS_NAME" >> {marks}
[ -e {tmp_path}/$SUPERVISOR_PROCESS_NAME.done ] && exit 3
touch {tmp_path}/$SUPERVISOR_PROCESS_NAME.done
exec sh -c "sleep 1000; :" {tag}-$SUPERVISOR_PROCESS_NAME
""",
    )
    (tmp_path / "conf.d").mkdir()
    off = f'[program:off]\ncommand=sh -c "echo off says hi; sleep 1000; :" {tag}\nautostart=false\n'
    (tmp_path / "conf.d" / "off.conf").write_text(off)
    (tmp_path / "conf.d" / "bad.conf").write_text(
        "[program:bad]\ncommand=/bin/false\nautostart=false\nstartretries=1\n"
    )
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"""[supervisord]
nodaemon=true
logfile=/dev/null
childlogdir=%(here)s/logs
[include]
files = conf.d/*.conf
[program:web]
command=%(here)s/web.sh {tag}
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
redirect_stderr=true
stopsignal=INT
startsecs=0
[program:app]
command=%(here)s/app.sh
numprocs=2
process_name=%(program_name)s_%(process_num)02d
environment=WORKER="w%(process_num)d"
autorestart=unexpected
exitcodes=0,3
startsecs=0
stopasgroup=true
stdout_logfile=/dev/stdout
""")
    env = dict(os.environ, PYINIT_RUN_DIR=str(tmp_path / "run"))
    out = open(tmp_path / "out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", str(supervisord),
                             "-c", str(conf), "-n"], env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "run" / "control.sock").exists() or
                 any(p.name == "control.sock" for p in (tmp_path / "run").glob("*")), 20,
                 "the control socket")  # fmt: skip
        wait_for(lambda: sum("app w" in x for x in lines(marks)) >= 2, 20, "both app processes")
        status = ctl(tmp_path, env, "status")
        assert status.returncode == 3, status  # off is STOPPED
        rows = {line.split()[0]: line for line in status.stdout.splitlines()}
        assert sorted(rows) == ["app:app_00", "app:app_01", "bad", "off", "web"], status.stdout
        assert rows["web"].split()[1] == "RUNNING" and "pid " in rows["web"]
        assert rows["off"] == "off" + " " * 30 + "STOPPED   Not started"
        assert "app w0 app_00" in lines(marks) and "app w1 app_01" in lines(marks)
        # killed: restarted (unexpected); then an exit with a code in exitcodes: EXITED
        victims = wait_for(lambda: tagged_processes(f"{tag}-app_00"), 20, "app_00's sleep")
        assert len(victims) == 1  # type: ignore[arg-type]
        victims[0].terminate()  # type: ignore[index]
        wait_for(lambda: "EXITED" in ctl(tmp_path, env, "status", "app:app_00").stdout, 20,
                 "app_00 EXITED")  # fmt: skip
        assert sum("app w0" in x for x in lines(marks)) == 2  # started once more, exited 3
        started = ctl(tmp_path, env, "start", "off")
        assert (started.returncode, started.stdout) == (0, "off: started\n"), started
        failing = ctl(tmp_path, env, "start", "bad")  # exits at once: FATAL after 1 retry
        assert (failing.returncode, failing.stdout) == (7, "bad: ERROR (spawn error)\n"), failing
        fatal = ctl(tmp_path, env, "status", "bad")
        assert fatal.stdout.split(None, 2)[1:] == [
            "FATAL", "Exited too quickly (process log may have details)\n"]  # fmt: skip
        hup = ctl(tmp_path, env, "signal", "hup", "web")
        assert (hup.returncode, hup.stdout) == (0, "web: signalled\n"), hup
        wait_for(lambda: "HUP" in lines(marks), 10, "web's HUP")
        missing = ctl(tmp_path, env, "status", "nosuch")
        assert (missing.returncode, missing.stdout) == (4, "nosuch: ERROR (no such process)\n")
        tailed = ctl(tmp_path, env, "tail", "off")  # AUTO: a log file in childlogdir
        assert (tailed.returncode, tailed.stdout) == (0, "off says hi\n"), tailed
        assert (tmp_path / "logs" / "off" / "current").read_text() == "off says hi\n"
        stopped = ctl(tmp_path, env, "stop", "off")
        assert stopped.stdout == "off: stopped\n"
        psutil.Process(proc.pid).children()[0].send_signal(signal.SIGTERM)  # PID 1
        assert proc.wait(30) == 0
        assert "INT" in lines(marks)  # web got its stopsignal
        text = (tmp_path / "out").read_text()
        assert f"web {tag} up" in text and "web to stderr" in text
    finally:
        kill_tree(proc.pid)
        proc.wait(10)
        out.close()


def test_bad_conf_is_one_line(tmp_path: Path) -> None:
    supervisord, _ = tools(tmp_path)
    conf = tmp_path / "s.conf"
    conf.write_text("[supervisord]\n[program:a]\ncommand=a\nautostart=maybe\n")
    env = dict(os.environ, PYINIT_RUN_DIR=str(tmp_path))
    done = subprocess.run([str(supervisord), "-c", str(conf)], capture_output=True, text=True,
                          timeout=30, env=env)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "pyinit: error: [supervisord] [program:a] autostart: not a valid boolean value: 'maybe'\n"
    )


def test_supervisorctl_shutdown(tmp_path: Path, tag: str) -> None:
    supervisord, _ = tools(tmp_path)
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f'[supervisord]\n[program:s]\ncommand=sh -c "sleep 1000; :" {tag}\n')
    env = dict(os.environ, PYINIT_RUN_DIR=str(tmp_path / "run"))
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", str(supervisord),
                             "-c", str(conf)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: "RUNNING" in ctl(tmp_path, env, "status", "s").stdout, 20, "RUNNING")
        done = ctl(tmp_path, env, "shutdown")
        assert (done.returncode, done.stdout) == (0, "Shut down\n")
        assert proc.wait(30) == 0
        assert proc.stderr is not None
        said = proc.stderr.read().decode()
        assert "pyinit: info: [supervisord] staying in the foreground (as -n)" in said
    finally:
        kill_tree(proc.pid)
        proc.wait(10)
