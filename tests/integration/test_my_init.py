"""pyinit as `my_init` (a symlink): phusion's flags, its exit code 2 for a SIGTERM-ended
run without a main command, and its two bugs fixed (a signalled main command exits
128+N, not 0; signals reach the main command)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import can_unshare, tagged_processes, wait_for, write_script

pytestmark = pytest.mark.skipif(can_unshare() is not None, reason="needs unshare")


@pytest.fixture
def my_init(tmp_path: Path) -> list[str]:
    link = tmp_path / "my_init"
    link.symlink_to(Path(sys.executable).parent / "pyinit")
    (tmp_path / "empty").mkdir()
    return ["unshare", "--pid", "--fork", "--mount-proc", str(link), "--skip-startup-files",
            "--service-dir", str(tmp_path / "empty"), "--run-dir", str(tmp_path / "run"),
            "--config", str(tmp_path / "none.yaml"), "--kill-timeout", "2"]


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pid1_of(proc: subprocess.Popen) -> int:
    """The host pid of my_init (PID 1 inside): unshare's child."""
    path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    return int(wait_for(lambda: path.read_text().split()[:1], 10, "PID 1")[0])


def test_sigterm_without_main_command_exits_2(my_init: list[str], tmp_path: Path) -> None:
    proc = start(my_init)
    try:
        wait_for(lambda: (tmp_path / "run" / "control.sock").exists(), 10, "the control socket")
        subprocess.run(["kill", "-TERM", str(pid1_of(proc))], check=True)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 2
        assert "Traceback" not in err
    finally:
        proc.kill()
        proc.wait()


# --- --enable-insecure-key --------------------------------------------------------------


def with_startup_files(my_init: list[str], tmp_path: Path, key_script: Path) -> list[str]:
    """my_init's argv with an init dir, the stand-in enable_insecure_key, and the flag."""
    argv = [a for a in my_init if a != "--skip-startup-files"]
    return argv + ["--init-dir", str(tmp_path / "my_init.d"), "--env-dir",
                   str(tmp_path / "container_environment"), "--rc-local",
                   str(tmp_path / "rc.local"), "--insecure-key-script", str(key_script),
                   "--enable-insecure-key"]


