"""pyinit as a real PID 1 (a new pid namespace via unshare) and as a subreaper:
reaping, exit codes, signal forwarding, the inherited signal state, startup
scripts, the shutdown sequence and bad input."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from helpers import (
    ROOT,
    Run,
    finish,
    lines,
    tagged_processes,
    unmanaged_ignored_bits,
    wait_for,
    write_script,
)

from pyinit.core import signames

# Flags for every run: none (service supervision runs, with no services).
FLAGS: tuple[str, ...] = ()

PY = sys.executable
SHUTDOWN = {int(signal.SIGTERM), int(signal.SIGINT), int(signal.SIGQUIT)}
RTMIN = int(signal.SIGRTMIN)


def start(pyinit_run, *cmd: str, flags: tuple[str, ...] = (), **kw) -> Run:
    return pyinit_run(*cmd, flags=FLAGS + tuple(flags), **kw)




def script(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def pyinit_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("pyinit: ")]


# --- reaping -------------------------------------------------------------------

STORM = """
import os, signal, sys
n, marker = int(sys.argv[1]), sys.argv[2]
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os._exit(0)         # the grandchild: an orphan as soon as its parent is gone
        os._exit(0)
    os.waitpid(pid, 0)
with open(marker, "w") as f:
    f.write("spawned")
signal.pause()                  # until pyinit forwards SIGTERM
"""


def _is_zombie(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize(("pid1", "orphans"), [(True, 2000), (False, 300)],
                         ids=["pid1-2000", "subreaper-300"])
def test_orphan_storm_is_reaped(pyinit_run, tmp_path: Path, tag: str, pid1: bool,
                                orphans: int) -> None:
    marker = tmp_path / "spawned"
    storm = script(tmp_path, "storm.py", STORM)
    run = start(pyinit_run, PY, storm, str(orphans), str(marker), tag, pid1=pid1, flags=("-v",))
    wait_for(marker.exists, 60, "the orphans to be spawned")

    def settled() -> bool:
        procs = run.descendants()
        # only the main command is left: every orphan was reaped, none is a zombie
        return len(procs) == 1 and not any(_is_zombie(p) for p in procs)

    wait_for(settled, 15, "every orphan to be reaped")
    assert not any(_is_zombie(p) for p in run.descendants())
    run.kill(signal.SIGTERM)
    code, err = finish(run)
    assert code == 128 + signal.SIGTERM
    reaped = re.search(r"\((\d+) orphans reaped\)", err)
    assert reaped, err
    assert int(reaped.group(1)) == orphans


# --- exit codes ------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2, 126, 127, 128, 255])
def test_exit_code_is_propagated(pyinit_run, code: int) -> None:
    run = start(pyinit_run, "sh", "-c", f"exit {code}")
    got, err = finish(run)
    assert got == code
    assert err == ""


def test_every_exit_code_0_to_255(pyinit_run) -> None:
    """All 256 codes, as PID 1, a batch of runs at a time."""
    results: dict[int, int] = {}
    codes = list(range(256))
    batch = 16
    for i in range(0, len(codes), batch):
        # only the exit path matters here: skip what costs start-up time
        runs = [(c, pyinit_run("sh", "-c", f"exit {c}", flags=("--skip-runit",)))
                for c in codes[i:i + batch]]
        for c, run in runs:
            results[c] = run.wait(30)
            run.cleanup()  # close its output files now; the fixture checks leaks
    assert results == {c: c for c in codes}


@pytest.mark.parametrize(
    ("body", "signum"),
    [
        ("kill -KILL $$", signal.SIGKILL),
        ("kill -TERM $$", signal.SIGTERM),
        ("ulimit -c 0; kill -SEGV $$", signal.SIGSEGV),
        ("kill -USR1 $$", signal.SIGUSR1),
        ("ulimit -c 0; kill -ABRT $$", signal.SIGABRT),
    ],
    ids=["KILL", "TERM", "SEGV", "USR1", "ABRT"],
)
def test_death_by_signal_is_128_plus_n(pyinit_run, body: str, signum: int) -> None:
    run = start(pyinit_run, "sh", "-c", body)
    code, _ = finish(run)
    assert code == 128 + signum
    assert code != 0


def test_death_by_signal_in_subreaper_mode(pyinit_run) -> None:
    run = start(pyinit_run, "sh", "-c", "kill -KILL $$", pid1=False)
    assert finish(run)[0] == 137


# --- signal forwarding -------------------------------------------------------------

RECORDER = """
import os, signal, sys
log, ready, wanted = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
signal.pthread_sigmask(signal.SIG_BLOCK, wanted)   # take them with sigwaitinfo
with open(ready, "w") as f:
    f.write(str(os.getpid()))
