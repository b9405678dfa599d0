"""pyinit as `dumb-init` (a symlink named dumb-init): flags, environment, messages, exit
codes, signal rewriting, job control and the terminal hand-off, compared with Debian's
real dumb-init side by side where it is installed."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import kill_tree, wait_for

REAL = shutil.which("dumb-init")
needs_real = pytest.mark.skipif(REAL is None, reason="Debian's dumb-init is not installed")


@pytest.fixture(scope="module")
def ours(tmp_path_factory) -> str:
    link = tmp_path_factory.mktemp("dumb") / "dumb-init"
    link.symlink_to(Path(sys.executable).parent / "pyinit")
    return str(link)


def run(binary: str, args: list[str], env: dict[str, str] | None = None,
        cwd: str = "/tmp") -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DUMB_INIT_")}
    full.update(env or {})
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30, env=full,
                       cwd=cwd)
    clean = lambda t: re.sub(r"PID \d+", "PID N", t).replace(binary, "DUMB")  # noqa: E731
    return r.returncode, clean(r.stdout), clean(r.stderr)


CASES = [
    (["--version"], {}), (["-V"], {}), (["-h"], {}), (["--help"], {}), ([], {}),
    (["-x", "true"], {}), (["-r"], {}), (["-r", "40:1", "true"], {}),
    (["-r", "1", "true"], {}), (["-r", "1:32", "true"], {}), (["--rewrite", "a:b", "true"], {}),
    (["nosuch-command-xyz"], {}), (["/etc/passwd"], {}),
    (["sh", "-c", "exit 3"], {}), (["--", "sh", "-c", "exit 4"], {}),
    (["-c", "sh", "-c", "kill -9 $$"], {}), (["sh", "-c", "kill -15 $$"], {}),
    (["-v", "sh", "-c", "exit 3"], {}), (["-c", "-v", "true"], {}),
    (["true"], {"DUMB_INIT_DEBUG": "1"}), (["true"], {"DUMB_INIT_DEBUG": "1",
                                                      "DUMB_INIT_SETSID": "0"}),
    (["sh", "-c", "echo $PWD"], {}),
    (["sh", "-v", "-c", "true"], {}),  # options stop at the command
]


@needs_real
@pytest.mark.parametrize("args, env", CASES, ids=lambda v: " ".join(v) if isinstance(v, list)
                         else ",".join(f"{k}={x}" for k, x in v.items()))
def test_same_exit_code_and_messages_as_real_dumb_init(ours: str, args, env) -> None:
    assert REAL is not None
    mine, theirs = run(ours, args, env), run(REAL, args, env)
    from pyinit.cli.dumb_init import NOTE

    if args[:1] in (["-h"], ["--help"]):  # ours ends with a note that this is pyinit
        assert mine[2].endswith(NOTE)
        mine = (mine[0], mine[1], mine[2][: -len(NOTE)])
    if "-v" in args or env.get("DUMB_INIT_DEBUG"):  # parent and child print concurrently
        mine, theirs = ((r[0], r[1], sorted(r[2].splitlines())) for r in (mine, theirs))
    assert mine == theirs


def proc_state(pid: int) -> str:
    return psutil.Process(pid).status()


@pytest.mark.parametrize("setsid", [True, False])
def test_tstp_stops_the_child_and_itself_and_cont_resumes_both(ours: str, tmp_path: Path,
                                                                setsid: bool) -> None:
    """Job control: TSTP is passed on as SIGSTOP (setsid mode) and dumb-init stops too."""
    ready = tmp_path / "ready"
    args = [ours] + ([] if setsid else ["-c", "-r", "20:19"]) + [
        "sh", "-c", f"echo $$ > {ready}; while :; do sleep 0.05; done"]
    proc = subprocess.Popen(args, start_new_session=True)
    try:
        child = int(wait_for(lambda: ready.exists() and ready.read_text().strip(), 10,
                             "the child"))
        proc.send_signal(signal.SIGTSTP)
        wait_for(lambda: proc_state(child) == psutil.STATUS_STOPPED, 5, "the child stopped")
        wait_for(lambda: proc_state(proc.pid) == psutil.STATUS_STOPPED, 5, "dumb-init stopped")
        proc.send_signal(signal.SIGCONT)
        wait_for(lambda: proc_state(child) != psutil.STATUS_STOPPED, 5, "the child resumed")
        wait_for(lambda: proc_state(proc.pid) != psutil.STATUS_STOPPED, 5, "dumb-init resumed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 128 + signal.SIGTERM
    finally:
        kill_tree(proc.pid)
        proc.wait()


def test_rewrite_and_ignore(ours: str, tmp_path: Path) -> None:
    """-r 10:12 passes USR1 on as USR2; -r 15:0 drops TERM (so USR2 ends the child)."""
    got, ready = tmp_path / "got", tmp_path / "ready"
    body = (f"trap 'echo usr2 >> {got}; exit 9' USR2; trap 'echo term >> {got}' TERM; "
            f"touch {ready}; while :; do sleep 0.05; done")
    proc = subprocess.Popen([ours, "-r", "10:12", "-r", "15:0", "sh", "-c", body],
                            start_new_session=True)
    try:
        wait_for(ready.exists, 10, "the child's traps")
        proc.send_signal(signal.SIGTERM)  # dropped
        proc.send_signal(signal.SIGUSR1)  # becomes USR2
        assert proc.wait(10) == 9
        assert got.read_text() == "usr2\n"
    finally:
        kill_tree(proc.pid)
        proc.wait()


def pty_transcript(binary: str, args: list[str], answer_after: list[bytes]) -> tuple[int, str]:
    """Run binary as the session leader of a new pseudo-terminal; its output and code.

    Once every string of answer_after has been output, a newline is typed (once)."""
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.environ["DUMB_INIT_DEBUG"] = "1"
        try:
            os.execv(binary, [binary, *args])
        finally:
            os._exit(127)
    out, answered = b"", False
    deadline = time.monotonic() + 20
    try:
        while True:
            if time.monotonic() > deadline:
                kill_tree(pid)
                os.waitpid(pid, 0)
                raise AssertionError(f"{binary} did not finish; output {out!r}")
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
            if not answered and all(line in out for line in answer_after):
                os.write(master, b"\n")
                answered = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
    text = re.sub(r"PID \d+", "PID N", out.decode(errors="replace").replace("\r\n", "\n"))
    return os.waitstatus_to_exitcode(status), text


@needs_real
def test_terminal_hand_off_matches_real_dumb_init(ours: str) -> None:
    """As a session leader with a terminal: detach, ignore the kernel's SIGHUP and SIGCONT,
    and give the terminal to the child (which then owns it: `tty` works, -t 0 is true).

    The child exits only when a line is typed, after both hand-off signals are handled:
    SIGCHLD (17) is dequeued before SIGCONT (18), so had the child already exited, the
    real dumb-init would exit on SIGCHLD and never log SIGCONT (it happened under load)."""
    assert REAL is not None
    script = "test -t 0 && echo child-has-tty; read _; exit 5"
    handled = [b"child-has-tty", b"Ignoring tty hand-off signal 1.",
               b"Ignoring tty hand-off signal 18."]
    code_ours, text_ours = pty_transcript(ours, ["sh", "-c", script], handled)
    code_real, text_real = pty_transcript(REAL, ["sh", "-c", script], handled)
    assert code_ours == code_real == 5
    assert "child-has-tty" in text_ours
    assert sorted(text_ours.splitlines()) == sorted(text_real.splitlines())


class Terminal:
    """An interactive `sh -i` on a new pseudo-terminal, typed at like a user would."""

    def __init__(self) -> None:
        self.pid, self.master = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            try:
                os.execvp("sh", ["sh", "-i"])
            finally:
                os._exit(127)

    def read_until(self, token: bytes, timeout: float = 10.0) -> bytes:
        buf, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    buf += os.read(self.master, 4096)
                except OSError:
                    break
                if token in buf:
                    return buf
        raise AssertionError(f"timed out waiting for {token!r}; got {buf!r}")

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def close(self) -> None:
        kill_tree(self.pid)
        os.waitpid(self.pid, 0)
        os.close(self.master)


@pytest.mark.parametrize("which", ["ours", "real"])
def test_job_control_in_an_interactive_shell(ours: str, which: str) -> None:
    """Ctrl-Z stops the job (dumb-init and its child), `fg` resumes it, Ctrl-C ends it
    with 130, as with Debian's dumb-init."""
    binary = ours if which == "ours" else REAL
    if binary is None:
        pytest.skip("Debian's dumb-init is not installed")
    term = Terminal()
    try:
        prompt = term.read_until(b"# " if os.geteuid() == 0 else b"$ ")[-2:]
        term.type(f"{binary} sh -c 'echo R$((1+1))UN; while :; do sleep 0.05; done'\n"
                  .encode())
        term.read_until(b"R2UN")
        term.type(b"\x1a")
        assert b"Stopped" in term.read_until(prompt)
        term.type(b"fg\n")
        term.read_until(b"done")  # the shell echoes the resumed job's command line
        term.type(b"\x03")
        term.read_until(prompt)
        term.type(b"echo rc=$?\n")
        term.read_until(b"rc=130")  # SIGINT through dumb-init to the job: 128+2
    finally:
        term.close()