def test_enable_insecure_key_runs_the_script_first_then_the_startup_scripts(
        my_init: list[str], tmp_path: Path) -> None:
    """As my_init: after the environment import, before /etc/my_init.d (with the
    container environment, as PID 1's child)."""
    log = tmp_path / "log"
    key = write_script(tmp_path / "enable_insecure_key",
                       f'echo "key HOME=$HOME PPID=$PPID FROM_DIR=$FROM_DIR" >> {log}\n')
    (tmp_path / "container_environment").mkdir()
    (tmp_path / "container_environment" / "FROM_DIR").write_text("x")
    write_script(tmp_path / "my_init.d" / "10-first", f"echo init >> {log}\n")
    proc = start(with_startup_files(my_init, tmp_path, key) + ["--", "true"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert log.read_text().splitlines() == ["key HOME=/root PPID=1 FROM_DIR=x", "init"]
    assert f"pyinit: info: installing the insecure SSH key: running {key}" in err


def test_enable_insecure_key_without_the_script_says_so_in_one_line(
        my_init: list[str], tmp_path: Path) -> None:
    log = tmp_path / "log"
    missing = tmp_path / "no-such-enable_insecure_key"
    write_script(tmp_path / "my_init.d" / "10-first", f"echo init >> {log}\n")
    proc = start(with_startup_files(my_init, tmp_path, missing) + ["--", "true"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert log.read_text() == "init\n"  # the boot goes on
    said = [line for line in err.splitlines() if "--enable-insecure-key" in line]
    assert said == [f"pyinit: warning: --enable-insecure-key: {missing} does not exist: "
                    "no SSH key installed"]


def test_enable_insecure_key_failing_stops_the_boot(my_init: list[str], tmp_path: Path) -> None:
    log = tmp_path / "log"
    key = write_script(tmp_path / "enable_insecure_key", "exit 3\n")
    write_script(tmp_path / "my_init.d" / "10-first", f"echo init >> {log}\n")
    proc = start(with_startup_files(my_init, tmp_path, key) + ["--", "true"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert not log.exists()
    assert f"pyinit: error: {key} failed with exit code 3; stopping the boot" in err


def test_enable_insecure_key_is_killable(my_init: list[str], tmp_path: Path, tag: str) -> None:
    """SIGTERM while it runs: it is stopped, no startup script runs, my_init's 2."""
    log, started = tmp_path / "log", tmp_path / "started"
    key = write_script(tmp_path / "enable_insecure_key",
                       f"trap 'echo key-got-TERM >> {log}; exit 1' TERM\n"
                       f"touch {started}\n{sys.executable} -c 'import time; "
                       f"time.sleep(1000)' {tag} & wait $!\n")
    write_script(tmp_path / "my_init.d" / "10-first", f"echo init >> {log}\n")
    proc = start(with_startup_files(my_init, tmp_path, key))
    try:
        wait_for(started.exists, 10, "enable_insecure_key")
        subprocess.run(["kill", "-TERM", str(pid1_of(proc))], check=True)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 2, err
        assert log.read_text() == "key-got-TERM\n"
        assert not tagged_processes(tag)
    finally:
        proc.kill()
        proc.wait()


def test_main_command_gets_signals_and_its_signal_death_is_128_plus_n(
        my_init: list[str], tmp_path: Path) -> None:
    got = tmp_path / "got"
    body = (f"trap 'echo usr1 > {got}; kill -KILL $$' USR1; touch {tmp_path}/ready; "
            "while :; do sleep 0.05; done")
    proc = start(my_init + ["--", "sh", "-c", body])
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), 10, "the main command")
        subprocess.run(["kill", "-USR1", str(pid1_of(proc))], check=True)
        proc.communicate(timeout=15)
        assert got.read_text() == "usr1\n"  # forwarded (my_init did not)
        assert proc.returncode == 128 + signal.SIGKILL  # my_init said 0
    finally:
        proc.kill()
        proc.wait()


# --- fidelity: repeated flags, ENV_INIT_DIRECTORY --------------------------------------


def test_enable_insecure_key_given_twice_is_accepted_as_by_my_init(
        my_init: list[str], tmp_path: Path) -> None:
    """my_init's argparse takes a store_true flag any number of times; the key is
    installed once; the same word in the main command reaches the command."""
    log = tmp_path / "log"
    key = write_script(tmp_path / "enable_insecure_key", f"echo key >> {log}\n")
    argv = with_startup_files(my_init, tmp_path, key) + ["--enable-insecure-key"]
    proc = start(argv + ["--", "sh", "-c", f'echo "cmd $1" >> {log}', "sh",
                         "--enable-insecure-key"])
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert log.read_text().splitlines() == ["key", "cmd --enable-insecure-key"]


def test_env_init_directory_names_the_startup_scripts_dir(
        my_init: list[str], tmp_path: Path) -> None:
    """phusion's my_init reads its startup scripts from $ENV_INIT_DIRECTORY."""
    log = tmp_path / "log"
    write_script(tmp_path / "elsewhere" / "10-first", f"echo elsewhere >> {log}\n")
    argv = [a for a in my_init if a != "--skip-startup-files"]
    argv += ["--env-dir", str(tmp_path / "container_environment"),
             "--rc-local", str(tmp_path / "rc.local"), "--", "true"]
    env = {k: v for k, v in os.environ.items() if k != "PYINIT_INIT_DIR"}
    env["ENV_INIT_DIRECTORY"] = str(tmp_path / "elsewhere")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert log.read_text() == "elsewhere\n"