while True:
    info = signal.sigwaitinfo(wanted)
    os.write(fd, b"%d %d %d\\n" % (info.si_signo, info.si_pid, info.si_code))
    if info.si_signo in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        os._exit(42)
"""


def _start_recorder(pyinit_run, tmp_path: Path, tag: str, pid1: bool = True):
    log, ready = tmp_path / "received", tmp_path / "ready"
    rec = script(tmp_path, "recorder.py", RECORDER)
    wanted = ",".join(str(s) for s in signames.forwardable())
    run = start(pyinit_run, PY, rec, str(log), str(ready), wanted, tag, pid1=pid1)
    wait_for(lambda: ready.exists() and ready.read_text(), 10, "the recorder")
    return run, log


def _send_and_check(run: Run, log: Path, signum: int, sender: int) -> None:
    before = lines(log)
    run.kill(signum)
    wait_for(lambda: len(lines(log)) > len(before), 5, f"{signames.name(signum)} to arrive")
    got = lines(log)
    assert got[:len(before)] == before
    assert got[len(before):] == [f"{signum} {sender} 0"], signames.name(signum)  # SI_USER


def test_every_forwardable_signal_is_delivered(pyinit_run, tmp_path: Path, tag: str) -> None:
    run, log = _start_recorder(pyinit_run, tmp_path, tag)
    names = {signames.name(s) for s in signames.forwardable()}
    for must in ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGWINCH", "SIGTSTP", "SIGTTIN",
                 "SIGTTOU", "SIGCONT", "SIGALRM", "SIGURG", "SIGRTMIN", "SIGRTMIN+3",
                 "SIGRTMAX"):
        assert must in names
    for signum in signames.forwardable():
        if signum not in SHUTDOWN:
            _send_and_check(run, log, signum, sender=1)  # each one sent on by PID 1
    _send_and_check(run, log, signal.SIGTERM, sender=1)
    code, _ = finish(run)
    assert code == 42
    sent = [s for s in signames.forwardable() if s not in SHUTDOWN] + [int(signal.SIGTERM)]
    assert [int(line.split()[0]) for line in lines(log)] == sent


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_shutdown_signals_are_forwarded(pyinit_run, tmp_path: Path, tag: str,
                                        signum: int) -> None:
    run, log = _start_recorder(pyinit_run, tmp_path, tag)
    _send_and_check(run, log, signum, sender=1)
    assert finish(run)[0] == 42


def test_signals_are_forwarded_in_subreaper_mode(pyinit_run, tmp_path: Path, tag: str) -> None:
    run, log = _start_recorder(pyinit_run, tmp_path, tag, pid1=False)
    for signum in (signal.SIGHUP, signal.SIGUSR1, RTMIN + 5, signal.SIGTERM):
        _send_and_check(run, log, signum, sender=run.init_pid)
    assert finish(run)[0] == 42


# --- the inherited signal state ----------------------------------------------------

LAUNCHER = """
import os, signal, sys
ignored = [int(s) for s in sys.argv[1].split(",") if s]
blocked = [int(s) for s in sys.argv[2].split(",") if s]
for s in signal.valid_signals():
    if s not in (signal.SIGKILL, signal.SIGSTOP):
        signal.signal(s, signal.SIG_DFL)
