"""Root never follows a link another user controls (issue 17, finding 1 and the pass
over every path PID 1 touches): pyinit runs as a real PID 1, as root, with a
throwaway user who owns the directories involved, and a root-only target file
that must stay untouched."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, wait_for, write_script

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create users")

USER = "pyinit-pth"
SECRET = b"root only\n"


@pytest.fixture(scope="module")
def user() -> pwd.struct_passwd:
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", USER], check=True)
    yield pwd.getpwnam(USER)
    subprocess.run(["userdel", USER], capture_output=True)


@pytest.fixture
def box(tag: str, user: pwd.struct_passwd):
    """/tmp/TAG-user (the user's own dir) and /tmp/TAG-root/secret (root's, 0600)."""
    mine = Path("/tmp") / f"{tag}-user"
    mine.mkdir(mode=0o755)
    os.chown(mine, user.pw_uid, user.pw_gid)
    private = Path("/tmp") / f"{tag}-root"
    private.mkdir(mode=0o700)
    secret = private / "secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    yield mine, secret
    shutil.rmtree(mine, ignore_errors=True)
    shutil.rmtree(private, ignore_errors=True)


def untouched(secret: Path, before: os.stat_result) -> None:
    after = secret.stat()
    assert secret.read_bytes() == SECRET
    assert (after.st_size, after.st_mtime_ns, after.st_uid, stat.S_IMODE(after.st_mode)) == (
        before.st_size,
        before.st_mtime_ns,
        0,
        0o600,
    )


def svctl(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from pyinit.cli.svctl import main; main()",
            "--run-dir",
            str(tmp / "run"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def chown_tree(top: Path, user: pwd.struct_passwd) -> None:
    for path in [top, *top.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


# --- file-mode logs ------------------------------------------------------------------------
@pytest.mark.parametrize("trap", ["symlink", "hardlink", "dir-symlink"])
def test_file_log_does_not_write_through_the_users_links(
    trap, user, box, pyinit_run, tmp_path: Path, tag: str
) -> None:
    """The service's user left `current` (or the log dir itself) as a link to a
    root-only file: pyinit refuses it (one line, prefix mode instead)."""
    mine, secret = box
    logs = mine / "logs"
    logs.mkdir()
    chown_tree(mine, user)
    if trap == "symlink":
        (logs / "current").symlink_to(secret)
        os.chown(logs / "current", user.pw_uid, user.pw_gid, follow_symlinks=False)
    elif trap == "hardlink":  # what a user can do where fs.protected_hardlinks is 0
        os.link(secret, logs / "current")
    else:
        logs.rmdir()
        logs.symlink_to(secret.parent)
        os.chown(logs, user.pw_uid, user.pw_gid, follow_symlinks=False)
        (secret.parent / "current").write_bytes(SECRET)
        (secret.parent / "current").chmod(0o600)
    before = secret.stat()
    d = tmp_path / "service" / "web"
    write_script(d / "run", f"#!/bin/sh\necho {tag}-line\nexec sleep 1000\n")
    (d / "service.yaml").write_text(f"user: {USER}\nlog: {{mode: file, dir: {logs}}}\n")
    run = pyinit_run(flags=("--skip-startup-files",))
    wait_for(lambda: f"{tag}-line" in run.out, 10, "the line, in prefix mode")
    untouched(secret, before)
    if trap == "dir-symlink":
        assert (secret.parent / "current").read_bytes() == SECRET
        why = "logs is a symlink in a directory another user can write: not followed"
    elif trap == "symlink":
        why = "current is a symlink: not followed"
    else:
        why = "current has other hard links: not used"
    assert f"[web] cannot write its log file in {logs} ({why}): prefix mode instead" in run.err
    run.kill(15)
    assert run.wait(20) == 0
    untouched(secret, before)


def test_svctl_logs_does_not_read_through_a_link(
    user, box, pyinit_run, tmp_path: Path, tag: str
) -> None:
    """While it runs, the service swaps `current` for a link to a root-only file:
    `svctl logs` shows nothing of it, and rotation moves the link, not its target."""
    mine, secret = box
    logs = mine / "logs"
    before = secret.stat()
    d = tmp_path / "service" / "web"
    write_script(
        d / "run",
        f"""#!/bin/sh
