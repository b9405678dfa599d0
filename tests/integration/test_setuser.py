"""setuser as a real privilege drop: throwaway users, /proc/self/status read by the
exec'd process itself, and every error path with chpst's exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, wait_for, write_script

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create users")

USER, GROUP, EXTRA = "pyinit-su", "pyinit-sug", "pyinit-sux"
# The venv's interpreter may live under /root, which the test user cannot read:
# the probe and the unprivileged runs use the system interpreter.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
PROBE = r"""
import json, os
status = {}
for line in open("/proc/self/status"):
    k, v = line.split(":", 1)
    status[k] = v.split()
try:
    os.setuid(0)
    regained = True
except PermissionError:
    regained = False
print(json.dumps({"status": status, "regained": regained, "env": dict(os.environ)}))
"""


@pytest.fixture(scope="module")
def user():
    for cmd in (["groupadd", "-f", GROUP], ["groupadd", "-f", EXTRA]):
        subprocess.run(cmd, check=True)
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    subprocess.run(["useradd", "-m", "-d", f"/home/{USER}", "-G", EXTRA, USER], check=True)
    import grp
    import pwd

    entry = pwd.getpwnam(USER)
    yield {"uid": entry.pw_uid, "gid": entry.pw_gid, "extra": grp.getgrnam(EXTRA).gr_gid,
           "group": grp.getgrnam(GROUP).gr_gid, "home": entry.pw_dir}
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    subprocess.run(["groupdel", GROUP], capture_output=True)
    subprocess.run(["groupdel", EXTRA], capture_output=True)


def setuser(*args: str, env: dict[str, str] | None = None, python: str = sys.executable,
            **kw) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([python, "-m", "pyinit.cli.setuser_main", *args],
                          capture_output=True, text=True, env=full, timeout=30, **kw)


def probe(*args: str, env: dict[str, str] | None = None) -> dict:
    r = setuser(*args, SYSTEM_PYTHON, "-c", PROBE, env=env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def ids(status: dict, key: str) -> set[int]:
    return {int(x) for x in status[key]}


def test_drop_by_name_is_complete_and_final(user):
    out = probe(USER)
    st = out["status"]
    assert ids(st, "Uid") == {user["uid"]}  # real, effective, saved, fs
    assert ids(st, "Gid") == {user["gid"]}
    assert ids(st, "Groups") == {user["gid"], user["extra"]}
    assert out["regained"] is False
    assert out["env"]["HOME"] == user["home"]
    assert out["env"]["USER"] == out["env"]["LOGNAME"] == USER
    assert int(st["CapEff"][0], 16) == 0 and int(st["CapPrm"][0], 16) == 0


def test_sets_home_user_logname_and_uid_as_phusions_setuser(user):
    """phusion's setuser sets HOME, USER and UID; LOGNAME as login does."""
    env = probe(USER, env={"UID": "0", "HOME": "/root", "USER": "root"})["env"]
    assert (env["HOME"], env["USER"], env["LOGNAME"], env["UID"]) == (
        user["home"], USER, USER, str(user["uid"]))
    env = probe("--clear-env", "54321")["env"]
    assert (env["HOME"], env["USER"], env["LOGNAME"], env["UID"]) == ("/", "54321", "54321",
                                                                      "54321")


@pytest.fixture
def shadowed_path(tag):
    """PATH = a root-only (0700) dir, then a public dir, both holding `NAME`; and a
    root-only dir alone with `ONLY`. Returns (path, name, only, out dir)."""
    base = Path("/tmp") / tag  # tmp_path's parents are private to root
    private, public, alone = base / "root-only", base / "public", base / "alone"
    for d, mode in ((base, 0o755), (private, 0o700), (public, 0o755), (alone, 0o700)):
        d.mkdir(mode=mode)
        d.chmod(mode)
    name, only = f"{tag}-which", f"{tag}-only"
    for d, what in ((private, "root-only"), (public, "public")):
        write_script(d / name, f"#!/bin/sh\necho {what} $(id -u)\n", mode=0o755)
    write_script(alone / only, "#!/bin/sh\necho alone\n", mode=0o755)
    path = f"{private}:{alone}:{public}:/usr/bin:/bin"
    yield path, name, only, base
    shutil.rmtree(base, ignore_errors=True)


def test_command_is_looked_up_on_path_as_the_user(user, shadowed_path):
    """execvp's rules after the drop: the root-only entry is skipped (EACCES), the
    search goes on; EACCES is the answer only when nothing else is found."""
    path, name, only, _ = shadowed_path
    r = setuser(USER, name, env={"PATH": path})
    assert (r.returncode, r.stdout, r.stderr) == (0, f"public {user['uid']}\n", "")
    r = setuser("root", name, env={"PATH": path})
    assert (r.returncode, r.stdout) == (0, "root-only 0\n")
    r = setuser(USER, only, env={"PATH": path})
    assert r.returncode == 126
    assert r.stderr == f"setuser: error: cannot run {only}: Permission denied\n"