for s in ignored:
    signal.signal(s, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
os.execvp(sys.argv[3], sys.argv[3:])
"""


def _bits(sigs: list[int]) -> int:
    out = 0
    for s in sigs:
        out |= 1 << (s - 1)
    return out


def _sig_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("SigBlk", "SigIgn", "SigCgt"):
            out[key] = int(value.strip(), 16)
    return out


@pytest.mark.parametrize(
    ("ignored", "blocked"),
    [
        ([signal.SIGUSR2], [RTMIN + 1]),
        ([signal.SIGINT, signal.SIGHUP, signal.SIGUSR2, signal.SIGTTOU],
         [RTMIN + 1, signal.SIGUSR1, signal.SIGWINCH]),
        ([], []),
    ],
    ids=["usr2-rtmin1", "several", "none"],
)
def test_main_command_gets_exactly_the_inherited_signal_state(
    pyinit_run, tmp_path: Path, ignored: list[int], blocked: list[int]
) -> None:
    launcher = script(tmp_path, "launcher.py", LAUNCHER)
    wrapper = [PY, launcher, ",".join(str(int(s)) for s in ignored),
               ",".join(str(int(s)) for s in blocked)]
    run = start(pyinit_run, "sleep", "1000", wrapper=wrapper)

    def main_pid() -> int | None:
        for child in run.descendants():
            try:
                if child.name() == "sleep":
                    return child.pid
            except psutil.NoSuchProcess:
                pass
        return None

    pid = int(wait_for(main_pid, 10, "the main command"))
    status = _sig_status(pid)
    assert status == {
        "SigBlk": _bits([int(s) for s in blocked]),
        "SigIgn": _bits([int(s) for s in ignored]) | unmanaged_ignored_bits(),
        "SigCgt": 0,
    }
    run.kill(signal.SIGTERM)
    assert finish(run)[0] == 128 + signal.SIGTERM


@pytest.mark.parametrize("pid1", [True, False], ids=["pid1", "subreaper"])
def test_main_command_gets_its_own_process_group(pyinit_run, pid1: bool) -> None:
    run = start(pyinit_run, "sleep", "1000", pid1=pid1)

    def main() -> psutil.Process | None:
        found = [p for p in run.descendants() if p.name() == "sleep"]
        return found[0] if found else None

    proc = wait_for(main, 10, "the main command")
    assert isinstance(proc, psutil.Process)
    assert os.getpgid(proc.pid) == proc.pid
    assert os.getpgid(proc.pid) != os.getpgid(run.init_pid)
    run.kill(signal.SIGTERM)
    assert finish(run)[0] == 128 + signal.SIGTERM


# --- a main command that cannot run -------------------------------------------------


def _cannot_run(tmp_path: Path, kind: str, tag: str) -> tuple[str, int, str]:
    """(argv[0], expected exit code, text the one line must hold)."""
    if kind == "missing path":
        return f"/nonexistent-{tag}/cmd", 127, "not found"
    if kind == "not on PATH":
        return f"no-such-command-{tag}", 127, "command not found"
    if kind == "not executable":
        p = tmp_path / f"noexec-{tag}"
        p.write_text("#!/bin/sh\nexit 0\n")
        p.chmod(0o644)
        return str(p), 126, "not executable"
    if kind == "directory":
        d = tmp_path / f"dir-{tag}"
        d.mkdir()
        return str(d), 126, "is a directory"
    if kind == "no shebang":
        p = tmp_path / f"noshebang-{tag}"
        p.write_text("echo hello\n")
        p.chmod(0o755)
        return str(p), 126, "missing #! line"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing path", "not on PATH", "not executable", "directory",
                                  "no shebang"])
def test_main_command_that_cannot_run(pyinit_run, tmp_path: Path, tag: str, kind: str) -> None:
    argv0, expected, text = _cannot_run(tmp_path, kind, tag)
    run = start(pyinit_run, argv0, "arg")
    code, err = finish(run)
    assert code == expected
    err_lines = err.splitlines()
    assert len(err_lines) == 1, err
    assert err_lines[0].startswith("pyinit: error: ")
    assert argv0 in err_lines[0] and text in err_lines[0]


# --- startup scripts ------------------------------------------------------------------


def test_startup_scripts_run_in_lexical_order(pyinit_run, tmp_path: Path) -> None:
    log = tmp_path / "log"
    init = tmp_path / "my_init.d"
    for name in ("9-c", "1-a", "10-b", "_z", "A"):
        write_script(init / name, f"echo 'start {name}' >> {log}\necho 'end {name}' >> {log}\n")
    write_script(init / "5-noexec", f"echo noexec >> {log}\n", mode=0o644)
    (init / "7-subdir").mkdir()
    write_script(tmp_path / "rc.local",
                 f"echo 'start rc.local' >> {log}\necho 'end rc.local' >> {log}\n")
    run = start(pyinit_run, "sh", "-c", f"echo main >> {log}")
    code, err = finish(run)
    assert code == 0
    order = ["1-a", "10-b", "9-c", "A", "_z", "rc.local"]  # lexical: "10" < "9" < "A" < "_"
    expected = [f"{w} {n}" for n in order for w in ("start", "end")] + ["main"]
    assert lines(log) == expected
    assert f"pyinit: info: skipping {init / '5-noexec'}: not executable" in err.splitlines()
    assert "7-subdir" not in err


def test_rc_local_alone_and_non_executable_rc_local(pyinit_run, tmp_path: Path) -> None:
    log = tmp_path / "log"
    write_script(tmp_path / "rc.local", f"echo rc.local >> {log}\n", mode=0o644)
    run = start(pyinit_run, "sh", "-c", f"echo main >> {log}")
    assert finish(run)[0] == 0
    assert lines(log) == ["main"]


def test_environment_propagates_between_stages(pyinit_run, tmp_path: Path) -> None:
    log = tmp_path / "log"
    env_dir = tmp_path / "container_environment"
    init = tmp_path / "my_init.d"
    env_dir.mkdir()
    (env_dir / "PRESET").write_text("from-dir\n")
    (env_dir / "FROMDIR").write_text("dir value\n")
    write_script(init / "10-set", f"printf bar > {env_dir}/FOO\n"
                                  f"printf 'two words\\n\\n' > {env_dir}/MULTI\n")
    write_script(init / "20-use", f'echo "20-use FOO=$FOO" >> {log}\n'
                                  f"printf baz > {env_dir}/FOO\n")
    write_script(tmp_path / "rc.local", f'echo "rc.local FOO=$FOO" >> {log}\n')
    main = (f'echo "main FOO=$FOO PRESET=$PRESET FROMDIR=$FROMDIR" >> {log}; '
            f'printf %s "$MULTI" > {tmp_path}/multi')
    run = start(pyinit_run, "sh", "-c", main, env={"PRESET": "outer"})
    assert finish(run)[0] == 0
    assert lines(log) == [
        "20-use FOO=bar",
        "rc.local FOO=baz",
        "main FOO=baz PRESET=outer FROMDIR=dir value",  # set variables win over the dir
    ]
    assert (tmp_path / "multi").read_text() == "two words\n"  # one trailing newline stripped
    # the dumps hold the final environment
    dumped = json.loads((tmp_path / "container_environment.json").read_text())
    assert dumped["FOO"] == "baz" and dumped["PRESET"] == "outer"
    assert dumped["FROMDIR"] == "dir value" and dumped["MULTI"] == "two words\n"
    assert not {"HOME", "USER", "SHELL"} & set(dumped)
    assert (env_dir / "PRESET").read_text() == "outer"
    sh = tmp_path / "container_environment.sh"
    sourced = subprocess.run(["env", "-i", "sh", "-c", f'. {sh} && printf %s "$FOO|$MULTI"'],
                             capture_output=True, text=True, check=True).stdout
    assert sourced == "baz|two words\n"
    dump_mode = 0o640 if _docker_env() else 0o600  # phusion's modes; docs/security.md
    for path, mode in ((env_dir, 0o700), (sh, dump_mode), (env_dir / "FOO", 0o600),
                       (tmp_path / "container_environment.json", dump_mode)):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def _docker_env() -> bool:
    import grp

    try:
        grp.getgrnam("docker_env")
    except KeyError:
        return False
    return True


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        ("exit 3", 3, "exit code 3"),
        ("kill -KILL $$", 137, "signal SIGKILL"),
        ("kill -USR1 $$", 138, "signal SIGUSR1"),
    ],
    ids=["exit-3", "SIGKILL", "SIGUSR1"],
)
def test_failing_startup_script_stops_the_boot(pyinit_run, tmp_path: Path, body: str,
                                               code: int, text: str) -> None:
    log = tmp_path / "log"
    init = tmp_path / "my_init.d"
    write_script(init / "10-ok", f"echo 10-ok >> {log}\n")
    failing = write_script(init / "20-fail", f"echo 20-fail >> {log}\n{body}\n")
    write_script(init / "30-never", f"echo 30-never >> {log}\n")
    write_script(tmp_path / "rc.local", f"echo rc.local >> {log}\n")
    run = start(pyinit_run, "sh", "-c", f"echo main >> {log}")
    got, err = finish(run)
    assert got == code
    assert lines(log) == ["10-ok", "20-fail"]
    failure = [line for line in err.splitlines() if "stopping the boot" in line]
    assert len(failure) == 1, err
    assert str(failing) in failure[0] and text in failure[0]
    assert failure[0].startswith("pyinit: error: ")


def test_startup_script_without_shebang(pyinit_run, tmp_path: Path) -> None:
    log = tmp_path / "log"
    init = tmp_path / "my_init.d"
    init.mkdir()
    bad = init / "10-noshebang"
    bad.write_text(f"echo noshebang >> {log}\n")
    bad.chmod(0o755)
    write_script(init / "20-never", f"echo 20-never >> {log}\n")
    run = start(pyinit_run, "sh", "-c", f"echo main >> {log}")
    code, err = finish(run)
    assert code == 126
    assert lines(log) == []
    clear = [line for line in err.splitlines() if "missing #! line" in line]
    assert len(clear) == 1 and str(bad) in clear[0], err


# --- shutdown -------------------------------------------------------------------------

TERM_IGNORING_MAIN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").close()
while True:
    time.sleep(60)
"""

# A daemon: double-forks away from its caller (which returns only once the daemon
# is ready), then on SIGTERM logs it and either exits or keeps running.
DAEMON = """
import os, signal, sys
log, ready, on_term = sys.argv[1], sys.argv[2], sys.argv[3]
r, w = os.pipe()
if os.fork():
    os.close(w)
    os.read(r, 1)
    os._exit(0)
os.close(r)
os.setsid()
if os.fork():
    os._exit(0)
def handler(signum, frame):
    with open(log, "a") as f:
        f.write("daemon got SIGTERM\\n")
    if on_term == "exit":
        os._exit(0)
signal.signal(signal.SIGTERM, handler)
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
os.write(w, b"x")
os.close(w)
while True:
    signal.pause()
"""

CHECK_ALIVE = """
if kill -0 "$(cat {pidfile})" 2>/dev/null
then echo {what}-alive >> {log}
else echo {what}-gone >> {log}
fi
"""


def test_sigterm_kills_a_term_ignoring_main_after_kill_timeout(pyinit_run, tmp_path: Path,
                                                                tag: str) -> None:
    ready = tmp_path / "ready"
    main = script(tmp_path, "main.py", TERM_IGNORING_MAIN)
    run = start(pyinit_run, PY, main, str(ready), tag, flags=("--kill-timeout", "1"))
    wait_for(ready.exists, 10, "the main command")
    t0 = time.monotonic()
    run.kill(signal.SIGTERM)
    code, err = finish(run)
    elapsed = time.monotonic() - t0
    assert code == 128 + signal.SIGKILL
    assert 0.9 <= elapsed < 3, elapsed
    assert "still running: sending SIGKILL" in err


def test_shutdown_order_pre_post_killall(pyinit_run, tmp_path: Path, tag: str) -> None:
    """my_init's order: pre-shutdown, services, post-shutdown, and only then kill-all,
    so a daemon a startup script left behind (a syslog) is still there for
    post-shutdown to stop."""
    log, ready, mainpid = tmp_path / "log", tmp_path / "daemon.pid", tmp_path / "main.pid"
    daemon = script(tmp_path, "daemon.py", DAEMON)
    write_script(tmp_path / "pre_shutdown.d" / "10-pre",
                 f"echo pre >> {log}\n"
                 + CHECK_ALIVE.format(pidfile=mainpid, what="main", log=log)
                 + CHECK_ALIVE.format(pidfile=ready, what="daemon", log=log))
    write_script(tmp_path / "pre_shutdown.d" / "20-pre", f"echo pre2 >> {log}\n")
    write_script(tmp_path / "post_shutdown.d" / "10-post",
                 f"echo post >> {log}\n" + CHECK_ALIVE.format(pidfile=ready, what="daemon",
                                                              log=log))
    main = f"echo $$ > {mainpid}; {PY} {daemon} {log} {ready} exit {tag}; exec sleep 1000"
    run = start(pyinit_run, "sh", "-c", main)
    wait_for(ready.exists, 10, "the daemon")
    wait_for(lambda: any(p.name() == "sleep" for p in run.descendants()), 10, "main's exec")
    run.kill(signal.SIGTERM)
    code, err = finish(run)
    assert code == 128 + signal.SIGTERM
    assert lines(log) == ["pre", "main-gone", "daemon-alive", "pre2", "post", "daemon-alive",
                          "daemon got SIGTERM"]
    assert "sending SIGKILL" not in err


@pytest.mark.parametrize("pid1", [True, False], ids=["pid1", "subreaper"])
def test_kill_all_sigkills_a_term_ignoring_orphan(pyinit_run, tmp_path: Path, tag: str,
                                                  pid1: bool) -> None:
    log, ready = tmp_path / "log", tmp_path / "daemon.pid"
    daemon = script(tmp_path, "daemon.py", DAEMON)
    write_script(tmp_path / "post_shutdown.d" / "10-post",
                 f"echo post >> {log}\n" + CHECK_ALIVE.format(pidfile=ready, what="daemon",
                                                              log=log))
    main = f"{PY} {daemon} {log} {ready} survive {tag}; exec sleep 1000"
    run = start(pyinit_run, "sh", "-c", main, pid1=pid1, flags=("--kill-all-timeout", "1"))
    wait_for(ready.exists, 10, "the daemon")
    wait_for(lambda: any(p.name() == "sleep" for p in run.descendants()), 10, "main's exec")
    t0 = time.monotonic()
    run.kill(signal.SIGTERM)
    code, err = finish(run)
    elapsed = time.monotonic() - t0
    assert code == 128 + signal.SIGTERM
    assert 0.9 <= elapsed < 3, elapsed
    assert lines(log) == ["post", "daemon-alive", "daemon got SIGTERM"]
    assert "processes still running after SIGTERM: sending SIGKILL" in err


def test_main_exiting_by_itself_triggers_kill_all(pyinit_run, tmp_path: Path, tag: str) -> None:
    log, ready = tmp_path / "log", tmp_path / "daemon.pid"
    daemon = script(tmp_path, "daemon.py", DAEMON)
    run = start(pyinit_run, "sh", "-c", f"{PY} {daemon} {log} {ready} exit {tag} && exit 5")
    code, _ = finish(run)
    assert code == 5
    assert lines(log) == ["daemon got SIGTERM"]


def test_no_kill_all_on_exit_leaves_orphans(pyinit_run, tmp_path: Path, tag: str) -> None:
    log, ready = tmp_path / "log", tmp_path / "daemon.pid"
    daemon = script(tmp_path, "daemon.py", DAEMON)
    run = start(pyinit_run, "sh", "-c", f"{PY} {daemon} {log} {ready} exit {tag}",
                pid1=False, flags=("--no-kill-all-on-exit",))
    code, _ = finish(run)
    pid = int(ready.read_text())
    try:
        assert code == 0
        assert [p.pid for p in tagged_processes(tag)] == [pid]  # still running
        assert lines(log) == []  # and never got SIGTERM
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not tagged_processes(tag), 10, "the daemon to die")


