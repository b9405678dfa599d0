"""Hardened runtimes (issue 10), each as a pid-namespace test: pyinit as PID 1 under
an arbitrary uid with gid 0 (OpenShift), on a read-only root with tmpfs on /run and
/tmp, with no capabilities and no_new_privs, and all three at once.

The file system comes from `hardened-env` (a private mount namespace: nothing
touches the host's mounts), the uid and capabilities from setpriv(1) in front of
pyinit. svctl runs the same way, entered into pyinit's namespaces with nsenter and
without PYINIT_RUN_DIR, so it has to find the run dir by the same rule as pyinit.
In every case the services come up, `svctl status`, `restart` and `logs` work,
SIGTERM ends everything gracefully with exit code 0, no traceback appears, and
every degradation is exactly one line, the same for every setting and run.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, wait_for, write_script

UID = 1000770000  # no passwd entry, as OpenShift picks them
DOCKER_ENV_GID = 4242
SYSTEM_PY = "/usr/bin/python3"  # one a uid other than root can run (~root/ may be 0700)
HARDENED_ENV = Path(__file__).with_name("hardened-env")
# A checkout under /tmp (a CI clone) would vanish under the tmpfs on /tmp: keep it.
KEEP_CHECKOUT = ["--keep", str(ROOT)] if Path("/tmp") in ROOT.parents else []
SVCTL_CODE = "from pyinit.cli.svctl import main; main()"
SERVICES = ("web", "notify", "logged", "filer")
# a long-running process with the test's tag in its command line, ending on SIGTERM
LONG = "exec /bin/sh -c 'trap \"kill $! 2>/dev/null; exit 0\" TERM; sleep 1000 & wait $!' {tag}\n"


@dataclass(frozen=True)
class Setting:
    ro: bool = False
    uid: int | None = None
    nocaps: bool = False

    def setpriv(self) -> list[str]:
        """setpriv in front of a command, for this uid and capability set."""
        args = []
        if self.uid is not None:
            args += [f"--reuid={self.uid}", "--regid=0", "--clear-groups"]
        if self.nocaps:
            args += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return ["setpriv", *args, "--"] if args else []

    @property
    def run_dir(self) -> str:
        return "/run/pyinit" if self.uid is None else f"/tmp/pyinit-{self.uid}"

    @property
    def python(self) -> str:
        return SYSTEM_PY if self.uid is not None else sys.executable


SETTINGS = {
    "uid": Setting(uid=UID),
    "read-only": Setting(ro=True),
    "no-caps": Setting(nocaps=True),
    "all-three": Setting(ro=True, uid=UID, nocaps=True),
}


def expected_lines(s: Setting, k: Path) -> list[str]:
    """Every warning and error pyinit prints in this setting (regexes), each once."""
    who = "uid" if s.uid is not None else None
    why = "Read-only file system" if s.ro else "Permission denied"
    out = []
    if s.uid is not None or s.nocaps:
        uid = s.uid if s.uid is not None else 0
        out.append(
            re.escape(
                "pyinit: warning: cannot give the environment files to group docker_env "
                f"(Operation not permitted; needs CAP_CHOWN): they are readable by uid {uid} only"
            )
        )
    if s.ro or who:
        out += [
            re.escape(
                f"pyinit: warning: cannot write the container environment to "
                f"{k}/container_environment ({why}): writing it to "
                f"{s.run_dir}/container_environment instead"
            ),
            re.escape(
                f"pyinit: warning: [filer] cannot write its log file in "
                f"{k}/service/filer/logs ({why}): prefix mode instead"
            ),
            re.escape(
                f"pyinit: warning: cannot create supervise/ in service dirs such as {k}/service/"
            )
            + r"\w+(/log)?"
            + re.escape(f"/supervise ({why}): keeping them in {s.run_dir}/services instead"),
        ]
    reason = (
        "pyinit is not root"
        if who
        else "pyinit has no CAP_SETUID or CAP_SETGID (capabilities dropped)"
        if s.nocaps
        else None
    )
    if reason:
        out.append(
            re.escape(
                f"pyinit: error: [asroot] cannot supervise: "
                f"{k}/service/asroot/service.yaml: user: {reason}, cannot run "
                "as nobody"
            )
        )
    return out


def build_tree(k: Path, python: str, tag: str) -> None:
    """The multi-service container: env dir, a startup script passing a variable on,
    services ready by notification fd and by sd_notify, a runit logger, a file-mode
    log, and a service that wants another user."""
    k.chmod(0o755)  # the uid must get in (hardened-env recreates the parents 0755)
    (k / "container_environment").mkdir()
    (k / "container_environment" / "APP_ENV").write_text("demo")
    groups = Path("/etc/group").read_text()
    (k / "group").write_text(groups + f"docker_env:x:{DOCKER_ENV_GID}:\n")
    write_script(k / "my_init.d" / "10-env", 'echo from-script > "$PYINIT_ENV_DIR/FROM_SCRIPT"\n')
    # an orphan for PID 1 to reap: it outlives its script, then says it ended
    write_script(k / "my_init.d" / "20-orphan", "(sleep 0.2; touch /tmp/orphan-done) &\n")
    svc = k / "service"
    long = LONG.format(tag=tag)
    write_script(
        svc / "web" / "run", 'echo "web $(id -u) $APP_ENV $FROM_SCRIPT"; echo >&3\n' + long
    )
    (svc / "web" / "service.yaml").write_text("ready:\n  notification_fd: 3\n")
    notify = (
        "import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
        "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])"
    )
    write_script(svc / "notify" / "run", f'{python} -c "{notify}"\n' + long)
    (svc / "notify" / "service.yaml").write_text("ready:\n  sd_notify: true\n")
    write_script(svc / "logged" / "run", long)
    write_script(svc / "logged" / "log" / "run", long)
    write_script(svc / "filer" / "run", "echo filer line\n" + long)
    (svc / "filer" / "service.yaml").write_text("log:\n  mode: file\n  dir: logs\n")
    write_script(svc / "asroot" / "run", long)
    (svc / "asroot" / "service.yaml").write_text("user: nobody\n")


def _zombie(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def usable(s: Setting) -> str | None:
    """Why this setting cannot be tested here, or None."""
    if os.geteuid() != 0:
        return "needs root (mounts, setpriv)"
    for tool in ("setpriv", "nsenter", "mount"):
        if shutil.which(tool) is None:
            return f"{tool}(1) is not installed"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "no user nobody (the service with `user: nobody`)"
    if s.uid is not None:
        r = subprocess.run(
            [
                "setpriv",
                f"--reuid={s.uid}",
                "--regid=0",
                "--clear-groups",
                SYSTEM_PY,
                "-c",
                "import yaml, pyinit",
            ],
            capture_output=True,
            env={"PYTHONPATH": str(ROOT)},
        )
        if r.returncode != 0:
            return f"no python with pyyaml that uid {s.uid} can run"
    return None


class Hardened:
    """pyinit started in one setting, and svctl run the same way inside it."""

    def __init__(
        self,
        pyinit_run,
        k: Path,
        s: Setting,
        *command: str,
        close_stdin: bool = False,
        tmpfs: bool = True,
        **kw,
    ) -> None:
        self.s = s
        closing = ["sh", "-c", 'exec "$@" <&-', "sh"] if close_stdin else []
        wrapper = [
            str(HARDENED_ENV),
            *(["--ro"] if s.ro else []),
            *([] if tmpfs else ["--no-tmpfs"]),
            "--bind",
            str(k / "group"),
            "/etc/group",
            *KEEP_CHECKOUT,
            str(k),
            "--",
            *closing,
            *s.setpriv(),
        ]
        env = {"PYINIT_LOG_MODE": "inherit"}
        self.run = pyinit_run(
            *command, wrapper=wrapper, python=s.python, run_dir=False, env=env, **kw
        )

    def svctl(self, *args: str, as_root: bool = False) -> subprocess.CompletedProcess:
        env = {
            k: v for k, v in os.environ.items() if k not in ("PYINIT_RUN_DIR", "XDG_RUNTIME_DIR")
        }
        env["PYTHONPATH"] = str(ROOT)
        privs = [] if as_root else self.s.setpriv()
        python = sys.executable if as_root else self.s.python
        argv = [
            "nsenter",
            "-t",
            str(self.run.init_pid),
            "-p",
            "-m",
            "--",
            *privs,
            python,
            "-c",
            SVCTL_CODE,
            *args,
        ]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)

    def status(self, *names: str) -> dict[str, str]:
        r = self.svctl("status", *names)
        return {line.split(": ")[1]: line for line in r.stdout.splitlines() if ": " in line}

    def pid(self, name: str) -> int:
        m = re.search(r"\(pid (\d+)\)", self.status(name).get(name, ""))
        return int(m.group(1)) if m else 0


@pytest.mark.parametrize("name", list(SETTINGS))
def test_multi_service_container(name: str, pyinit_run, tmp_path: Path, tag: str) -> None:
    s = SETTINGS[name]
    reason = usable(s)
    if reason:
        pytest.skip(reason)
    build_tree(tmp_path, s.python, tag)
    # the main command: gets the forwarded SIGTERM, and its exit code is pyinit's
    main = "trap 'kill $! 2>/dev/null; exit 7' TERM; sleep 1000 & wait $!"
    box = Hardened(pyinit_run, tmp_path, s, "sh", "-c", main, tag)

    def all_up() -> bool:
        lines = box.status(*SERVICES)
        return len(lines) == len(SERVICES) and all(
            line.startswith("run: ") and "not ready" not in line for line in lines.values()
        )

    wait_for(all_up, 20, f"every service up and ready ({box.run.err})")
    uid = s.uid if s.uid is not None else 0
    assert f"web {uid} demo from-script" in box.run.out  # env dir in, script's variable on
    asroot = box.status("asroot")["asroot"]
    if s.uid is None and not s.nocaps:
        assert asroot.startswith("run: "), asroot
    else:
        assert not asroot.startswith("run: "), asroot

    # svctl as the same uid, then as root (podman exec -u 0): both find the run dir
    old = box.pid("web")
    r = box.svctl("restart", "web")
    assert r.returncode == 0 and r.stdout.startswith("ok: run: web: "), (r.stdout, r.stderr)
    assert box.pid("web") not in (0, old)
    r = box.svctl("status", "web", as_root=True)
    assert r.returncode == 0 and r.stdout.startswith("run: web: "), (r.stdout, r.stderr)
    r = box.svctl("logs", "filer")
    assert r.returncode == 0 and r.stdout == "filer line\n", (r.stdout, r.stderr)
    if s.ro or s.uid is not None:
        assert "filer | filer line" in box.run.out  # prefix mode instead of the file
    else:
        assert (tmp_path / "service" / "filer" / "logs" / "current").read_text() == ("filer line\n")

    # the startup script's orphan ended and was reaped: no zombie is left
    done = Path(f"/proc/{box.run.init_pid}/root/tmp/orphan-done")
    wait_for(done.exists, 10, "the orphan to end")
    wait_for(lambda: not [p for p in box.run.descendants() if _zombie(p)], 10, "no zombies")

    box.run.kill(signal.SIGTERM)
    assert box.run.wait(20) == 7, box.run.err  # forwarded to the main command, its code
    err = box.run.err
    assert "Traceback" not in err and "internal error" not in err, err
    said = [
        line
        for line in err.splitlines()
        if line.startswith(("pyinit: warning: ", "pyinit: error: "))
    ]
    expected = expected_lines(s, tmp_path)
    for pattern in expected:
        assert len([x for x in said if re.fullmatch(pattern, x)]) == 1, (pattern, err)
    assert len(said) == len(expected), err  # nothing else went wrong
    if s.uid is not None:
        assert (
            err.count(f"pyinit: info: run dir {s.run_dir} (/run/pyinit: Permission denied)\n") == 1
        ), err


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("uid", f"setuser: error: must be run as root to become nobody (running as uid {UID})\n"),
        (
            "no-caps",
            "setuser: error: needs CAP_SETUID and CAP_SETGID to become nobody, and has "
            "not (capabilities dropped)\n",
        ),
    ],
)
def test_setuser_says_what_it_needs(name: str, message: str) -> None:
    """setuser without root or without capabilities: one line, exit 111; as non-root,
    becoming the uid and gid it already runs as still works (nothing to switch)."""
    s = SETTINGS[name]
    reason = usable(s)
    if reason:
        pytest.skip(reason)
    code = "from pyinit.cli.setuser import main; main()"
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    r = subprocess.run(
        [*s.setpriv(), s.python, "-c", code, "nobody", "true"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert (r.returncode, r.stdout, r.stderr) == (111, "", message)
    if s.uid is None:
        return
    me = f"{s.uid}:0"
    r = subprocess.run(
        [*s.setpriv(), s.python, "-c", code, me, "id", "-u"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, me.split(":")[0], "")


def test_all_three_with_stdin_closed_and_stdout_a_full_pipe(
    pyinit_run, tmp_path: Path, tag: str
) -> None:
    """All three settings, stdin closed, no terminal, and stdout a pipe nobody reads,
    which a prefix-mode service fills: PID 1 (non-root, so it cannot reopen the runtime's
    pipe) never blocks: svctl is answered while the pipe stays full, and SIGTERM ends
    the container gracefully."""
    s = SETTINGS["all-three"]
    reason = usable(s)
    if reason:
        pytest.skip(reason)
    build_tree(tmp_path, s.python, tag)
    chatty = tmp_path / "service" / "chatty"
    write_script(chatty / "run", f"exec /bin/sh -c 'while :; do echo chatty; done' {tag}\n")
    (chatty / "service.yaml").write_text("log:\n  mode: prefix\n")
    r, w = os.pipe()
    try:
        box = Hardened(pyinit_run, tmp_path, s, close_stdin=True, stdout=w)
        os.close(w)
        w = -1

        def unread() -> int:
            return struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\0" * 4))[0]

        wait_for(lambda: unread() >= 60 * 1024, 20, "stdout to fill up")
        for _ in range(3):  # the pipe stays full: every answer comes from a non-blocked loop
            st = box.status("chatty", "web")
            assert st["chatty"].startswith("run: ") and st["web"].startswith("run: "), st
        assert unread() >= 60 * 1024
        box.run.kill(signal.SIGTERM)
        assert box.run.wait(20) == 0, box.run.err
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert "Traceback" not in box.run.err, box.run.err


def test_read_only_without_tmpfs(pyinit_run, tmp_path: Path, tag: str) -> None:
    """Nothing writable at all (no tmpfs on /run or /tmp): no run dir, so no svctl, no
    environment dump, no supervise/, prefix mode for file logs, each said once; the
    services still start and the container still stops cleanly."""
    s = SETTINGS["read-only"]
    reason = usable(s)
    if reason:
        pytest.skip(reason)
    build_tree(tmp_path, s.python, tag)
    shutil.rmtree(tmp_path / "my_init.d")  # it writes to $PYINIT_ENV_DIR, read-only here
    shutil.rmtree(tmp_path / "service" / "notify")  # sd_notify needs the run dir
    box = Hardened(pyinit_run, tmp_path, s, tmpfs=False)
    wait_for(
        lambda: "web 0 demo \n" in box.run.out and "filer | filer line" in box.run.out,
        20,
        "web and filer started",
    )
    box.run.kill(signal.SIGTERM)
    assert box.run.wait(20) == 0, box.run.err
    err = box.run.err
    assert "Traceback" not in err, err
    k, ro = tmp_path, "Read-only file system"
    said = [
        line
        for line in err.splitlines()
        if line.startswith(("pyinit: warning: ", "pyinit: error: "))
    ]
    expected = [
        re.escape(
            f"pyinit: warning: no usable run dir (/run/pyinit: {ro}; /tmp/pyinit-0: {ro}): "
            "no control socket, svctl will not work"
        ),
        re.escape(
            f"pyinit: warning: cannot export the environment to {k}/container_environment "
            f"({ro}); carrying on"
        ),
        re.escape(f"pyinit: warning: cannot keep runit's supervise/ dirs (such as {k}/service/")
        + r"\w+(/log)?"
        + re.escape(f"/supervise ({ro})): sv and runit's tools will not see the services"),
        re.escape(
            f"pyinit: warning: [filer] cannot write its log file in {k}/service/filer/logs "
            f"({ro}): prefix mode instead"
        ),
    ]
    assert len(said) == len(expected), err
    for pattern in expected:
        assert len([x for x in said if re.fullmatch(pattern, x)]) == 1, (pattern, err)