def test_user_colon_group_and_numeric_uid(user):
    st = probe(f"{USER}:{GROUP}")["status"]
    assert ids(st, "Gid") == {user["group"]}
    assert user["group"] in ids(st, "Groups")
    out = probe("54321")
    assert ids(out["status"], "Uid") == {54321}
    assert ids(out["status"], "Gid") == {54321}
    assert ids(out["status"], "Groups") == {54321}
    assert out["env"]["HOME"] == "/" and out["env"]["USER"] == "54321"


def test_keeps_environment_unless_cleared(user):
    kept = probe(USER, env={"PYINIT_TEST_VAR": "x y"})["env"]
    assert kept["PYINIT_TEST_VAR"] == "x y"
    cleared = probe("--clear-env", USER, env={"PYINIT_TEST_VAR": "x"})["env"]
    assert "PYINIT_TEST_VAR" not in cleared
    assert set(cleared) <= {"PATH", "TERM", "LANG", "HOME", "USER", "LOGNAME", "UID",
                            "LC_CTYPE"}


def test_no_new_privs(user):
    assert probe(USER)["status"]["NoNewPrivs"] == ["0"]
    assert probe("--no-new-privs", USER)["status"]["NoNewPrivs"] == ["1"]


@pytest.mark.parametrize("backend", ["ctypes", "python-prctl"])
def test_drop_caps_empties_every_set(user, backend):
    env = {"PYINIT_PRCTL": "ctypes"} if backend == "ctypes" else {}
    if backend == "python-prctl":
        pytest.importorskip("prctl", reason="python-prctl is not installed")
    for who in ("root", USER):
        st = probe("--drop-caps", who, env=env)["status"]
        for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(st[key][0], 16) == 0, (who, key, st[key])


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["no-such-user-x", "true"], 111, "unknown user 'no-such-user-x'"),
        ([f"{USER}:no-such-group-x", "true"], 111, "unknown group 'no-such-group-x'"),
        ([USER, "no-such-command-x"], 127, "no-such-command-x: command not found"),
        ([USER, "/etc/passwd"], 126, "not executable"),
        (["--bogus", USER, "true"], 100, "unknown option --bogus"),
        ([USER], 100, "usage"),
    ],
)
def test_errors_are_one_line_with_chpst_codes(user, args, code, message):
    r = setuser(*args)
    assert r.returncode == code
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    if code != 100:
        assert len(r.stderr.strip().splitlines()) == 1


def test_not_root_is_refused(user):
    def become_user():
        os.setgroups([])
        os.setresgid(user["gid"], user["gid"], user["gid"])
        os.setresuid(user["uid"], user["uid"], user["uid"])

    r = setuser("root", "true", preexec_fn=become_user, cwd="/", python=SYSTEM_PYTHON)
    assert r.returncode == 111
    assert "must be run as root" in r.stderr and "Traceback" not in r.stderr


def test_runit_idiom_in_a_service(user, pyinit_run, tmp_path, tag):
    """`exec setuser USER ...` in run: the supervised process runs as USER."""
    setuser_bin = shutil.which("setuser") or str(ROOT / ".venv" / "bin" / "setuser")
    if not os.path.exists(setuser_bin):
        pytest.skip("setuser is not installed in this environment")
    write_script(tmp_path / "service" / "app" / "run",
                 f"#!/bin/sh\nexec {setuser_bin} {USER} {SYSTEM_PYTHON} -c "
                 f"'import time; time.sleep(1000)' {tag}\n")
    run = pyinit_run(flags=("--skip-startup-files",))

    def app_pid():
        for p in run.descendants():
            try:
                if "setuser" not in " ".join(p.cmdline()) and tag in p.cmdline():
                    return p.pid  # after setuser's exec
            except psutil.Error:
                continue
        return None

    pid = wait_for(app_pid, 15, "the service as its user")
    with open(f"/proc/{pid}/status") as fh:
        status = {k: v.split() for k, v in (line.split(":", 1) for line in fh)}
    assert ids(status, "Uid") == {user["uid"]}
    assert ids(status, "Groups") == {user["gid"], user["extra"]}
    run.kill(15)
    assert run.wait(20) == 0