def test_sigterm_without_main_command_exits_0(pyinit_run, tmp_path: Path) -> None:
    booted = tmp_path / "booted"
    write_script(tmp_path / "my_init.d" / "10-boot", f"touch {booted}\n")
    run = start(pyinit_run)
    wait_for(booted.exists, 10, "the boot")
    wait_for(lambda: not run.descendants(), 10, "the startup script to be reaped")
    t0 = time.monotonic()
    run.kill(signal.SIGTERM)
    code, _ = finish(run)
    assert code == 0
    assert time.monotonic() - t0 < 2


def test_sigterm_during_a_long_startup_script(pyinit_run, tmp_path: Path) -> None:
    log = tmp_path / "log"
    init = tmp_path / "my_init.d"
    write_script(init / "10-long", f"echo started >> {log}\nexec sleep 1000\n")
    write_script(init / "20-never", f"echo 20-never >> {log}\n")
    run = start(pyinit_run, "sh", "-c", f"echo main >> {log}")
    wait_for(lambda: any(p.name() == "sleep" for p in run.descendants()), 10, "the script")
    t0 = time.monotonic()
    run.kill(signal.SIGTERM)
    code, _ = finish(run)
    assert time.monotonic() - t0 < 2
    assert code == 128 + signal.SIGTERM  # the main command was never started
    assert lines(log) == ["started"]


