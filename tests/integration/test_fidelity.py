"""Drop-in fidelity found by review (after issues 17 and 18): where pyinit's tools still
behaved differently from Debian's sv, tini, dumb-init or phusion's tools, side by side."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_services
from helpers import ROOT, wait_for
from test_dropin import HUP_PROOF, SV, _second_passed, needs_runit, normal, runsvdir
from test_services import SVCTL_CODE, service

box = test_services.box  # the fixture: pyinit as PID 1 and the ways to talk to it


def svctl_in(b, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """svctl run from the directory cwd, as a script in a service dir runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYINIT_RUN_DIR", None)
    argv = [sys.executable, "-c", SVCTL_CODE, "--run-dir", str(b.run_dir), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=30)


# --- a SERVICE word starting with '.' is a path from the caller's cwd ------------------------
DOT_PATHS = [
    ["status", "."],
    ["-w", "5", "down", "."],
    ["status", ".", "../a", "./"],
    ["-w", "5", "up", "../a/", "."],
    ["-w", "5", "once", "."],
    ["status", "./nosuch", "."],
]


@needs_runit
@pytest.mark.pid1
def test_dot_paths_are_from_the_callers_cwd_as_sv(box, tmp_path: Path, tag: str) -> None:
    """`cd /etc/service/a && sv status .` (and `sv down .` in a finish script): sv takes a
    word starting with '.' as a path from its cwd. On main, svctl resolved it from PID 1's
    cwd (`/`) and failed: `fail: .: unable to change to service directory`."""
    mine = service(tmp_path, tag, "a", HUP_PROOF)
    b = box()
    b.ready("a")
    with runsvdir(tmp_path, tag, ["a"]) as root:
        env = {**os.environ, "SVDIR": "/nonexistent"}  # '.' words never look at SVDIR
        wait_for(lambda: (root / "a" / "ready").exists(), 10, "runsv's a to be up")
        for argv in DOT_PATHS:
            wait_for(
                lambda: _second_passed(root / "a") and _second_passed(mine),
                3,
                "the status records' second to pass",
            )
            theirs = subprocess.run(
                [SV or "sv", *argv],
                capture_output=True,
                text=True,
                env=env,
                cwd=root / "a",
                timeout=30,
            )
            ours = svctl_in(b, mine, *argv)
            assert (ours.returncode, normal(ours.stdout)) == (
                theirs.returncode,
                normal(theirs.stdout),
            ), (argv, ours, theirs)
    b.stop()


# --- a link to pyinit under a tool's name runs that tool ------------------------------------
PYINIT_SCRIPT = Path(sys.executable).parent / "pyinit"


def linked(tmp: Path, name: str) -> Path:
    link = tmp / "bin" / name
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(PYINIT_SCRIPT)
    return link