def test_service_yaml_user_runs_run_finish_check_and_logger_as_their_users(
        user, pyinit_run, tmp_path, tag):
    out = Path("/tmp") / f"{tag}-out"  # tmp_path's parents are private to root
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    try:
        d = tmp_path / "service" / "app"
        write_script(d / "run", f"""#!/bin/sh
echo "$(id -u) $(id -G) $HOME $USER $LOGNAME" > {out}/run.txt
echo "line from app"
exec sleep 1000
""")
        write_script(d / "finish", f"#!/bin/sh\nid -u > {out}/finish.txt\n")
        write_script(d / "check", f"#!/bin/sh\nid -u > {out}/check.txt\n")
        write_script(d / "log" / "run",
                     f"#!/bin/sh\nid -u > {out}/log.txt\nexec cat > {out}/log.out\n")
        (d / "service.yaml").write_text(f"user: {USER}\nlog:\n  user: nobody\n")
        write_script(tmp_path / "service" / "bad" / "run", "#!/bin/sh\nexec sleep 1000\n")
        (tmp_path / "service" / "bad" / "service.yaml").write_text("usr: x\n")
        write_script(tmp_path / "service" / "good" / "run", "#!/bin/sh\nexec sleep 1000\n")
        run = pyinit_run(flags=("--skip-startup-files",))
        sock = tmp_path / "run" / "control.sock"
        wait_for(sock.exists, 10, "the control socket")
        wait_for(lambda: (out / "log.out").exists() and (out / "log.out").read_text(), 10,
                 "the line to reach the logger")

        def svctl(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-c", "from pyinit.cli.svctl import main; main()",
                 "--run-dir", str(tmp_path / "run"), *args],
                capture_output=True, text=True, timeout=30,
                env={**os.environ, "PYTHONPATH": str(ROOT)})

        uid, gid, extra = user["uid"], user["gid"], user["extra"]
        fields = (out / "run.txt").read_text().split()
        assert fields[0] == str(uid)
        assert set(fields[1:-3]) == {str(gid), str(extra)}
        assert fields[-3:] == [user["home"], USER, USER]
        assert (out / "log.txt").read_text().strip() == "65534"
        assert (out / "log.out").read_text() == "line from app\n"

        r = svctl("check", "app")
        assert r.returncode == 0, r.stdout + r.stderr
        assert (out / "check.txt").read_text().strip() == str(uid)
        r = svctl("-w", "5", "down", "app")
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(lambda: (out / "finish.txt").exists(), 5, "finish")
        assert (out / "finish.txt").read_text().strip() == str(uid)

        status = svctl("status").stdout.splitlines()
        bad = tmp_path / "service" / "bad" / "service.yaml"
        assert f"fail: bad: {bad}: unknown key 'usr' (did you mean 'user'?)" in status
        assert any(line.startswith("run: good: (pid ") for line in status), status
        run.kill(15)
        assert run.wait(20) == 0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_service_user_looks_its_commands_up_on_path_as_that_user(
        user, pyinit_run, tmp_path, tag, shadowed_path):
    """A `user:` service's readiness check command: found on PATH as the user (the
    public copy), not as root (the root-only copy, which the user cannot run); UID
    is set as setuser sets it."""
    path, name, _, base = shadowed_path
    out = base / "out"
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    write_script(base / "public" / name,
                 f"#!/bin/sh\necho public $(id -u) $UID $LOGNAME > {out}/check\n", mode=0o755)
    d = tmp_path / "service" / "app"
    write_script(d / "run", f"#!/bin/sh\nexec {SYSTEM_PYTHON} -c "
                 f"'import time; time.sleep(1000)' {tag}\n")
    (d / "service.yaml").write_text(f"user: {USER}\nready:\n  check: {name}\n")
    run = pyinit_run(flags=("--skip-startup-files",), env={"PATH": path})
    wait_for(lambda: (out / "check").exists(), 15, "the readiness check to run")
    assert (out / "check").read_text() == f"public {user['uid']} {user['uid']} {USER}\n"
    run.kill(15)
    assert run.wait(20) == 0
    assert "Permission denied" not in run.err


def test_service_yaml_unknown_user_fails_that_service_only(pyinit_run, tmp_path):
    d = tmp_path / "service" / "ghost"
    write_script(d / "run", "#!/bin/sh\nexec sleep 1000\n")
    (d / "service.yaml").write_text("user: no-such-user-y\n")
    run = pyinit_run(flags=("--skip-startup-files",))
    sock = tmp_path / "run" / "control.sock"
    wait_for(sock.exists, 10, "the control socket")
    from pyinit.control.protocol import request

    rec = wait_for(lambda: request(str(sock), {"cmd": "status", "services": []})["services"],
                   5, "status")[0]
    assert rec["error"] == f"{d}/service.yaml: user: unknown user 'no-such-user-y'"
    assert rec["pid"] is None
    run.kill(15)
    assert run.wait(20) == 0
    assert "Traceback" not in run.err
