"""`pyinit check`: real broken trees, one per problem class, read with --root (an
unpacked image) or in place; every problem at once, one line each, exit 1; a good
tree exits 0; nothing started, no root needed. The lines for what boot's readers
find are the ones boot prints for the same tree (checked against a real boot)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import ROOT, write_script

GOOD_RUN = "#!/bin/sh\nexec sleep 1\n"
SYSTEM_PY = "/usr/bin/python3"  # one a uid other than root can run (~root/ may be 0700)


def check(
    *args: str,
    env: dict[str, str] | None = None,
    user: int | None = None,
) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    python = sys.executable if user is None else SYSTEM_PY
    return subprocess.run(
        [python, "-m", "pyinit", "check", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
        user=user,
        cwd="/",
    )


def image(tmp: Path) -> Path:
    """A minimal image tree: /bin/sh (a copy of the host's), passwd and group."""
    root = tmp / "image"
    (root / "bin").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "etc" / "service").mkdir(parents=True)
    shutil.copy2("/bin/sh", root / "bin" / "sh")
    shutil.copy2("/usr/bin/env", root / "usr" / "bin" / "env")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1234:\nstaff:x:50:app\n")
    return root


def service(root: Path, name: str, yaml: str | None = None, run: str = GOOD_RUN) -> Path:
    d = root / "etc" / "service" / name
    write_script(d / "run", run)
    if yaml is not None:
        (d / "service.yaml").write_text(yaml)
    return d


