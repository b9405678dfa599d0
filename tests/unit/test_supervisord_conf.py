"""supervisord.conf read as supervisord reads it, and translated into service dirs."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from pyinit.foreign import supervisord_ctl as ctl
from pyinit.foreign.supervisord_conf import PROGRAM_KEYS, ConfError, load
from pyinit.foreign.supervisord_services import PROGRAM_NAMED, restart_window, translate


def conf_of(tmp_path: Path, text: str, env: dict[str, str] | None = None,
            extra: dict[str, str] | None = None):  # fmt: skip
    main = tmp_path / "supervisord.conf"
    main.write_text(text)
    for name, body in (extra or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return load(str(main), lambda p: Path(p).read_text(), lambda g: sorted(glob.glob(g)),
                env or {}, "node1")  # fmt: skip


def services(tmp_path: Path, text: str):
    svcs, notes = translate(conf_of(tmp_path, text, {"HOME": "/h"}), "/srv")
    return {s.name: s for s in svcs}, notes


HEAD = "[supervisord]\nnodaemon=true\n"


def test_every_program_key_mapped(tmp_path: Path) -> None:
    svcs, notes = services(
        tmp_path,
        HEAD
        + """
[program:app]
command=/usr/bin/app --port 80 "two words"  ; a comment
directory=work
user=www-data
umask=027
environment=A="1, 2",B=x
autostart=false
autorestart=true
startsecs=5
startretries=2
exitcodes=0,2
stopsignal=QUIT
stopwaitsecs=20
stopasgroup=true
killasgroup=true
priority=5
redirect_stderr=true
stdout_logfile=/var/log/app.log
stdout_logfile_maxbytes=1MB
stdout_logfile_backups=3
""",
    )
    app = svcs["app"]
    c = app.config
    assert app.down
    assert c["restart"] == "always" and c["success_exit_codes"] == [0, 2]
    assert c["ready"] == {"settle": 5} and c["max_restarts"] == 2
    assert c["restart_window"] == restart_window(5, 2) == 11
    assert (c["stop_signal"], c["stop_timeout"], c["stop_group"], c["kill_group"]) == (
        "QUIT", 20, True, True)  # fmt: skip
    assert c["working_directory"] == "/srv/work" and c["user"] == "www-data"
    assert c["umask"] == "027"
    assert c["environment"]["A"] == "1, 2" and c["environment"]["B"] == "x"
    assert c["environment"]["SUPERVISOR_PROCESS_NAME"] == "app"
    assert c["log"] == {"mode": "file", "dir": "/var/log/app.log.d", "max_size": 1048576,
                        "max_files": 3}  # fmt: skip
    assert app.run.splitlines()[-1] == "exec /usr/bin/app --port 80 'two words'"
    assert notes == []


def test_defaults_are_supervisords(tmp_path: Path) -> None:
    svcs, notes = services(tmp_path, HEAD + "[program:a]\ncommand=sleep 1\n")
    c = svcs["a"].config
    assert c["restart"] == "on-failure" and c["success_exit_codes"] == [0]  # unexpected
    assert c["stop_signal"] == "TERM" and c["stop_timeout"] == 10
    assert c["stop_group"] is False and c["kill_group"] is False
    assert c["ready"] == {"settle": 1} and c["max_restarts"] == 3
    assert c["working_directory"] == "/srv" and not svcs["a"].down
    assert c["log"]["dir"] == "/var/log/pyinit/a"  # AUTO
    assert notes == []


def test_supervisord_section_defaults(tmp_path: Path) -> None:
    svcs, notes = services(
        tmp_path,
        """[supervisord]
user=app
umask=77
directory=/work
childlogdir=/var/log/sv
loglevel=debug
identifier=x
[program:a]
command=a
[program:b]
command=b
user=root
directory=rel
""",
    )
    a, b = svcs["a"].config, svcs["b"].config
    assert (a["user"], a["umask"], a["working_directory"]) == ("app", "077", "/work")
    assert a["log"]["dir"] == "/var/log/sv/a"
    assert (b["user"], b["working_directory"]) == ("root", "/work/rel")
    assert notes == []


def test_streams(tmp_path: Path) -> None:
    svcs, notes = services(
        tmp_path,
        HEAD
        + """