echo {tag}-first
while [ ! -e {mine}/go ]; do sleep 0.01; done
ln -sf {secret} {logs}/current.new && mv -f {logs}/current.new {logs}/current
touch {mine}/swapped
exec sleep 1000
""",
    )
    (d / "service.yaml").write_text(f"user: {USER}\nlog: {{mode: file, dir: {logs}}}\n")
    logs.mkdir()
    chown_tree(mine, user)
    run = pyinit_run(flags=("--skip-startup-files",))
    wait_for(
        lambda: (logs / "current").is_file() and (logs / "current").read_bytes(),
        10,
        "the first line",
    )
    r = svctl(tmp_path, "logs", "web")
    assert r.stdout == f"{tag}-first\n", r.stdout + r.stderr
    (mine / "go").touch()
    wait_for((mine / "swapped").exists, 10, "the service to swap current for a link")
    r = svctl(tmp_path, "logs", "web")
    assert "root only" not in r.stdout and r.stdout == "", r.stdout + r.stderr
    assert svctl(tmp_path, "hup", "web/log").returncode == 0  # rotate: reopens `current`
    wait_for(lambda: not (logs / "current").is_symlink(), 10, "a new current")
    assert (logs / "current").is_file() and (logs / "current").read_bytes() == b""
    assert [p.is_symlink() for p in logs.glob("@*.s")] == [True]
    untouched(secret, before)
    run.kill(15)
    assert run.wait(20) == 0
    untouched(secret, before)


# --- supervise/ in a service dir the user owns ---------------------------------------------
@pytest.mark.parametrize("trap", ["supervise-symlink", "status-hardlink", "lock-symlink"])
def test_supervise_dir_does_not_write_through_the_users_links(
    trap, user, box, pyinit_run, tmp_path: Path, tag: str
) -> None:
    """A service dir the service's user owns: `supervise` as a link to a root-only dir,
    or a file in supervise/ as a link to a root-only file. pyinit writes into neither."""
    _, secret = box
    d = tmp_path / "service" / "web"
    write_script(d / "run", f"#!/bin/sh\necho {tag}-up\nexec sleep 1000\n")
    chown_tree(d, user)
    if trap == "supervise-symlink":
        (d / "supervise").symlink_to(secret.parent)
        os.chown(d / "supervise", user.pw_uid, user.pw_gid, follow_symlinks=False)
    else:
        (d / "supervise").mkdir()
        os.chown(d / "supervise", user.pw_uid, user.pw_gid)
        if trap == "status-hardlink":  # where fs.protected_hardlinks is 0
            os.link(secret, d / "supervise" / "stat.new")
        else:
            (d / "supervise" / "lock").symlink_to(secret.parent / "made-by-root")
    before = secret.stat()
    run = pyinit_run(flags=("--skip-startup-files",))
    wait_for(lambda: f"{tag}-up" in run.out, 10, "the service")
    if trap == "status-hardlink":
        wait_for(lambda: (d / "supervise" / "stat").exists(), 10, "supervise/stat")
        assert (d / "supervise" / "stat").read_text() == "run\n"
    else:
        why = "supervise is a symlink in a directory another user can write: not followed"
        if trap == "lock-symlink":
            why = "lock is a symlink: not followed"
        wait_for(lambda: "cannot keep" in run.err, 10, "the warning")
        assert f"({why}): sv and runit's tools will not see it" in run.err, run.err
    run.kill(15)
    assert run.wait(20) == 0
    untouched(secret, before)
    assert sorted(os.listdir(secret.parent)) == ["secret"]


# --- the container environment dir ---------------------------------------------------------
def test_env_dir_files_are_not_read_through_the_users_links(
    user, box, pyinit_run, tmp_path: Path, tag: str
) -> None:
    """An env dir the user can write (OpenShift-style group-writable, here theirs):
    a variable file that is a link to a root-only file is not read, with one line."""
    mine, secret = box
    env = mine / "env"
    env.mkdir()
    chown_tree(mine, user)
    (env / "LEAK").symlink_to(secret)
    os.chown(env / "LEAK", user.pw_uid, user.pw_gid, follow_symlinks=False)
    (env / "FINE").write_text("yes")
    run = pyinit_run("sh", "-c", 'echo "LEAK=$LEAK FINE=$FINE"', flags=("--env-dir", str(env)))
    assert run.wait(20) == 0
    assert "LEAK= FINE=yes" in run.out, run.out + run.err
    assert f"cannot read {env}/LEAK: LEAK is a symlink: not followed" in run.err
    assert "root only" not in (env / "FINE").read_text() + run.out
    assert secret.read_bytes() == SECRET


def test_env_dir_that_is_the_users_link_is_not_written(
    user, box, pyinit_run, tmp_path: Path, tag: str
) -> None:
    """The env dir is a link (in the user's dir) to a dir of root's: pyinit neither
    changes that dir's mode nor writes the dump into it; it falls back to the run dir."""
    mine, secret = box
    target = secret.parent / "etc"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    (mine / "env").symlink_to(target)
    chown_tree(mine, user)
    run = pyinit_run("true", flags=("--env-dir", str(mine / "env")))
    assert run.wait(20) == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o755 and os.listdir(target) == []
    assert not (secret.parent / "etc.sh").exists()
    fallback = tmp_path / "run" / "container_environment"
    assert (
        f"cannot write the container environment to {mine}/env (env is a symlink in a "
        f"directory another user can write: not followed): writing it to {fallback} instead"
    ) in run.err
    assert (fallback / "PYINIT_RUN_DIR").exists()


# --- the run dir ---------------------------------------------------------------------------
def test_run_dir_another_user_owns_is_refused(user, box, pyinit_run, tmp_path: Path) -> None:
    """A run dir the user owns: they could replace the sockets pyinit binds, chmods
    and unlinks as root. Refused."""
    mine, _ = box
    run_dir = mine / "run"
    run_dir.mkdir()
    chown_tree(mine, user)
    run = pyinit_run("true", flags=("--run-dir", str(run_dir)))
    assert run.wait(20) == 0
    assert f"no usable run dir ({run_dir}: is owned by uid {user.pw_uid})" in run.err, run.err
    assert not (run_dir / "control.sock").exists()


def test_run_dir_moved_away_by_its_parents_owner_takes_pyinits_names_with_it(
    user, box, pyinit_run, tmp_path: Path
) -> None:
    """The run dir is in the user's dir: they move it away and leave a link to a dir
    of root's in its place. At exit pyinit removes its sockets from its own dir
    (held by fd), not root's files of the same names behind the link."""
    mine, secret = box
    run_dir = mine / "run"
    chown_tree(mine, user)
    d = tmp_path / "service" / "web"
    write_script(d / "run", "#!/bin/sh\nexec sleep 1000\n")
    (d / "service.yaml").write_text("ready: {sd_notify: true}\n")
    run = pyinit_run(flags=("--run-dir", str(run_dir), "--skip-startup-files"))
    wait_for(lambda: (run_dir / "notify.sock").exists(), 10, "the sockets")
    assert stat.S_ISSOCK((run_dir / "control.sock").lstat().st_mode)
    for name in ("control.sock", "notify.sock"):
        (secret.parent / name).write_bytes(SECRET)
    run_dir.rename(mine / "moved")  # what the user may do in their own dir
    run_dir.symlink_to(secret.parent)
    run.kill(15)
    assert run.wait(20) == 0
    for name in ("control.sock", "notify.sock"):
        assert (secret.parent / name).read_bytes() == SECRET
        assert not (mine / "moved" / name).exists()  # pyinit removed its own


# --- files pyinit reads from a service dir the user owns -----------------------------------
@pytest.mark.parametrize("which", ["service.yaml", "env_file"])
def test_service_files_are_not_read_through_the_users_links(
    which, user, box, pyinit_run, tmp_path: Path, tag: str
) -> None:
    """service.yaml or env_file, a link to a root-only file in a service dir the user
    owns: not read, so nothing of it reaches a message, a status or the service."""
    _, secret = box
    secret.write_bytes(b"SECRET=hunter2\n" if which == "env_file" else b"restart: hunter2\n")
    d = tmp_path / "service" / "web"
    write_script(d / "run", f'#!/bin/sh\necho "{tag} SECRET=$SECRET"\nexec sleep 1000\n')
    if which == "env_file":
        (d / "service.yaml").write_text("env_file: vars\n")
    chown_tree(d, user)
    link = d / ("vars" if which == "env_file" else "service.yaml")
    link.symlink_to(secret)
    os.chown(link, user.pw_uid, user.pw_gid, follow_symlinks=False)
    run = pyinit_run(flags=("--skip-startup-files",))
    # the link is named, as in every safefs refusal
    why = f"{link}: cannot read: {link.name} is a symlink in a directory another user can write"
    if which == "env_file":
        why = f"env_file {link}: {link.name} is a symlink in a directory another user can write"
    wait_for(lambda: why in run.err or "hunter2" in run.out + run.err, 10, "the refusal")
    status = svctl(tmp_path, "status", "web")
    assert "hunter2" not in run.out + run.err + status.stdout + status.stderr
    assert why in run.err
    run.kill(15)
    assert run.wait(20) == 0
    assert "hunter2" not in run.out + run.err


# --- a service dir another user can write is theirs -----------------------------------------
def test_a_service_dir_the_user_owns_runs_as_that_user(
    user, pyinit_run, tmp_path: Path, tag: str
) -> None:
    """The user could replace `run` (or service.yaml) at will: root never runs it as
    root. Without `user:`, run runs as the dir's owner."""
    d = tmp_path / "service" / "web"
    write_script(d / "run", f'#!/bin/sh\necho "{tag} uid=$(id -u)"\nexec sleep 1000\n')
    os.chown(d, user.pw_uid, user.pw_gid)
    run = pyinit_run(flags=("--skip-startup-files",))
    wait_for(lambda: f"{tag} uid=" in run.out, 10, "the service")
    assert f"{tag} uid={user.pw_uid}\n" in run.out, run.out
    run.kill(15)
    assert run.wait(20) == 0


@pytest.mark.parametrize(
    "yaml, why",
    [
        ("user: root\n", "user: the service dir is uid {uid}'s, so it runs as uid {uid} only"),
        ("user: {name}:root\n", "user: the service dir is uid {uid}'s, so it runs as uid {uid}"),
        ("env_file: {secret}\n", "env_file: the service dir is uid {uid}'s: only a file in it"),
        ("log: {{mode: file, dir: /etc/cron.d}}\n",
         "log.dir: the service dir is uid {uid}'s: only a dir in it is written"),
        ("nice: -5\n", "nice: below 0 needs root, and the service is uid {uid}'s"),
    ],
    ids=["user-root", "group-root", "env_file-outside", "log-dir-outside", "nice"],
)
def test_what_only_root_could_grant_is_refused_to_the_dirs_owner(
    yaml, why, user, box, pyinit_run, tmp_path: Path, tag: str
) -> None:
    """service.yaml in a dir the user can write asks for root's user or group, a file
    only root may read, a dir only root may write, or a priority only root may set:
    the service is refused with one line, and nothing of it runs."""
    _, secret = box
    d = tmp_path / "service" / "web"
    write_script(d / "run", f"#!/bin/sh\necho {tag}-ran\nexec sleep 1000\n")
    (d / "service.yaml").write_text(yaml.format(name=USER, secret=secret))
    os.chown(d, user.pw_uid, user.pw_gid)
    run = pyinit_run(flags=("--skip-startup-files",))
    status = wait_for(lambda: (r := svctl(tmp_path, "status", "web")).stdout.startswith("fail")
                      and r, 10, "the refusal")
    assert why.format(uid=user.pw_uid) in status.stdout + run.err, status.stdout + run.err
    run.kill(15)
    assert run.wait(20) == 0
    assert f"{tag}-ran" not in run.out
    assert secret.read_bytes() == SECRET


def test_a_service_dir_everybody_may_write_is_not_run(pyinit_run, tmp_path: Path, tag: str) -> None:
    d = tmp_path / "service" / "web"
    write_script(d / "run", f"#!/bin/sh\necho {tag}-ran\nexec sleep 1000\n")
    d.chmod(0o777)
    run = pyinit_run(flags=("--skip-startup-files",))
    status = wait_for(lambda: (r := svctl(tmp_path, "status", "web")).stdout.startswith("fail")
                      and r, 10, "the refusal")
    assert "not run: a group or every user may write the service dir" in status.stdout
    run.kill(15)
    assert run.wait(20) == 0
    assert f"{tag}-ran" not in run.out
