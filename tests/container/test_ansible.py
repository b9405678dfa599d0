"""The Ansible role (packaging/ansible/roles/pyinit) for real: an image built from the
lab's Debian with ansible-core from PyPI and `ansible-playbook -c local` applying the
role, then run with pyinit as its ENTRYPOINT: the declared services run, in dependency
order, as their users; a second run of the playbook changes nothing; a service taken
out of the list is removed (and a hand-made one is not); bad variables stop the play
with one clear error."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import wait_for
from podmanlib import BASE, ROOT, Containers, build, exec_, logs, wait_log

IMAGE = Path(__file__).parent / "images" / "ansible"
PLAYBOOK = ["/opt/ansible/bin/ansible-playbook", "-i", "localhost,", "-c", "local"]


@pytest.fixture(scope="module")
def ansible_image(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """images/ansible/Containerfile, with build/ holding the playbooks, the role and the wheel."""
    ctx = tmp_path_factory.mktemp("ansible-context")
    shutil.copy(IMAGE / "Containerfile", ctx)
    shutil.copytree(ROOT / "packaging/ansible/roles", ctx / "build/roles")
    for playbook in IMAGE.glob("*.yml"):
        shutil.copy(playbook, ctx / "build")
    (ctx / "build/dist").mkdir()
    for wheel in (dist / "dist").glob("pyinit_pid1-*.whl"):
        shutil.copy(wheel, ctx / "build/dist")
    if shutil.which("dpkg-deb"):
        r = subprocess.run(
            [str(ROOT / "packaging/debian/build-deb.sh"), str(ctx / "build/dist")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    return build(ctx, "ansible", args={"BASE": BASE})


def start_ready(containers: Containers, image: str) -> str:
    """Start a container and wait until pyinit answers and every service is ready."""
    name = containers.start(image)
    wait_for(
        lambda: exec_(name, "test", "-S", "/run/pyinit/control.sock").returncode == 0,
        timeout=60,
        what=f"pyinit's control socket\n{logs(name)}",
    )
    r = exec_(name, "svctl", "-w", "60", "check", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr + logs(name)
    return name


def status(name: str) -> dict[str, dict]:
    r = exec_(name, "svctl", "status", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    return {s["name"]: s for s in json.loads(r.stdout)}


def playbook(name: str, *args: str) -> tuple[int, str, dict[str, int]]:
    """Run the playbook inside the container; return its exit code, output and recap."""
    r = exec_(name, *PLAYBOOK, *args, timeout=300)
    out = r.stdout + r.stderr
    m = re.search(r"^localhost\s*:\s*(.*)$", out, re.M)
    recap = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))} if m else {}
    return r.returncode, out, recap


def test_services_run_in_order_as_their_users(containers: Containers, ansible_image: str):
    name = start_ready(containers, ansible_image)
    st = status(name)
    assert set(st) == {
        "batch",
        "cron",
        "db",
        "extra",
        "handmade",
        "migrate",
        "sshd",
        "syslog",
        "web",
        "worker",
    }, st.keys()
    for svc in ("cron", "db", "extra", "handmade", "sshd", "syslog", "web", "worker"):
        assert st[svc]["state"] == "run", st[svc]
    assert st["migrate"]["outcome"] == "done", st["migrate"]
    assert st["batch"]["state"] == "down" and not st["batch"]["normally_up"], st["batch"]
    assert st["worker"]["log"]["state"] == "run", st["worker"]
    text = exec_(name, "svctl", "status").stdout
    assert re.search(r"^run: worker: \(pid \d+\) \d+s; run: log: \(pid \d+\)", text, re.M), text
    assert re.search(r"^down: migrate: \d+s, done$", text, re.M), text

    # as their users, from service.yaml (the users were made by the playbook)
    users = {
        svc: exec_(name, "ps", "-o", "user=", "-p", str(st[svc]["pid"])).stdout.strip()
        for svc in ("db", "web", "worker", "syslog")
    }
    assert users == {"db": "dbuser", "web": "app", "worker": "nobody", "syslog": "root"}
    assert st["web"]["user"] == "app"

    # in order: migrate saw db ready, web saw migrate done (files the services wrote)
    out = wait_log(name, "web: hello, migrated")
    assert "web: started before migrate" not in out and "migrate: db not ready" not in out
    assert out.index("startup: hello from the role") < out.index("db: up")
    assert out.index("migrate: done") < out.index("web: hello, migrated")
    assert "worker-log: worker: started as nobody" in out  # through log/run
    assert "Traceback" not in out

    # the optional services: rsyslog takes /dev/log, sshd has host keys and listens
    assert exec_(name, "logger", "-t", "roletest", "via-syslog").returncode == 0
    wait_for(
        lambda: "via-syslog" in exec_(name, "cat", "/var/log/syslog").stdout,
        timeout=30,
        what="the logger line in /var/log/syslog",
    )
    wait_log(name, "Server listening on 0.0.0.0 port 42922")


def test_second_run_changes_nothing_and_removal(containers: Containers, ansible_image: str):
    name = start_ready(containers, ansible_image)
    pids = {s: v["pid"] for s, v in status(name).items()}

    code, out, recap = playbook(name, "/build/site.yml")
    assert code == 0, out[-4000:]
    assert recap.get("changed") == 0 and recap.get("failed") == 0, out[-4000:]
    assert {s: v["pid"] for s, v in status(name).items()} == pids  # nothing restarted

    # `extra` leaves the list: its directory goes, pyinit stops it; handmade stays
    # (the service dir spelled with a trailing slash: still the same directories)
    code, out, recap = playbook(
        name, "/build/site.yml", "-e", "with_extra=false", "-e", "pyinit_service_dir=/etc/service/"
    )
    assert code == 0 and recap.get("changed") == 1, out[-4000:]
    assert exec_(name, "test", "-e", "/etc/service/extra").returncode == 1
    wait_for(lambda: "extra" not in status(name), timeout=30, what="pyinit to drop extra")
    st = status(name)
    assert st["handmade"]["state"] == "run" and st["handmade"]["pid"] == pids["handmade"]
    assert st["web"]["pid"] == pids["web"]


BAD = [
    ('{"pyinit_services": [{"name": "web", "comand": "true"}]}', "comand"),
    ('{"pyinit_services": [{"name": "web"}]}', "one of the following is required: command, run"),
    (
        '{"pyinit_services": [{"name": "web", "command": "a", "run": "b"}]}',
        "parameters are mutually exclusive: command|run",
    ),
    ('{"pyinit_services": [{"name": "web", "command": "a", "restart": "sometimes"}]}', "restart"),
    ('{"pyinit_services": [{"name": "a/b", "command": "a"}]}', "name 'a/b' is not a service name"),
    (
        '{"pyinit_services": [{"name": "w", "command": "a"}, {"name": "w", "command": "b"}]}',
        "name 'w' is used twice",
    ),
    ('{"pyinit_pip_spec": "pyinit"}', "unrelated project"),
    ('{"pyinit_install_method": "rpm"}', "pyinit_install_method"),
]


def test_bad_variables_stop_the_play(containers: Containers, ansible_image: str):
    script = "; ".join(
        f"echo '=== {i}'; {' '.join(PLAYBOOK)} /build/bad.yml -e '{extra}' 2>&1; echo \"rc=$?\""
        for i, (extra, _) in enumerate(BAD)
    )
    r = containers.run(
        ansible_image, "-c", script, opts=["--rm", "--entrypoint", "/bin/sh"], timeout=300
    )
    parts = r.stdout.split("=== ")[1:]
    assert len(parts) == len(BAD), r.stdout[-3000:] + r.stderr[-3000:]
    for part, (extra, expected) in zip(parts, BAD):
        assert "rc=0" not in part, f"{extra} was accepted:\n{part[-2000:]}"
        assert expected in part, f"{extra}: {expected!r} not in:\n{part[-2000:]}"
        assert "changed=0" in part, part[-2000:]  # stopped before touching anything


@pytest.mark.parametrize(("method", "where"), [("system", "/usr/local/bin"), ("deb", "/usr/bin")])
def test_other_install_methods(containers: Containers, ansible_image: str, method: str, where: str):
    if method == "deb" and not shutil.which("dpkg-deb"):
        pytest.skip("dpkg-deb is not installed: no .deb to install")
    run = f"{' '.join(PLAYBOOK)} /build/methods.yml -e pyinit_install_method={method} 2>&1"
    script = (
        "rm -rf /opt/pyinit /usr/local/bin/pyinit /usr/local/bin/svctl"
        " /usr/local/bin/setuser /usr/local/bin/pyinit-env"
        f" && {run} && echo '=== again' && {run} && echo '=== installed'"
        " && for c in pyinit svctl setuser pyinit-env; do command -v $c; done && pyinit --version"
        " && python3 -c 'import psutil, yaml' && pyinit --skip-startup-files -- svctl status"
    )
    r = containers.run(
        ansible_image, "-c", script, opts=["--rm", "--entrypoint", "/bin/sh"], timeout=400
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    first, again, installed = re.split(r"^=== (?:again|installed)$", out, flags=re.M)
    assert re.search(r"^localhost\s*:.* changed=[1-9]", first, re.M), first[-3000:]
    assert re.search(r"^localhost\s*:.* changed=0 .*failed=0", again, re.M), again[-3000:]
    assert installed.split()[:5] == [
        f"{where}/pyinit",
        f"{where}/svctl",
        f"{where}/setuser",
        f"{where}/pyinit-env",
        "pyinit",
    ], installed
    # the methods playbook lists no service: the role's went, the hand-made one stays
    assert re.search(r"^run: handmade: \(pid \d+\)", installed, re.M), installed
    assert "db:" not in installed