[program:tty]
command=a
stdout_logfile=/dev/stdout
stderr_logfile=/dev/stderr
[program:merged]
command=a
stdout_logfile=/dev/stdout
redirect_stderr=true
[program:swap]
command=a
stdout_logfile=/dev/stderr
stderr_logfile=NONE
[program:half]
command=a
stdout_logfile=/dev/stdout
""",
    )
    assert "log" not in svcs["tty"].config and "exec 2>&1" not in svcs["tty"].run
    assert "\nexec 2>&1\n" in svcs["merged"].run and "log" not in svcs["merged"].config
    assert "exec 1>&4 2>/dev/null 3>&- 4>&-" in svcs["swap"].run
    assert "log" not in svcs["half"].config  # stderr AUTO beside /dev/stdout: the container's
    assert notes == []


def test_expansions_numprocs_and_groups(tmp_path: Path) -> None:
    svcs, _ = services(
        tmp_path,
        HEAD
        + """environment=G="g v"
[program:w]
command=/bin/w %(ENV_HOME)s %(here)s %(program_name)s %(group_name)s %(process_num)02d
    %(host_node_name)s %(ENV_G)s %(ENV_OWN)s
numprocs=2
numprocs_start=1
process_name=%(program_name)s_%(process_num)d
environment=OWN=%(process_num)d
priority=2
[program:first]
command=f
priority=1
[group:grp]
programs=first
""",
    )
    here = str(tmp_path)
    assert sorted(svcs) == ["grp:first", "w:w_1", "w:w_2"]
    assert svcs["w:w_2"].run.splitlines()[-1] == (
        f"exec /bin/w /h {here} w w 02 node1 g v 2"
    )  # expanded, then split
    assert svcs["w:w_1"].config["after"] == ["grp:first"]
    assert svcs["w:w_1"].config["environment"]["SUPERVISOR_GROUP_NAME"] == "w"


def test_include_globs_relative_to_the_file(tmp_path: Path) -> None:
    conf = conf_of(
        tmp_path,
        HEAD + "[include]\nfiles = conf.d/*.ini none/*.conf\n",
        extra={
            "conf.d/b.ini": "[program:b]\ncommand=%(here)s/b\n",
            "conf.d/a.ini": "[program:a]\ncommand=a\n",
            "conf.d/c.txt": "[x]\n",
        },
    )
    assert [p.name for p in conf.processes] == ["a", "b"]
    assert conf.processes[1].command == f"{tmp_path}/conf.d/b"
    assert conf.files[1:] == [f"{tmp_path}/conf.d/a.ini", f"{tmp_path}/conf.d/b.ini"]
    assert conf.notes == [f"[include] files: no file matches '{tmp_path}/none/*.conf'"]


def test_unsupported_is_named(tmp_path: Path) -> None:
    _, notes = services(
        tmp_path,
        """[supervisord]
