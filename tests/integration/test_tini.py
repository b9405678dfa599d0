"""pyinit as `tini` (a symlink named tini): flags, environment, messages and exit codes,
compared with Debian's real tini side by side where it is installed."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import can_unshare, kill_tree, wait_for

REAL_TINI = shutil.which("tini")


@pytest.fixture(scope="module")
def tini(tmp_path_factory) -> str:
    """pyinit's console script under the name tini."""
    d = tmp_path_factory.mktemp("tini")
    link = d / "tini"
    link.symlink_to(Path(sys.executable).parent / "pyinit")
    return str(link)


def run(binary: str, args: list[str], env: dict[str, str] | None = None,
        pid1: bool = False) -> tuple[int, str, str]:
    prefix = ["unshare", "--pid", "--fork", "--mount-proc"] if pid1 else []
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TINI_")}
    full_env.update(env or {})
    # its own session, so a run that times out is killed whole: unshare's forked PID 1
    # (and with it the namespace), not only unshare
    proc = subprocess.Popen(prefix + [binary, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.communicate()
        raise
    return (proc.returncode, normalize(out).replace(binary, "TINI"),
            normalize(err).replace(binary, "TINI"))


def normalize(text: str) -> str:
    """Pids differ between runs: `tini (123)` -> `tini (N)`, `pid '45'` -> `pid 'N'`."""
    text = re.sub(r"tini \(\d+\)", "tini (N)", text)
    return re.sub(r"pid: '\d+'|pid '\d+'|pid=\d+", "pid=N", text)


def without_note(result: tuple[int, str, str]) -> tuple[int, str, str]:
    """Our usage ends with a note that this is pyinit (and where its docs are)."""
    from pyinit.cli.tini import NOTE

    return result[0], result[1].replace(NOTE, ""), result[2].replace(NOTE, "")


CASES = [
    ["--version"],
    ["--help"],
    ["-h"],
    [],
    ["-e", "300", "true"],
    ["-e", "x", "true"],
    ["-p", "FOO", "true"],
    ["-p", "SIGRTMIN", "true"],
    ["-x", "true"],
    ["-e"],
    ["-s", "--", "nosuchcommand-xyz"],
    ["-s", "--", "/etc/passwd"],
    ["-s", "--", "sh", "-c", "exit 3"],
    ["-s", "-e", "3", "--", "sh", "-c", "exit 3"],
    ["-s", "-e", "3", "-e", "4", "--", "sh", "-c", "exit 4"],
    ["-s", "--", "sh", "-c", "kill -9 $$"],
    ["-s", "-e", "137", "--", "sh", "-c", "kill -9 $$"],
    ["-s", "-vvv", "--", "sh", "-c", "exit 5"],
    ["-s", "sh", "-c", "exit 6"],
    ["--version", "x"],
    ["true"],
]


@pytest.mark.skipif(REAL_TINI is None, reason="Debian's tini is not installed")
@pytest.mark.parametrize("args", CASES, ids=lambda a: " ".join(a) or "(none)")
def test_same_exit_code_and_messages_as_real_tini(tini: str, args: list[str]) -> None:
    assert REAL_TINI is not None
    ours, theirs = without_note(run(tini, args)), run(REAL_TINI, args)
    if "-vvv" in args:  # tini's SIGCHLD count and its "No child to wait" line vary
        drop = re.compile(r".*(Received SIGCHLD|No child to wait).*\n")
        ours = (ours[0], drop.sub("", ours[1]), ours[2])
        theirs = (theirs[0], drop.sub("", theirs[1]), theirs[2])
    assert ours == theirs


def test_every_exit_code_passes_through_and_e_maps_it_to_zero(tini: str) -> None:
    """All 256 codes: as is without -e, and 0 with `-e CODE` (8 at a time)."""
    env = {**os.environ, "TINI_SUBREAPER": ""}
    procs = []
    for code in range(256):
        for expect in (False, True):
            args = [tini] + (["-e", str(code)] if expect else []) + ["--", "sh", "-c",
                                                                   f"exit {code}"]
            procs.append((code, expect, subprocess.Popen(args, env=env)))
        if len(procs) >= 16 or code == 255:
            for c, e, p in procs:
                assert p.wait(30) == (0 if e else c), (c, e)
            procs.clear()


def test_env_vars_count_when_empty_and_verbosity_overrides(tini: str) -> None:
    rc, out, err = run(tini, ["--", "true"], {"TINI_SUBREAPER": ""})
    assert (rc, err) == (0, "")  # subreaper: no "zombie reaping won't work" warning
    rc, out, err = run(tini, ["-vvv", "--", "true"], {"TINI_SUBREAPER": "",
                                                       "TINI_VERBOSITY": "0"})
    assert (rc, out, err) == (0, "", "")
    rc, out, _ = run(tini, ["--", "true"], {"TINI_SUBREAPER": "", "TINI_VERBOSITY": "2"})
    assert "[INFO  tini (N)] Spawned child process 'true' with pid=N" in out


def test_posixly_correct_stops_options_at_the_command(tini: str) -> None:
    rc, _, err = run(tini, ["-s", "sh", "-c", "exit 4"])
    assert rc == 1 and "invalid option -- 'c'" in err  # GNU permutation: -c is tini's
    rc, _, err = run(tini, ["-s", "sh", "-c", "exit 4"], {"POSIXLY_CORRECT": "1"})
    assert (rc, err) == (4, "")  # here -c belongs to sh
    rc, _, _ = run(tini, ["-s", "true", "-e", "0"])
    assert rc == 0


@pytest.mark.skipif(can_unshare() is not None, reason="needs unshare")
def test_as_pid1_warns_for_each_reaped_zombie_with_w(tini: str) -> None:
    # An orphan that tini reaps: it outlives its parent (it runs until that parent is gone,
    # so the parent can never reap it first), and the main child exits only once the
    # orphan is gone from /proc (reaped), not after a delay that may be too short.
    orphan = "while kill -0 \"$1\" 2>/dev/null; do sleep 0.01; done"
    parent = f"sh -c {shlex.quote(orphan)} orphan $$ >/dev/null & echo $!"
    script = f"p=$(sh -c {shlex.quote(parent)}); while [ -e /proc/$p ]; do sleep 0.01; done"
    rc, out, err = run(tini, ["-w", "--", "sh", "-c", script], pid1=True)
    assert rc == 0
    assert err == "[WARN  tini (N)] Reaped zombie process with pid=N\n"
    rc, out, err = run(tini, ["--", "sh", "-c", script], pid1=True)
    assert (rc, err) == (0, "")


def test_signals_are_forwarded_to_the_child_or_its_group(tini: str, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    body = (f"trap 'echo child > {marks}/child; exit 7' USR1\n"
            f"(trap 'echo grandchild > {marks}/grand; exit 0' USR1; "
            f"touch {marks}/ready2; while :; do sleep 0.05; done) &\n"
            f"touch {marks}/ready; while :; do sleep 0.05; done\n")
    for group in (False, True):
        for f in marks.iterdir():
            f.unlink()
        args = [tini, "-s"] + (["-g"] if group else []) + ["--", "sh", "-c", body]
        proc = subprocess.Popen(args, start_new_session=True)
        try:
            wait_for(lambda: (marks / "ready").exists() and (marks / "ready2").exists(), 10,
                     "the child's traps")
            proc.send_signal(signal.SIGUSR1)
            assert proc.wait(10) == 7
            assert (marks / "child").read_text() == "child\n"
            if group:
                wait_for(lambda: (marks / "grand").exists(), 5, "the grandchild's trap")
            else:  # only the child was signalled
                assert not (marks / "grand").exists()
        finally:
            kill_tree(proc.pid)  # the grandchild too, in the child's process group
            proc.wait()


def test_parent_death_signal_reaches_the_child(tini: str, tmp_path: Path) -> None:
    """-p SIGTERM: when tini's parent dies tini gets SIGTERM and passes it on."""
    out, started = tmp_path / "got", tmp_path / "started"
    # The parent exits when told to (a line on its stdin), not after a guessed delay:
    # only once the child runs, so tini has set its parent-death signal (before spawning).
    parent = subprocess.Popen(
        ["sh", "-c", f"{tini} -s -p SIGTERM -- sh -c "
         f"\"trap 'echo term > {out}; exit 0' TERM; : > {started}; "
         "while :; do sleep 0.05; done\" & echo $!; read _ || :"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert parent.stdin is not None and parent.stdout is not None
        tini_pid = int(parent.stdout.readline())
        wait_for(started.exists, 10, "the child to start (tini's -p is set by then)")
        assert not out.exists()  # nothing has signalled the child yet
        parent.stdin.close()  # read gets EOF: the parent exits
        assert parent.wait(10) == 0  # the kernel sends tini SIGTERM
        wait_for(lambda: out.exists(), 10, "the child to get SIGTERM")
        wait_for(lambda: gone(tini_pid), 10, "tini to exit")
    finally:
        kill_tree(parent.pid)
        parent.wait()


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
