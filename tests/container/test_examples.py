"""The examples/ images, built and exercised as their READMEs describe."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from podmanlib import ROOT, Containers, build, exec_, fetch, logs, podman, state, wait_log

EXAMPLES = ROOT / "examples"

def test_multi_service(containers: Containers, multi_service: str):
    name = containers.start(multi_service)
    r = exec_(name, "svctl", "-w", "60", "check", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr + logs(name)
    status = exec_(name, "svctl", "status").stdout
    for svc in ("app", "nginx"):
        assert re.search(rf"^run: {svc}: \(pid \d+\)", status, re.M), status
    # the scheduled job in cron's place: run once at start (on_start), as www-data, with
    # the first boot's instance id, its output in the container's log; next run shown
    assert re.search(r"^(down|run): heartbeat: .*; next run in \d+s$", status, re.M), status
    beat = wait_log(name, "heartbeat | beat: ")
    assert re.search(r"^heartbeat \| beat: [0-9a-f-]{36} as www-data$", beat, re.M), beat
    job = json.loads(exec_(name, "svctl", "status", "--json", "heartbeat").stdout)[0]["job"]
    assert job["schedule"] == "* * * * *" and 0 < job["next_run_in"] <= 60, job
    runs = job["runs"]
    assert exec_(name, "svctl", "run", "heartbeat").stdout.startswith("ok: run: heartbeat: ")
    assert wait_job(name, lambda j: j["runs"] > runs and j["last_run"]["result"] == "success")
    assert exec_(name, "cat", "/var/lib/app/heartbeat").returncode == 0
    # through nginx to the app, which serves the first-boot instance id
    first = json.loads(fetch(name, "http://127.0.0.1:8080/"))
    assert re.fullmatch(r"[0-9a-f-]{36}", first["instance"]) and first["visits"] == 1
    assert json.loads(fetch(name, "http://127.0.0.1:8080/"))["visits"] == 2
    out = wait_log(name, 'nginx | 127.0.0.1 - - [')  # nginx's access log, prefixed
    assert f"first-boot: created instance id {first['instance']}" in out
    assert "app | listening on 127.0.0.1:8000" in out
    # requires: [app] with readiness: nginx starts only after app answered /health
    assert out.index("app | listening") < out.index("nginx | ") or "nginx | " not in out[
        :out.index("app | listening")]
    users = exec_(name, "ps", "-eo", "user=,args=").stdout
    assert re.search(r"^www-data .*python3 /opt/app/app.py", users, re.M), users

    # a restart of the same container skips first boot and keeps the identity
    podman("restart", "-t", "20", name, timeout=90)
    assert exec_(name, "svctl", "-w", "60", "check", timeout=90).returncode == 0
    assert json.loads(fetch(name, "http://127.0.0.1:8080/"))["instance"] == first["instance"]
    assert f"first-boot: already set up ({first['instance']})" in logs(name)

    t0 = time.monotonic()
    podman("stop", "-t", "20", name, timeout=60)
    assert time.monotonic() - t0 < 15
    assert state(name)["exit_code"] == 0
    out = logs(name)
    assert "app | stopping" in out and "Traceback" not in out, out


def wait_job(name: str, cond, timeout: float = 30.0) -> dict:
    """The heartbeat job's record once cond(record) holds (polled with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        job = json.loads(exec_(name, "svctl", "status", "--json", "heartbeat").stdout)[0]["job"]
        if job["last_run"] and cond(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


@pytest.fixture(scope="module")
def complex_app(base_image: str) -> str:
    return build(EXAMPLES / "complex-app", "complex-app", args={"BASE": base_image})


def test_complex_app_state_survives_recreate(containers: Containers, complex_app: str):
    volume = containers.name()
    podman("volume", "create", volume)
    try:
        name = containers.start(complex_app, opts=["-v", f"{volume}:/data"])
        r = exec_(name, "svctl", "-w", "60", "check", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr + logs(name)
        out = wait_log(name, "worker | started")
        assert "populate-data: first boot: /data populated from /data-template" in out, out
        # db before api before worker, each started once its requirement was ready
        order = [out.index(f"{svc} | started") for svc in ("db", "api", "worker")]
        assert order == sorted(order), out
        fetch(name, "http://127.0.0.1:8080/set?key=colour&value=teal")
        assert json.loads(fetch(name, "http://127.0.0.1:8080/get?key=colour")) == {
            "colour": "teal"}
        exec_(name, "sh", "-c", "echo 'greeting = bonjour' >> /etc/app/app.conf")
        podman("stop", "-t", "20", name, timeout=60)
        assert state(name)["exit_code"] == 0
        podman("rm", name)

        again = containers.start(complex_app, opts=["-v", f"{volume}:/data"])
        assert exec_(again, "svctl", "-w", "60", "check", timeout=90).returncode == 0
        out = wait_log(again, "worker | started")
        assert "populate-data: /data already initialized, skipping first boot" in out, out
        assert "first boot: /data populated" not in out
        assert json.loads(fetch(again, "http://127.0.0.1:8080/get?key=colour")) == {
            "colour": "teal"}
        assert "greeting = bonjour" in exec_(again, "cat", "/etc/app/app.conf").stdout
        assert json.loads(fetch(again, "http://127.0.0.1:8080/config"))["greeting"] == "bonjour"
    finally:
        containers.cleanup()
        podman("volume", "rm", "-f", volume, check=False)


def kube_manifest(path: Path, image: str) -> str:
    """The example's manifest with the test's image name."""
    text = path.read_text()
    return text.replace("localhost/pyinit-example/multi-service:latest", image)


@pytest.mark.parametrize("manifest", ["pod.yaml", "pod-shared-pid.yaml"])
def test_kubernetes_pod(multi_service: str, tmp_path: Path, manifest: str):
    yaml = tmp_path / manifest
    yaml.write_text(kube_manifest(EXAMPLES / "kubernetes" / manifest, multi_service))
    podman("kube", "play", str(yaml), timeout=180)
    pod = re.search(r"^  name: (\S+)", yaml.read_text(), re.M).group(1)
    name = f"{pod}-app"
    try:
        r = exec_(name, "svctl", "-w", "60", "check", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr + logs(name)
        health = json.loads(fetch(name, "http://127.0.0.1:8081/status"))
        assert {s["name"] for s in health["services"]} >= {"app", "nginx", "heartbeat"}, health
        assert fetch(name, "http://127.0.0.1:8081/readyz").strip()
        if manifest == "pod.yaml":  # what the prometheus.io annotations say is scraped
            from prometheus_client.parser import text_string_to_metric_families

            note = re.compile(r"^    (prometheus\.io/\w+): \"?([^\"\s]+)", re.M)
            notes = dict(note.findall(yaml.read_text()))
            assert notes["prometheus.io/scrape"] == "true", notes
            body = fetch(name, f"http://127.0.0.1:{notes['prometheus.io/port']}"
                               f"{notes['prometheus.io/path']}")  # fmt: skip
            samples = [s for f in text_string_to_metric_families(body) for s in f.samples]
            up = {s.labels["service"]: s.value for s in samples if s.name == "pyinit_service_up"}
            assert up["app"] == up["nginx"] == 1, up
            # the scheduled job (cron's replacement) ran once at start (on_start: run)
            runs = {s.labels["service"]: s.value for s in samples
                    if s.name == "pyinit_job_runs_total"}  # fmt: skip
            assert runs.get("heartbeat", 0) >= 1, runs
        ps = exec_(name, "ps", "-eo", "pid=,ppid=,args=").stdout
        procs = [line.split(None, 2) for line in ps.splitlines()]
        pyinit = [pid for pid, _, args in procs if "bin/pyinit" in args]
        assert len(pyinit) == 1, ps
        app_parent = [ppid for _, ppid, args in procs if args.startswith("python3 /opt/app")]
        assert app_parent == pyinit, ps  # services are pyinit's children either way
        if manifest == "pod-shared-pid.yaml":
            # the pod's pid namespace: the pause process is PID 1, pyinit a subreaper
            assert pyinit != ["1"], ps
        else:
            assert pyinit == ["1"], ps
    finally:
        podman("kube", "down", str(yaml), check=False, timeout=120)