nodaemon=true
pidfile=/run/s.pid
minfds=4096
frob=1
[supervisorctl]
serverurl=unix:///tmp/s.sock
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = x
[inet_http_server]
port=:9001
[fcgi-program:f]
command=f
[eventlistener:ev]
command=e
events=PROCESS_STATE,PROCESS_LOG
[program:p]
command=p
stdout_syslog=true
colour=red
""",
    )
    text = "\n".join(notes)
    for word in ("pidfile", "minfds", "frob", "[inet_http_server]", "[fcgi-program:f]",
                 "[eventlistener:ev]", "stdout_syslog", "colour"):  # fmt: skip
        assert word in text, word
    assert "supervisorctl]" not in text and "rpcinterface" not in text
    assert len(notes) == 8
    assert set(PROGRAM_NAMED) <= PROGRAM_KEYS


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[program:a]\ncommand=a\n", "no [supervisord] section"),
        (HEAD + "[program:a]\n", "no command"),
        (HEAD + "[program:a]\ncommand=%(ENV_NOPE)s\n", "%(ENV_NOPE)s, which is not defined"),
        (HEAD + "[program:a]\ncommand=%(x)99999999s\n", "width over 999"),
        (HEAD + "[program:a]\ncommand=%(process_num).99999999d\n", "precision over 999"),
        (HEAD + "[program:a]\ncommand=%(process_num)5.*d\n", "precision over 999"),
        (HEAD + "[program:a]\ncommand=a\nautostart=maybe\n", "not a valid boolean"),
        (HEAD + "[program:a]\ncommand=a\nautorestart=often\n", "true, false or unexpected"),
        (HEAD + "[program:a]\ncommand=a\nstopsignal=FOO\n", "not a signal"),
        (HEAD + "[program:a]\ncommand=a\nexitcodes=0,256\n", "256 is not from 0 to 255"),
        (HEAD + "[program:a]\ncommand=a\nnumprocs=2\n", "must contain %(process_num)"),
        (HEAD + "[program:a]\ncommand=a\nnumprocs=1001\n", "numprocs: 1001 is not from 1"),
        (HEAD + "[program:a]\ncommand=a\nenvironment=A\n", "KEY=VALUE"),
        (HEAD + "[program:a]\ncommand=a\nstopasgroup=true\nkillasgroup=false\n", "cannot set"),
        (HEAD + "[program:a b]\ncommand=a\n", "invalid name"),
        (HEAD + "[group:g]\nprograms=nope\n", "unknown program 'nope'"),
        (HEAD + "[include]\n", "[include] has no files"),
        ("[supervisord]\numask=8\n", "[supervisord] umask: not an octal mode"),
        ("garbage\n", "File contains no section headers"),
        (HEAD + "[program:a]\ncommand=a\numask=99\n", "not an octal mode"),
        (HEAD + "[program:a]\ncommand=a\nstartsecs=" + "9" * 40 + "\n", "not an integer"),
    ],
)
def test_bad_inputs_one_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfError) as err:
        translate(conf_of(tmp_path, body), "/")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_service_name(tmp_path: Path) -> None:
    with pytest.raises(ConfError, match="cannot be a service name"):
        services(tmp_path, HEAD + "[program:a+b]\ncommand=a\n")


def test_an_include_file_name_is_no_command_in_the_run_script(tmp_path: Path) -> None:
    """The run's comment line named the include file as it is: a newline in its name
    made the rest of the name a shell command."""
    name = "conf.d/x\ntouch PWNED\n.conf"
    conf = conf_of(tmp_path, HEAD + "[include]\nfiles=conf.d/*.conf\n",
                   extra={name: "[program:a]\ncommand=/bin/true\n"})  # fmt: skip
    svcs, _ = translate(conf, "/")
    lines = svcs[0].run.splitlines()
    assert lines[0] == "#!/bin/sh" and lines[-1] == "exec /bin/true"
    assert all(line.startswith(("#", "exec ")) for line in lines), lines
    assert "x\\ntouch PWNED\\n.conf" in lines[1]


def test_yaml_is_json(tmp_path: Path) -> None:
    svcs, _ = services(tmp_path, HEAD + "[program:a]\ncommand=a\nenvironment=X='é'\n")
    assert json.loads(svcs["a"].yaml())["environment"]["X"] == "é"


# --- supervisorctl's words ---------------------------------------------------------
def rec(**kw: object) -> dict:
    base = {"name": "web", "state": "down", "pid": None, "want": "u", "ready": False,
            "uptime": 0, "last_exit_code": None, "last_signal": None, "since": 0.0,
            "next_start_in": None, "failed": None, "outcome": None, "error": None,
            "waiting_for": []}  # fmt: skip
    base.update(kw)
    return base


def test_states() -> None:
    assert ctl.state(rec(state="run", pid=12, ready=True, uptime=62.5)) == (
        "RUNNING", "pid 12, uptime 0:01:02")  # fmt: skip
    assert ctl.state(rec(state="run", pid=12))[0] == "STARTING"
    assert ctl.state(rec(state="run", pid=12, want="d"))[0] == "STOPPING"
    assert ctl.state(rec(next_start_in=0.4, last_exit_code=1)) == ("BACKOFF", ctl.TOO_QUICK)
    assert ctl.state(rec(failed="3 restarts within 4s", last_exit_code=1)) == (
        "FATAL", ctl.TOO_QUICK)  # fmt: skip
    assert ctl.state(rec(want="d")) == ("STOPPED", "Not started")
    assert ctl.state(rec(outcome="exited", last_exit_code=0))[0] == "EXITED"
    assert ctl.state(rec(error="bad"))[0] == "FATAL"
    assert ctl.uptime(86400 * 2 + 3661) == "2 days, 1:01:01"


def test_status_lines_and_codes() -> None:
    recs = [rec(name="a:a_0", state="run", pid=3, ready=True, uptime=1), rec(name="x", want="d")]
    lines = ctl.status_lines(recs)
    assert lines[0] == "a:a_0" + " " * 28 + "RUNNING   pid 3, uptime 0:00:01"
    assert lines[1] == "x" + " " * 32 + "STOPPED   Not started"
    chosen, errors = ctl.pick(["a:*", "nope", "g:"], recs)
    assert [r["name"] for r in chosen] == ["a:a_0"]
    assert errors == ["nope: ERROR (no such process)", "g: ERROR (no such group)"]
    assert ctl.status_code(chosen, errors) == 4
    assert ctl.status_code(recs, []) == 3
    assert ctl.pick(["a"], recs)[0] == []  # a process in a group needs GROUP:NAME
    assert os.sep == "/"


# --- the oracle: supervisord 4's own reading of the same file ------------------------------
ORACLE = """
import json, os, sys
from supervisor.options import ServerOptions
from supervisor.datatypes import Automatic, RestartUnconditionally, RestartWhenExitUnexpected
o = ServerOptions()
o.configfile = sys.argv[1]
o.here = os.path.dirname(sys.argv[1])
o.process_config(do_usage=False)
out = []
for g in o.process_group_configs:
    for p in g.process_configs:
        log = p.stdout_logfile
        out.append(dict(
            namespec=p.name if g.name == p.name else g.name + ":" + p.name,
            command=p.command, priority=p.priority, autostart=p.autostart,
            autorestart={RestartUnconditionally: "true",
                         RestartWhenExitUnexpected: "unexpected"}.get(p.autorestart, "false"),
            startsecs=p.startsecs, startretries=p.startretries, stopsignal=p.stopsignal,
            stopwaitsecs=p.stopwaitsecs, stopasgroup=p.stopasgroup, killasgroup=p.killasgroup,
            exitcodes=list(p.exitcodes), redirect_stderr=p.redirect_stderr,
            directory=p.directory, umask=p.umask, environment=p.environment,
            stdout_logfile="AUTO" if log is Automatic else "NONE" if log is None else log,
            stdout_maxbytes=p.stdout_logfile_maxbytes, stdout_backups=p.stdout_logfile_backups))
