"""Drop-in fidelity (issue 18, items 6-9) with pyinit as a real PID 1: `svctl check` in a
crash loop, sv's command syntax side by side with Debian's runit, and PID 1's cwd."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import test_services
from helpers import ROOT, _kill, kill_tree, tagged_processes, wait_for
from test_services import LONG, SVCTL_CODE, service

box = test_services.box  # the fixture: pyinit as PID 1 and the ways to talk to it

# exits 1 a moment after it starts: each run is a crash (less than a second up), and a
# tiny backoff keeps it in `run` most of the time, where check used to catch it
CRASH = "echo $$ > ready\nsleep 0.3\nexit 1\n"
QUICK_BACKOFF = "backoff:\n  initial: 0.1\n  factor: 1\n  max: 0.1\n"


TIMEOUT_LINE = re.compile(r"timeout: (run: broken: \(pid \d+\) |(down|finish): broken: )\d+s.*")


@pytest.mark.pid1
def test_check_never_says_ok_for_a_crash_loop(box, tmp_path: Path, tag: str) -> None:
    broken = service(tmp_path, tag, "broken", CRASH)
    (broken / "service.yaml").write_text(QUICK_BACKOFF)
    service(tmp_path, tag, "steady")
    b = box()
    b.wait_running("steady")
    b.wait("broken", lambda r: r["restarts"] >= 2, 10, "broken to crash twice")
    caught_up = 0
    for _ in range(4):
        for args in (["-w", "0.7", "check", "broken"], ["-w", "0.7", "check"]):
            r = b.svctl(*args)
            assert r.returncode == 1, f"svctl {args}: rc {r.returncode}\n{r.stdout}{r.stderr}"
            lines = r.stdout.splitlines()
            assert [x for x in lines if "broken" in x] == [lines[0]], r.stdout
            assert TIMEOUT_LINE.fullmatch(lines[0]), r.stdout
            assert all(x.startswith("ok: run: steady: ") for x in lines[1:]), r.stdout
            caught_up += lines[0].startswith("timeout: run: ")
    # with 0.3 s up and 0.1 s down, check ends while run is up most of the time: that
    # is the moment main's check called it healthy
    assert caught_up, "check never ended while broken's run was up"
    # check can pass: a healthy service, and a restarted one once it has settled
    out = b.ok("check", "steady")
    assert re.fullmatch(r"ok: run: steady: \(pid \d+\) \d+s", out.strip()), out
    b.ok("-w", "5", "restart", "steady")
    assert b.rec("steady")["restarts"] == 1
    out = b.ok("-w", "5", "check", "steady")
    assert re.fullmatch(r"ok: run: steady: \(pid \d+\) [1-9]\d*s", out.strip()), out
    b.stop()


# --- sv's command syntax, side by side with Debian's runit (issue 18.8) --------------------
SV = shutil.which("sv")
RUNSVDIR = shutil.which("runsvdir")
needs_runit = pytest.mark.skipif(
    SV is None or RUNSVDIR is None, reason="runit's sv and runsvdir are not installed"
)


def normal(text: str) -> str:
    """sv's lines with the parts that differ by nature (pids, seconds) made equal."""
    text = re.sub(r"\(pid \d+\)", "(pid N)", text)
    return re.sub(r"\b\d+s\b", "Ks", text)