def problems(r: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in r.stderr, r.stderr
    return r.stderr.splitlines()


def test_a_good_image_passes(tmp_path: Path):
    root = image(tmp_path)
    service(root, "web", "user: app\ngroup: staff\nready: {check: ./check}\n")
    write_script(root / "etc/service/web/check", "exit 0\n")
    service(root, "worker@", "after: [web]\n")
    os.symlink("worker@", root / "etc/service/worker@a")
    service(root, "pool", "instances: 3\nrequires: [worker@]\nlog: {mode: file, dir: logs}\n")
    (root / "etc" / "pyinit.yaml").write_text("defaults: {stop_timeout: 3}\n")
    r = check("--root", str(root))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == "pyinit check: 4 service dirs, no problems\n"
    r = check("--root", str(root), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout + r.stderr


def test_every_problem_class_at_once(tmp_path: Path):
    root = image(tmp_path)
    (root / "etc/service/norun").mkdir()  # service dirs
    service(root, "noexec").joinpath("run").chmod(0o644)
    service(root, "nointerp", run="#!/usr/bin/python9\nprint(1)\n")
    service(root, "noshebang").joinpath("run").write_text("echo hi\n")  # no #!
    service(root, "envmissing", run="#!/usr/bin/env nosuchprogram\n")
    service(root, "badyaml", "restart: sometimes\nfoo: 1\n")  # service.yaml
    service(root, "notyaml", "a: [\n")
    service(root, "nouser", "user: nosuchuser\n")  # users and groups
    service(root, "nogroup", "user: app\ngroup: nosuchgroup\n")
    service(root, "deps", "requires: [missing]\n")  # dependencies and cycles
    service(root, "ping", "after: [pong]\n")
    service(root, "pong", "after: [ping]\n")
    service(root, "tmpl@", "instances: 2\n")  # templates and instances
    service(root, "logs", "log: {mode: file, dir: run/x}\n")  # log dirs
    (root / "etc/service/logs/log").mkdir()
    service(root, "probe", "ready: {check: ./nocheck}\nliveness: {check: nosuchcmd}\n")
    r = check("--root", str(root))
    assert r.returncode == 1
    lines = problems(r)
    expected = [
        "pyinit: error: [norun] no run file",
        "pyinit: error: [noexec] run is not executable",
        "pyinit: error: [nointerp] /etc/service/nointerp/run: interpreter /usr/bin/python9: "
        "not found",
        "pyinit: error: [noshebang] /etc/service/noshebang/run: no #! line and not a binary: "
        "exec fails (ENOEXEC)",
        "pyinit: error: [envmissing] /etc/service/envmissing/run: /usr/bin/env nosuchprogram: "
        "not found on PATH",
        "pyinit: error: [badyaml] /etc/service/badyaml/service.yaml: key 'restart' must be one "
        "of always, on-failure, never, not 'sometimes'",
        "pyinit: error: [nouser] /etc/service/nouser/service.yaml: user: unknown user 'nosuchuser'",
        "pyinit: error: [nogroup] /etc/service/nogroup/service.yaml: user: unknown group "
        "'nosuchgroup'",
        "pyinit: error: [deps] /etc/service/deps/service.yaml: depends on unknown service "
        "'missing'",
        "pyinit: error: [ping] /etc/service/ping/service.yaml: dependency cycle: ping -> pong "
        "-> ping",
        "pyinit: error: [pong] /etc/service/pong/service.yaml: dependency cycle: ping -> pong "
        "-> ping",
        "pyinit: error: [tmpl@] /etc/service/tmpl@/service.yaml: key 'instances' does not "
        "apply to a template (its instances come from symlinks or svctl up)",
        "pyinit: error: [logs] /etc/service/logs/service.yaml: log.dir "
        "/etc/service/logs/run/x: cannot be made (/etc/service/logs/run is not a directory)",
        "pyinit: warning: [logs] /etc/service/logs/log: no executable run in it: the "
        "service's output is not logged by it",
        "pyinit: error: [probe] /etc/service/probe/service.yaml: ready: ./nocheck: not found",
        "pyinit: error: [probe] /etc/service/probe/service.yaml: liveness: nosuchcmd: not "
        "found on PATH",
    ]
    for line in expected:
        assert line in lines, (line, lines)
    assert any(
        line.startswith("pyinit: error: [badyaml] ") and "unknown key 'foo'" in line
        for line in lines
    ), lines
    assert any(
        line.startswith(
            "pyinit: error: [notyaml] /etc/service/notyaml/service.yaml: not valid YAML"
        )
        for line in lines
    ), lines
    assert len(lines) == len(expected) + 2, lines
    records = json.loads(check("--root", str(root), "--json").stdout)
    assert [f"pyinit: {p['level']}: [{p['service']}] {p['text']}" for p in records] == lines


def test_bad_pyinit_yaml_and_the_services_are_both_reported(tmp_path: Path):
    root = image(tmp_path)
    (root / "etc" / "pyinit.yaml").write_text(
        "wait_for_services: maybe\nhealth_listen: nohost\ndefaults: {restart: sometimes}\n"
    )
    (root / "etc/service/norun").mkdir()
    r = check("--root", str(root))
    lines = problems(r)
    assert r.returncode == 1
    assert (
        "pyinit: error: /etc/pyinit.yaml: key 'wait_for_services' must be true or false, not a str"
    ) in lines, lines
    assert any("/etc/pyinit.yaml: defaults: key 'restart'" in line for line in lines), lines
    assert "pyinit: error: [norun] no run file" in lines


def test_root_resolves_links_inside_the_tree_never_on_the_host(tmp_path: Path):
    """An absolute link in the image means DIR + target: /bin/sh of the image, and a
    link to a host file that exists (/usr/bin/python3) is missing in the image."""
    root = image(tmp_path)
    (root / "usr/local/bin").mkdir(parents=True)
    (root / "opt/svc/web").mkdir(parents=True)
    write_script(root / "opt/svc/web/run", GOOD_RUN)
    os.symlink("/opt/svc/web", root / "etc/service/web")  # absolute: inside the image
    os.symlink("/bin/sh", root / "usr/local/bin/mysh")
    service(root, "viamysh", run="#!/usr/local/bin/mysh\n")
    os.symlink("../../../../../../../../bin/sh", root / "usr/local/bin/upsh")  # clamps at DIR
    service(root, "viaupsh", run="#!/usr/local/bin/upsh\n")
    host_python = os.path.realpath(sys.executable)
    service(root, "hostpy", run=f"#!{host_python}\n")
    os.symlink(host_python, root / "usr/local/bin/py")
    service(root, "linkpy", run="#!/usr/local/bin/py\n")
    os.symlink("/etc/service/loop", root / "etc/service/loop")
    r = check("--root", str(root))
    lines = problems(r)
    assert lines == [
        "pyinit: warning: /etc/service/loop: broken symlink, ignored",
        f"pyinit: error: [hostpy] /etc/service/hostpy/run: interpreter {host_python}: not found",
        "pyinit: error: [linkpy] /etc/service/linkpy/run: interpreter /usr/local/bin/py: not found",
    ], lines
    assert r.returncode == 1


def test_users_come_from_the_images_files_not_the_hosts(tmp_path: Path):
    root = image(tmp_path)
    service(root, "asapp", "user: app\n")  # not on the host
    service(root, "asdaemon", "user: daemon\n")  # on the host, not in the image
    lines = problems(check("--root", str(root)))
    assert lines == [
        "pyinit: error: [asdaemon] /etc/service/asdaemon/service.yaml: user: unknown user 'daemon'"
    ], lines


def test_in_place_without_root_reads_the_flags_and_variables(tmp_path: Path):
    """Without --root: this system's paths, PYINIT_SERVICE_DIR and PYINIT_CONFIG, as
    boot reads them; run as an unprivileged user (no root, no /run)."""
    if subprocess.run([SYSTEM_PY, "-c", "import yaml"], capture_output=True).returncode:
        pytest.skip(f"{SYSTEM_PY} has no yaml module")
    top = Path(tempfile.mkdtemp(prefix="pyinit-check-", dir="/tmp"))
    try:
        top.chmod(0o755)
        write_script(top / "svc" / "web" / "run", GOOD_RUN)
        (top / "svc" / "web" / "service.yaml").write_text("requires: [db]\n")
        (top / "pyinit.yaml").write_text("wait_for_services: 3\n")
        env = {
            "PYINIT_SERVICE_DIR": str(top / "svc"),
            "PYINIT_CONFIG": str(top / "pyinit.yaml"),
            "PYINIT_RUN_DIR": "/run/pyinit-check-must-not-exist",
        }
        r = check(env=env, user=65534)
        lines = problems(r)
        assert r.returncode == 1
        assert lines == [
            f"pyinit: error: {top}/pyinit.yaml: key 'wait_for_services' must be true or "
            "false, not an int",
            f"pyinit: error: [web] {top}/svc/web/service.yaml: depends on unknown service 'db'",
        ], lines
        assert not os.path.exists("/run/pyinit-check-must-not-exist")
        r = check(
            "--service-dir", str(top / "svc"), "--config", "/nonexistent.yaml", env=env, user=65534
        )
        assert problems(r) == [
            f"pyinit: error: [web] {top}/svc/web/service.yaml: depends on unknown service 'db'"
        ]
    finally:
        shutil.rmtree(top)


def test_usage_errors_and_exact_options(tmp_path: Path):
    r = check("--root", str(tmp_path / "missing"))
    assert r.returncode == 2 and "--root" in r.stderr and "not a directory" in r.stderr
    r = check("--ro", str(tmp_path))  # no abbreviations
    assert r.returncode == 2 and "unrecognized arguments: --ro" in r.stderr, r.stderr
    r = check("--version")
    assert r.returncode == 0 and r.stdout.startswith("pyinit "), r.stdout


@pytest.mark.pid1
def test_boot_prints_the_same_lines_for_what_its_readers_find(tmp_path: Path, pyinit_run):
    """The same broken tree, booted: each line check printed for a service dir,
    service.yaml, user or dependency is boot's `cannot supervise:` line. (A bad
    template boot reports only once an instance of it is asked for.)"""
    base = tmp_path / "service"
    for name, yaml in (
        ("badyaml", "restart: sometimes\n"),
        ("nouser", "user: nosuchuser\n"),
        ("deps", "requires: [missing]\n"),
        ("ping", "after: [pong]\n"),
        ("pong", "after: [ping]\n"),
    ):
        write_script(base / name / "run", GOOD_RUN)
        (base / name / "service.yaml").write_text(yaml)
    (base / "norun").mkdir()
    r = check("--service-dir", str(base), "--config", str(tmp_path / "none.yaml"))
    lines = problems(r)
    assert r.returncode == 1 and len(lines) == 6, lines
    run = pyinit_run("--config", str(tmp_path / "none.yaml"), "--", "true")
    assert run.wait(30) == 0
    for line in lines:
        level, _, rest = line.partition("] ")
        service_name = level.rsplit("[", 1)[1]
        wanted = f"pyinit: error: [{service_name}] cannot supervise: {rest}"
        assert wanted in run.err, (wanted, run.err)


def test_a_fifo_in_the_tree_never_blocks_the_check(tmp_path: Path):
    """An image's /etc/passwd or interpreter that is a FIFO is not a file: reported,
    not waited on (the check has a 60 s timeout; it takes well under one)."""
    root = image(tmp_path)
    (root / "etc" / "passwd").unlink()
    os.mkfifo(root / "etc" / "passwd")
    os.mkfifo(root / "usr" / "bin" / "fifo")
    os.chmod(root / "usr" / "bin" / "fifo", 0o755)
    service(root, "asapp", "user: app\n")
    service(root, "viafifo", run="#!/usr/bin/fifo\n")
    lines = problems(check("--root", str(root)))
    assert lines == [
        "pyinit: error: [asapp] /etc/service/asapp/service.yaml: user: unknown user 'app'",
        "pyinit: error: [viafifo] /etc/service/viafifo/run: interpreter /usr/bin/fifo: "
        "not an executable file",
    ], lines


def test_startup_and_shutdown_scripts_interpreters(tmp_path: Path):
    """Boot runs every executable of /etc/my_init.d, cont-init.d, the shutdown dirs and
    rc.local: their #! interpreters are checked too (a non-executable one is skipped
    by boot, and here)."""
    root = image(tmp_path)
    write_script(root / "etc/my_init.d/10-good", "true\n")
    write_script(root / "etc/my_init.d/20-bad", "#!/usr/bin/perl\n")
    write_script(root / "etc/my_init.d/30-off", "#!/usr/bin/perl\n", mode=0o644)
    write_script(root / "etc/cont-finish.d/bye", "#!/usr/bin/env nosuchshell\n")
    write_script(root / "etc/rc.local", "#!/bin/bash9\n")
    lines = problems(check("--root", str(root)))
    assert lines == [
        "pyinit: error: /etc/my_init.d/20-bad: interpreter /usr/bin/perl: not found",
        "pyinit: error: /etc/cont-finish.d/bye: /usr/bin/env nosuchshell: not found on PATH",
        "pyinit: error: /etc/rc.local: interpreter /bin/bash9: not found",
    ], lines