def test_sigterm_during_a_term_ignoring_startup_script(pyinit_run, tmp_path: Path) -> None:
    """The script and what it started ignore SIGTERM: both are SIGKILLed within
    the kill timeout plus the kill-all timeout."""
    log = tmp_path / "log"
    write_script(tmp_path / "my_init.d" / "10-stubborn",
                 f"trap '' TERM\necho started >> {log}\nsleep 1000\necho after >> {log}\n")
    run = start(pyinit_run, "sh", "-c", f"echo main >> {log}",
                flags=("--kill-timeout", "0.5", "--kill-all-timeout", "0.5"))
    wait_for(lambda: any(p.name() == "sleep" for p in run.descendants()), 10, "the script")
    t0 = time.monotonic()
    run.kill(signal.SIGTERM)
    code, _ = finish(run)
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 3, elapsed
    assert code == 128 + signal.SIGTERM
    assert lines(log) == ["started"]


def test_shutdown_budget_counts_from_the_signal(pyinit_run, tmp_path: Path) -> None:
    """A TERM-ignoring startup script and a TERM-ignoring pre-shutdown script, each
    allowed 5 s: the whole shutdown still ends near the 1.5 s budget."""
    write_script(tmp_path / "my_init.d" / "10-stubborn", "trap '' TERM\nsleep 1000\n")
    write_script(tmp_path / "pre_shutdown.d" / "10-stubborn", "trap '' TERM\nsleep 1000\n")
    run = start(pyinit_run, "true",
                flags=("--kill-timeout", "5", "--shutdown-timeout", "1.5"))
    wait_for(lambda: any(p.name() == "sleep" for p in run.descendants()), 10, "the script")
    t0 = time.monotonic()
    run.kill(signal.SIGTERM)
    code, _ = finish(run)
    elapsed = time.monotonic() - t0
    # the budget, then at most 1 s to reap what SIGKILL hit
    assert 1.4 <= elapsed < 3.5, elapsed
    assert code == 128 + signal.SIGTERM