print(json.dumps(sorted(out, key=lambda d: d["namespec"])))
"""
RICH = """[supervisord]
nodaemon = true  ; a comment
environment = G="g, v",TZ=UTC
childlogdir = %(here)s

[include]
files = conf.d/*.conf

[program:web]
command = /usr/sbin/nginx -g "daemon off;"   # inline comment
priority = 5
autorestart = true
stopsignal = quit
stopwaitsecs = 30
stopasgroup = yes
redirect_stderr = on
stdout_logfile = %(here)s/web.log
stdout_logfile_maxbytes = 10MB
stdout_logfile_backups = 2
umask = 002

[program:worker]
command = /bin/worker --id %(process_num)02d --of %(numprocs)d %(ENV_HOME)s %(ENV_G)s
process_name = %(program_name)s-%(process_num)s
numprocs = 3
numprocs_start = 1
environment = ID="%(process_num)d",WHO='%(group_name)s',LOGS=%(ENV_TZ)s
exitcodes = 0,2,3
startsecs = 0
startretries = 7
autostart = false
directory = /tmp
stdout_logfile = NONE
"""


@pytest.mark.skipif(
    subprocess.run(
        ["/usr/bin/python3", "-c", "import supervisor.options"], capture_output=True
    ).returncode
    != 0,  # fmt: skip
    reason="supervisord (Debian's supervisor) is not installed",
)
def test_reads_as_supervisord_does(tmp_path: Path) -> None:
    extra = {"conf.d/b.conf": "[program:b]\ncommand=%(here)s/b %(program_name)s\n"
                              "[group:grp]\nprograms=b\n"}  # fmt: skip
    conf = conf_of(tmp_path, RICH, {"HOME": "/h"}, extra)
    env = dict(os.environ, HOME="/h")
    done = subprocess.run(["/usr/bin/python3", "-c", ORACLE, str(tmp_path / "supervisord.conf")],
                          capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    ours = []
    for p in sorted(conf.processes, key=lambda p: p.namespec):
        ours.append(dict(
            namespec=p.namespec, command=p.command, priority=p.priority, autostart=p.autostart,
            autorestart=p.autorestart, startsecs=p.startsecs, startretries=p.startretries,
            stopsignal=int(getattr(signal, "SIG" + p.stopsignal)), stopwaitsecs=p.stopwaitsecs,
            stopasgroup=p.stopasgroup, killasgroup=p.killasgroup, exitcodes=list(p.exitcodes),
            redirect_stderr=p.redirect_stderr, directory=p.directory, umask=p.umask,
            environment={**conf.environment, **p.environment}, stdout_logfile=p.stdout_logfile,
            stdout_maxbytes=p.stdout_maxbytes, stdout_backups=p.stdout_backups,
        ))  # fmt: skip
    assert len(ours) == 5
    assert ours == theirs


def test_fcgi_program_in_a_group_is_named_not_fatal(tmp_path: Path) -> None:
    svcs, notes = services(tmp_path, HEAD + "[fcgi-program:f]\ncommand=f\nsocket=tcp://:9\n"
                           "[program:p]\ncommand=p\n[group:g]\nprograms=f,p\n")  # fmt: skip
    assert list(svcs) == ["g:p"]
    assert notes == ["[fcgi-program:f] not supported: pyinit does not create FastCGI sockets"]