@contextlib.contextmanager
def runsvdir(tmp: Path, tag: str, names: list[str]):
    """A real runsvdir over a service dir like pyinit's; yields the dir."""
    assert RUNSVDIR is not None
    base = "runit"
    for name in names:
        service(tmp, tag, name, HUP_PROOF, base=base)
    root = tmp / base
    proc = subprocess.Popen(
        [RUNSVDIR, str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield root
    finally:
        proc.send_signal(signal.SIGHUP)  # runsvdir: TERM every runsv, then exit
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for p in tagged_processes(tag):
            _kill(p.pid)


# as test_services.LONG, and a HUP (sv reload, hup) leaves it running
HUP_PROOF = "trap '' HUP\n" + LONG
SIDE_BY_SIDE = [
    ["s", "a"],
    ["stat", "a"],
    ["status", "a"],
    ["sxyz", "a"],
    ["-w", "5", "d", "a"],
    ["s", "a"],
    ["-w", "5", "uxyz", "a"],
    ["-w", "5", "u", "a"],
    ["-w", "5", "p", "a"],
    ["s", "a"],
    ["-w", "5", "cxyz", "a"],
    ["-w", "5", "term", "a"],
    ["-w", "5", "t", "a"],
    ["-w", "5", "check", "a"],
    ["-w", "5", "D", "a"],
    ["-w", "5", "up", "a"],
    ["-w", "5", "T", "a"],
    ["-w", "5", "try-restart", "a"],
    ["-w", "5", "reload", "a"],
    ["s", "a", "nosuch"],
    ["frob", "a"],
    ["l", "a"],
    ["r", "a"],
    ["f", "a"],
    ["w", "a"],
    ["", "a"],
]


@needs_runit
@pytest.mark.pid1
def test_same_command_lines_as_real_sv(box, tmp_path: Path, tag: str) -> None:
    """Each command line goes to a runsvdir through `sv` and to pyinit through svctl:
    same exit code, same lines (pids and seconds aside); usage errors are exit 100."""
    service(tmp_path, tag, "a", HUP_PROOF)
    b = box()
    b.ready("a")
    with runsvdir(tmp_path, tag, ["a"]) as root:
        env = {**os.environ, "SVDIR": str(root)}
        wait_for(lambda: (root / "a" / "ready").exists(), 10, "runsv's a to be up")
        for argv in SIDE_BY_SIDE:
            # sv's waits compare whole seconds of its status record with its own start
            wait_for(
                lambda: _second_passed(root / "a") and _second_passed(b.tmp / "service" / "a"),
                3,
                "the status records' second to pass",
            )
            theirs = subprocess.run(
                [SV or "sv", *argv], capture_output=True, text=True, env=env, timeout=30
            )
            mine = b.svctl(*argv)
            assert mine.returncode == theirs.returncode, (argv, mine, theirs)
            if theirs.returncode == 100:
                assert theirs.stderr.startswith("usage: sv ")
                assert mine.stderr.startswith("svctl: error: unknown command"), mine.stderr
                continue
            assert normal(mine.stdout) == normal(theirs.stdout), argv
    b.stop()


def _second_passed(d: Path) -> bool:
    """sv's restart check compares whole seconds: let the record's second pass first."""
    from pyinit.core.records import decode

    try:
        when = decode((d / "supervise" / "status").read_bytes()).when_ns // 10**9
    except (FileNotFoundError, ValueError):
        return False
    return int(time.time()) > when


@needs_runit
def test_options_after_the_command(tmp_path: Path, tag: str) -> None:
    """sv takes `-w 1` after the command as two service names; svctl refuses, exit 100."""
    with runsvdir(tmp_path, tag, ["a"]) as root:
        env = {**os.environ, "SVDIR": str(root)}
        r = subprocess.run(
            [SV or "sv", "check", "-w", "1"], capture_output=True, text=True, env=env, timeout=30
        )
        assert r.returncode == 2  # what svctl used to do too: names, both missing
        assert "fail: -w: unable to change to service directory" in r.stdout
    r = subprocess.run(
        [sys.executable, "-c", SVCTL_CODE, "--run-dir", str(tmp_path), "check", "-w", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=30,
    )
    assert r.returncode == 100 and r.stdout == ""
    assert r.stderr == (
        "svctl: error: option '-w' after the command 'check': options go before it "
        "(usage: svctl [--run-dir DIR] [-v] [-w SECS] COMMAND [SERVICE...])\n"
    )


# --- personality names (issue 18.7), against Debian's tini-static ---------------------------
REAL_TINI_STATIC = shutil.which("tini-static")
TINI_NAMES = ["tini-static", "docker-init", "tini-amd64", "tini-static-arm64", "tini-muslc-amd64"]
TINI_CASES = [
    ["-s", "-g", "--", "true"],
    ["-s", "-g", "--", "sh", "-c", "exit 3"],
    ["-s", "-e", "4", "--", "sh", "-c", "exit 4"],
    ["-s", "--", "nosuchcommand-xyz"],
    ["--version"],
    ["-x", "true"],
    [],
]


@pytest.mark.skipif(REAL_TINI_STATIC is None, reason="Debian's tini-static is not installed")
@pytest.mark.parametrize("name", TINI_NAMES)
def test_tini_names_behave_as_real_tini_static(tmp_path: Path, name: str) -> None:
    """Installed under tini's other names, pyinit is tini: same exit codes and messages
    as Debian's tini-static under the same name (on main: plain pyinit, exit 2)."""
    assert REAL_TINI_STATIC is not None
    from pyinit.cli.tini import NOTE

    ours = tmp_path / "ours" / name
    theirs = tmp_path / "theirs" / name
    for link, target in (
        (ours, Path(sys.executable).parent / "pyinit"),
        (theirs, Path(REAL_TINI_STATIC)),
    ):
        link.parent.mkdir()
        link.symlink_to(target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINI_")}
    env["PYTHONPATH"] = str(ROOT)
    for args in TINI_CASES:
        got = []
        for binary in (ours, theirs):
            r = subprocess.run(
                [str(binary), *args], capture_output=True, text=True, env=env, timeout=30
            )
            got.append(
                (
                    r.returncode,
                    r.stdout.replace(str(binary), "TINI"),
                    re.sub(
                        r"tini \(\d+\)", "tini (N)", r.stderr.replace(str(binary), "TINI")
                    ).replace(NOTE, ""),
                )
            )
        assert got[0] == got[1], args


# --- PID 1 leaves its cwd (issue 18.6) -------------------------------------------------------
def cwd_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def main_command(seen: Path, tag: str) -> list[str]:
    """Writes its cwd to `seen`, then waits (with the tag on its command line)."""
    return ["sh", "-c", f'pwd -P > "{seen}.tmp" && mv "{seen}.tmp" "{seen}"; sleep 1000', tag]


@pytest.mark.pid1
@pytest.mark.parametrize("pid1", [True, False], ids=["pid1", "subreaper"])
def test_pyinit_leaves_its_cwd_once_the_main_command_started(
    pyinit_run, tmp_path: Path, tag: str, pid1: bool
) -> None:
    """PID 1 (and subreaper mode) end up in "/"; the main command, startup and shutdown
    scripts run in the original cwd, and a relative --service-dir still works."""
    work = tmp_path / "work"
    (work / "svc").mkdir(parents=True)
    seen = tmp_path / "seen"
    service(work, tag, "web", "pwd -P > cwd-seen\n" + LONG, base="svc")
    for stage in ("my_init.d", "pre_shutdown.d", "post_shutdown.d"):
        script = tmp_path / stage / "cwd"
        script.parent.mkdir()
        script.write_text(f'#!/bin/sh\npwd -P > "{tmp_path}/{stage}.seen"\n')
        script.chmod(0o755)
    run = pyinit_run(
        *main_command(seen, tag),
        pid1=pid1,
        wrapper=["env", "-C", str(work)],
        flags=("--service-dir", "svc"),
    )
    wait_for(lambda: seen.exists(), 10, "the main command to start")
    assert seen.read_text().strip() == str(work)
    wait_for(lambda: cwd_of(run.init_pid) == "/", 5, "pyinit to leave its cwd")
    svc_seen = work / "svc" / "web" / "cwd-seen"
    wait_for(lambda: svc_seen.exists() and svc_seen.read_text().strip(), 10, "the service")
    assert svc_seen.read_text().strip() == str(work / "svc" / "web")
    assert (tmp_path / "my_init.d.seen").read_text().strip() == str(work)
    run.kill(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM
    for stage in ("pre_shutdown.d", "post_shutdown.d"):
        assert (tmp_path / f"{stage}.seen").read_text().strip() == str(work), stage


PERSONALITY_CASES = [
    ("my_init", ["--skip-startup-files", "--skip-runit", "--"]),
    ("tini", ["-s", "--"]),
    ("tini-static", ["-s", "--"]),
    ("docker-init", ["-s", "--"]),
    ("dumb-init", []),
]


@pytest.mark.parametrize("name, flags", PERSONALITY_CASES, ids=[c[0] for c in PERSONALITY_CASES])
def test_personalities_leave_their_cwd(tmp_path: Path, tag: str, name: str, flags) -> None:
    """Every personality, installed by a symlink, ends up in "/" once its child has
    started in the original cwd (dumb-init's contract; its own suite checks it)."""
    link = tmp_path / "bin" / name
    link.parent.mkdir()
    link.symlink_to(Path(sys.executable).parent / "pyinit")
    check_leaves_cwd(str(link), flags, tmp_path, tag, expect="/")


REAL_DUMB_INIT = shutil.which("dumb-init")
REAL_TINI = shutil.which("tini")


@pytest.mark.skipif(REAL_DUMB_INIT is None, reason="Debian's dumb-init is not installed")
def test_real_dumb_init_leaves_its_cwd_too(tmp_path: Path, tag: str) -> None:
    assert REAL_DUMB_INIT is not None
    check_leaves_cwd(REAL_DUMB_INIT, [], tmp_path, tag, expect="/")


@pytest.mark.skipif(REAL_TINI is None, reason="Debian's tini is not installed")
def test_real_tini_keeps_its_cwd(tmp_path: Path, tag: str) -> None:
    """The one difference (docs/migration.md, From tini): tini stays where it started."""
    assert REAL_TINI is not None
    check_leaves_cwd(REAL_TINI, ["-s", "--"], tmp_path, tag, expect=str(tmp_path / "work"))


def check_leaves_cwd(binary: str, flags: list[str], tmp: Path, tag: str, expect: str) -> None:
    work = tmp / "work"
    work.mkdir()
    seen = tmp / "seen"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINI_", "DUMB_INIT_"))}
    env["PYTHONPATH"] = str(ROOT)
    for var in ("ENV_DIR", "RUN_DIR", "PRE_SHUTDOWN_DIR", "CONT_FINISH_DIR", "POST_SHUTDOWN_DIR"):
        env[f"PYINIT_{var}"] = str(tmp / var.lower())  # my_init: none of the machine's own
    proc = subprocess.Popen(
        [binary, *flags, *main_command(seen, tag)],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for(lambda: seen.exists() or proc.poll() is not None, 10, "the child to start")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert seen.read_text().strip() == str(work)
        if expect == "/":
            wait_for(lambda: cwd_of(proc.pid) == "/", 5, f"{binary} to leave its cwd")
        else:  # nothing to wait for: it simply never moves (checked once started)
            assert cwd_of(proc.pid) == expect
        child = [p for p in psutil.Process(proc.pid).children() if tag in " ".join(p.cmdline())]
        assert child and cwd_of(child[0].pid) == str(work)
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    finally:
        kill_tree(proc.pid)
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
        for p in tagged_processes(tag):
            _kill(p.pid)


@pytest.mark.pid1
def test_shutdown_scripts_do_not_follow_a_swapped_start_dir(
    pyinit_run, tmp_path: Path, tag: str
) -> None:
    """The start dir is found again by path: if that path now leads elsewhere (a
    symlink swapped in), root's shutdown scripts run in "/" instead."""
    work = tmp_path / "work"
    work.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    seen = tmp_path / "seen"
    script = tmp_path / "post_shutdown.d" / "cwd"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\npwd -P > "{tmp_path}/post.seen"\n')
    script.chmod(0o755)
    run = pyinit_run(*main_command(seen, tag), wrapper=["env", "-C", str(work)])
    wait_for(lambda: seen.exists(), 10, "the main command to start")
    wait_for(lambda: cwd_of(run.init_pid) == "/", 5, "pyinit to leave its cwd")
    work.rename(tmp_path / "work-moved")
    work.symlink_to(elsewhere)
    run.kill(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM
    assert (tmp_path / "post.seen").read_text().strip() == "/"