def test_post_shutdown_script_is_bounded_by_the_budget_and_kill_all_still_runs(
        pyinit_run, tmp_path: Path, tag: str) -> None:
    """A TERM-ignoring post-shutdown script is killed when the budget runs out; kill-all
    then still ends the daemon it would have stopped."""
    log, ready = tmp_path / "log", tmp_path / "daemon.pid"
    daemon = script(tmp_path, "daemon.py", DAEMON)
    write_script(tmp_path / "post_shutdown.d" / "10-stubborn",
                 f"echo post-started >> {log}\n"
                 + CHECK_ALIVE.format(pidfile=ready, what="daemon", log=log)
                 + f"trap '' TERM\nsleep 1000\necho post-after >> {log}\n")
    main = f"{PY} {daemon} {log} {ready} exit {tag}; exec sleep 1000"
    run = start(pyinit_run, "sh", "-c", main,
                flags=("--kill-timeout", "5", "--shutdown-timeout", "1.5"))
    wait_for(ready.exists, 10, "the daemon")
    wait_for(lambda: any(p.name() == "sleep" for p in run.descendants()), 10, "main's exec")
    t0 = time.monotonic()
    run.kill(signal.SIGTERM)
    code, err = finish(run)
    elapsed = time.monotonic() - t0
    # the budget, then at most 1 s to reap what kill-all's SIGKILL hit
    assert 1.4 <= elapsed < 3.5, elapsed
    assert code == 128 + signal.SIGTERM
    # kill-all comes after the script: TERM (logged, unless the KILL that follows at
    # once, the budget being spent, wins the race) or KILL ends the daemon
    assert lines(log)[:2] == ["post-started", "daemon-alive"]
    assert "post-after" not in lines(log)
    assert f"{tmp_path}/post_shutdown.d/10-stubborn still running after" in err
    assert not tagged_processes(tag)  # the daemon (its pid in the namespace is no use here)