def run_link(tmp: Path, argv: list[str], stdin=None) -> subprocess.CompletedProcess:
    """Run argv with every dir pyinit would boot from empty, and pyinit's mode (were it
    to boot: main's behaviour) a subreaper that exits when its command does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYINIT_")}
    for key in (
        "SERVICE_DIR",
        "INIT_DIR",
        "ENV_DIR",
        "PRE_SHUTDOWN_DIR",
        "POST_SHUTDOWN_DIR",
        "CONT_INIT_DIR",
        "CONT_FINISH_DIR",
    ):
        (tmp / "empty" / key).mkdir(parents=True, exist_ok=True)
        env[f"PYINIT_{key}"] = str(tmp / "empty" / key)
    env["PYINIT_RUN_DIR"] = str(tmp / "run")
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, stdin=stdin)


@pytest.mark.parametrize("name", ["setuser"])
def test_pyinit_linked_as_setuser_is_setuser(tmp_path: Path, name: str) -> None:
    """`ln -s pyinit /sbin/setuser` (as tini, dumb-init and my_init are installed): on
    main it booted a second init (every service in /etc/service) with `nobody` as its
    main command, exit 127. It is setuser: the same result as the `setuser` script."""
    link = linked(tmp_path, name)
    probe = 'echo "$USER $UID $HOME"; grep -E "^Sig(Blk|Ign)" /proc/self/status'
    ours = run_link(tmp_path, [str(link), "nobody", "sh", "-c", probe])
    script = run_link(
        tmp_path, [str(PYINIT_SCRIPT.parent / "setuser"), "nobody", "sh", "-c", probe]
    )
    assert (ours.returncode, ours.stdout, ours.stderr) == (0, script.stdout, ""), ours
    assert ours.stdout.startswith("nobody 65534 ") and "SigBlk:\t0000000000000000" in ours.stdout
    bad = run_link(tmp_path, [str(link), "no-such-user-xyz", "true"])
    mine = run_link(tmp_path, [str(PYINIT_SCRIPT.parent / "setuser"), "no-such-user-xyz", "true"])
    assert (bad.returncode, bad.stderr) == (mine.returncode, mine.stderr) != (0, "")


@pytest.mark.parametrize("name", ["sv", "svctl"])
def test_pyinit_linked_as_sv_is_svctl(tmp_path: Path, name: str) -> None:
    """`ln -s pyinit /usr/bin/sv`: on main, `sv status web` booted a second init that ran
    every service a second time, with `status` as its main command (exit 127)."""
    link = linked(tmp_path, name)
    r = run_link(tmp_path, [str(link), "status", "web"])
    sock = tmp_path / "run" / "control.sock"
    assert (r.returncode, r.stdout) == (100, ""), r
    assert r.stderr == f"svctl: fatal: cannot reach pyinit at {sock}: No such file or directory\n"
    assert not sock.exists()


def test_pyinit_linked_as_with_contenv_is_pyinit_env(tmp_path: Path) -> None:
    """s6-overlay's `#!/command/with-contenv sh`, with the link made to pyinit itself: the
    command is exec'd in place as pyinit-env does (on main: the child of a second init)."""
    link = linked(tmp_path, "with-contenv")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYINIT_")}
    env["PYINIT_ENV_DIR"] = str(tmp_path / "empty-env")
    env["PYINIT_SERVICE_DIR"] = str(tmp_path / "empty-env")
    proc = subprocess.Popen(
        [str(link), "sh", "-c", "echo $$"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (0, f"{proc.pid}\n", "")


# --- sv exit: the service comes back, as runsvdir starts a new runsv for its directory --------
@pytest.mark.pid1
def test_exit_then_the_directory_is_found_again(box, tmp_path: Path, tag: str) -> None:
    """`sv exit web` under runsvdir: runsv exits, and runsvdir's next scan (about a second
    later) starts a new one, so web runs again (the idiom to make runit pick up a new
    `log/`). docs/services.md says pyinit does the same "at the next rescan", but pyinit
    rescans on inotify events only: on main the service stayed gone for good."""
    service(tmp_path, tag, "web", log="exec cat > /dev/null\n")
    service(tmp_path, tag, "quiet", down=True)
    b = box()
    first = b.wait_running("web")["web"]
    b.wait("quiet", lambda r: r["state"] == "down", 10, "quiet to be supervised")
    for name in ("web", "quiet"):
        r = b.svctl("-w", "10", "exit", name)
        assert r.returncode == 0 and r.stdout.startswith(f"ok: down: {name}: "), r
    again = b.wait(
        "web",
        lambda r: r["state"] == "run" and r["pid"] != first["pid"] and r["log"]["pid"],
        10,
        "web and its logger to run again after exit",
    )
    assert again["log"]["pid"] != first["log"]["pid"]  # a new logger too, as a new runsv
    quiet = b.wait("quiet", lambda r: True, 10, "quiet to be supervised again")
    assert quiet["state"] == "down" and not quiet["pid"]  # its `down` file still counts
    b.stop()


# --- sv's LSB mode: /etc/init.d/NAME linked to sv ---------------------------------------------
LSB_LINES = [
    ["status"],
    ["-w", "5", "stop"],
    ["status"],
    ["-w", "5", "start"],
    ["status", "ignored", "words"],
    ["s"],
    ["stat"],
    ["bogus"],
    [],
    ["tree"],
    ["-w", "5", "restart"],
    ["-w", "5", "d"],
    ["status"],
    ["-w", "5", "u"],
]


@needs_runit
@pytest.mark.pid1
@pytest.mark.parametrize("tool", ["svctl", "pyinit"])
def test_init_script_link_acts_on_its_service_only(
    box, tmp_path: Path, tag: str, tool: str
) -> None:
    """Debian's sv linked as /etc/init.d/a acts on service a only, with LSB's status codes
    (3: not running) and `usage: a [-w sec] command`, exit 2. On main, svctl under that
    name ignored it (`/etc/init.d/a stop` stopped every service), and pyinit under it
    booted a second init."""
    service(tmp_path, tag, "a", HUP_PROOF)
    service(tmp_path, tag, "b")
    b = box()
    b.ready("a")
    other = b.wait_running("b")["b"]["pid"]
    real = tmp_path / "real" / "etc" / "init.d" / "a"
    ours = tmp_path / "ours" / "etc" / "init.d" / "a"
    for link, target in ((real, Path(SV or "sv")), (ours, PYINIT_SCRIPT.parent / tool)):
        link.parent.mkdir(parents=True)
        link.symlink_to(target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYINIT_")}
    env["PYTHONPATH"] = str(ROOT)
    with runsvdir(tmp_path, tag, ["a"]) as root:
        wait_for(lambda: (root / "a" / "ready").exists(), 10, "runsv's a to be up")
        for argv in LSB_LINES:
            wait_for(
                lambda: _second_passed(root / "a") and _second_passed(b.tmp / "service" / "a"),
                3,
                "the status records' second to pass",
            )
            theirs = subprocess.run(
                [str(real), *argv],
                capture_output=True,
                text=True,
                timeout=30,
                env={**env, "SVDIR": str(root)},
            )
            mine = subprocess.run(
                [str(ours), *argv],
                capture_output=True,
                text=True,
                timeout=30,
                env={**env, "PYINIT_RUN_DIR": str(b.run_dir)},
            )
            assert (mine.returncode, normal(mine.stdout), mine.stderr) == (
                theirs.returncode,
                normal(theirs.stdout),
                theirs.stderr,
            ), argv
        rec = b.rec("b")  # (runsvdir's cleanup kills every tagged process: check first)
        assert (rec["state"], rec["pid"]) == ("run", other), rec  # never touched
    b.stop()