# --- subreaper mode --------------------------------------------------------------------


def test_subreaper_mode_says_so_at_verbose(pyinit_run) -> None:
    run = start(pyinit_run, "true", pid1=False, flags=("-v",))
    code, err = finish(run)
    assert code == 0
    assert "pyinit: debug: not PID 1: registered as child subreaper" in err.splitlines()


def test_pid1_mode_does_not_register_as_subreaper(pyinit_run) -> None:
    run = start(pyinit_run, "true", flags=("-v",))
    code, err = finish(run)
    assert code == 0
    assert "subreaper" not in err


def test_subreaper_mode_is_quiet_by_default(pyinit_run) -> None:
    run = start(pyinit_run, "true", pid1=False)
    assert finish(run) == (0, "")


# --- bad input ------------------------------------------------------------------------


def test_missing_directories_are_skipped_silently(pyinit_run, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    run = start(pyinit_run, "sh", "-c", f"touch {out}")
    assert finish(run) == (0, "")
    assert out.exists()


def test_directories_that_are_files_give_one_warning_each(pyinit_run, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    for name in ("my_init.d", "pre_shutdown.d", "post_shutdown.d"):
        (tmp_path / name).write_text("not a directory\n")
    run = start(pyinit_run, "sh", "-c", f"touch {out}")
    code, err = finish(run)
    assert code == 0
    assert out.exists()
    warnings = pyinit_lines(err)
    assert len(warnings) == 3, err
    for name in ("my_init.d", "pre_shutdown.d", "post_shutdown.d"):
        matching = [w for w in warnings if str(tmp_path / name) in w]
        assert len(matching) == 1 and matching[0].startswith("pyinit: warning: cannot read")


def test_unwritable_env_dir_warns_and_boots(pyinit_run, tmp_path: Path) -> None:
    out = tmp_path / "ran"
    (tmp_path / "container_environment").write_text("a file, not a directory\n")
    run = start(pyinit_run, "sh", "-c", f"touch {out}")
    code, err = finish(run)
    assert code == 0
    assert out.exists()
    assert all(w.startswith("pyinit: warning: ") for w in pyinit_lines(err)), err
    env_dir = tmp_path / "container_environment"
    fallback = tmp_path / "run" / "container_environment"
    assert [w for w in pyinit_lines(err) if "container environment" in w] == [
        f"pyinit: warning: cannot write the container environment to {env_dir} (Not a directory): "
        f"writing it to {fallback} instead"], err
    assert (tmp_path / "run" / "container_environment.sh").is_file()


def test_unreadable_dirs_as_non_root(tag: str) -> None:
    """Run as an unprivileged user (setpriv): an init dir it may not read is skipped
    and an env dir it may not write is not exported, each with one warning."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv(1) is not installed")
    base = Path(tempfile.mkdtemp(prefix="pyinit-nonroot-"))  # pytest's tmp is root-only
    base.chmod(0o755)
    init = base / "my_init.d"
    write_script(init / "10-never", "exit 1\n")
    init.chmod(0o700)
    out = base / "outdir"
    out.mkdir()
    out.chmod(0o777)
    wrapper = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    run = Run(["sh", "-c", f"touch {out}/ran; id -u > {out}/uid", tag], base, pid1=False,
              flags=FLAGS, wrapper=wrapper)
    try:
        code, err = finish(run)
        uid = (out / "uid").read_text().strip()
    finally:
        leaked = run.cleanup()
        shutil.rmtree(base)
    assert not leaked
    assert code == 0
    assert uid == "65534"  # the main command ran, as the unprivileged user
    msgs = pyinit_lines(err)
    assert all(m.startswith("pyinit: warning: ") for m in msgs), err
    assert [m for m in msgs if "cannot read" in m and str(init) in m], err
    assert len([m for m in msgs if "cannot export the environment" in m]) == 1, err


def test_bad_env_files_give_one_warning_each(pyinit_run, tmp_path: Path) -> None:
    env_dir = tmp_path / "container_environment"
    env_dir.mkdir()
    (env_dir / "GOOD").write_text("good\n")
    (env_dir / "BAD-NAME").write_text("x\n")
    (env_dir / "1X").write_text("x\n")
    (env_dir / "LATIN").write_bytes(b"caf\xe9\n")
    (env_dir / "NUL").write_bytes(b"a\0b\n")
    out = tmp_path / "out"
    write_script(tmp_path / "my_init.d" / "10-script", "true\n")
    main = f'echo "$GOOD ${{LATIN-unset}} ${{NUL-unset}}" > {out}'
    run = start(pyinit_run, "sh", "-c", main)
    code, err = finish(run)
    assert code == 0
    assert out.read_text() == "good unset unset\n"
    warnings = [w for w in pyinit_lines(err) if w.startswith("pyinit: warning: ")]
    for name in ("BAD-NAME", "1X", "LATIN", "NUL"):
        matching = [w for w in warnings if name in w]
        assert len(matching) == 1, (name, err)
    assert len(warnings) == 4, err


def test_inherited_non_utf8_variable(pyinit_run, tmp_path: Path) -> None:
    """A variable with undecodable bytes in pyinit's own environment: one warning,
    not exported to the env dir, handed to the main command unchanged."""
    out = tmp_path / "out"
    run = start(pyinit_run, "sh", "-c", f'printf %s "$RAW_BYTES" > {out}',
                env={"RAW_BYTES": os.fsdecode(b"caf\xe9 \xff")})
    code, err = finish(run)
    assert code == 0
    assert out.read_bytes() == b"caf\xe9 \xff"
    assert pyinit_lines(err) == [
        "pyinit: warning: not exporting RAW_BYTES: its value is not valid UTF-8"
    ]
    assert "RAW_BYTES" not in json.loads((tmp_path / "container_environment.json").read_text())


def test_bad_flag_exits_2_with_usage(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([PY, "-m", "pyinit", "--kill-timeout", "soon", "true"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2
    assert r.stderr.startswith("usage: pyinit")
    assert "--kill-timeout" in r.stderr and "Traceback" not in r.stderr


def test_bad_timeout_env_exits_2_with_usage(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KILL_PROCESS_TIMEOUT": "soon"}
    r = subprocess.run([PY, "-m", "pyinit", "true"], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 2
    assert r.stderr.startswith("usage: pyinit")
    assert "KILL_PROCESS_TIMEOUT" in r.stderr and "Traceback" not in r.stderr
