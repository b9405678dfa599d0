"""Hardened runtimes under podman: the multi-service example under an arbitrary
non-root uid, a read-only root, no capabilities, and all three at once; and the
hardened Kubernetes manifest through `podman kube play`."""

from __future__ import annotations

import collections
import json
import re
import time
from pathlib import Path

import pytest
from podmanlib import ROOT, Containers, exec_, fetch, logs, podman, state, wait_log

UID = ["--user", "1000770000:0"]
READ_ONLY = ["--read-only", "--tmpfs", "/run", "--tmpfs", "/tmp"]
NO_CAPS = ["--cap-drop=ALL", "--security-opt", "no-new-privileges"]
MODES = {"uid": UID, "read-only": READ_ONLY, "no-caps": NO_CAPS,
         "all": UID + READ_ONLY + NO_CAPS}

def pyinit_lines(out: str, level: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"pyinit: {level}:")]


def assert_clean_degradations(out: str) -> None:
    """No traceback, no error; each warning is one line, printed once."""
    assert "Traceback" not in out, out
    assert not pyinit_lines(out, "error"), out
    repeated = {w: n for w, n in collections.Counter(pyinit_lines(out, "warning")).items()
                if n > 1}
    assert not repeated, repeated


@pytest.mark.parametrize("mode", list(MODES))
def test_multi_service_hardened(containers: Containers, multi_service: str, mode: str):
    opts = MODES[mode]
    name = containers.start(multi_service, opts=opts)
    r = exec_(name, "svctl", "-w", "60", "check", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr + logs(name)
    status = exec_(name, "svctl", "status").stdout
    for svc in ("app", "nginx"):
        assert re.search(rf"^run: {svc}: \(pid \d+\)", status, re.M), status
    non_root = "--user" in opts
    # the scheduled job (cron's replacement) works under any uid: it ran at start
    assert re.search(r"^(down|run): heartbeat: .*; next run in \d+s$", status, re.M), status
    wait_log(name, "heartbeat | beat: ")
    ids = exec_(name, "ps", "-eo", "uid=,args=").stdout
    uids = {int(line.split()[0]) for line in ids.splitlines() if "ps -eo" not in line}
    if non_root:
        assert uids == {1000770000}, ids  # everything runs as the assigned uid

    pid = re.search(r"^run: app: \(pid (\d+)\)", status, re.M).group(1)
    r = exec_(name, "svctl", "-w", "30", "restart", "app")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^ok: run: app: \(pid (\d+)\)", r.stdout).group(1) != pid
    assert json.loads(fetch(name, "http://127.0.0.1:8080/"))["visits"] == 1

    t0 = time.monotonic()
    podman("stop", "-t", "20", name, timeout=60)
    elapsed = time.monotonic() - t0
    out = logs(name)
    assert state(name)["exit_code"] == 0, out
    assert elapsed < 15, f"podman stop took {elapsed:.1f}s"
    assert "app | stopping" in out, out  # the app's TERM handler ran
    assert_clean_degradations(out)
    if "--read-only" in opts:
        assert "first-boot: /var/lib/app is not writable: keeping state in /run/app" in out or (
            "keeping state in /tmp/app" in out), out


def test_kubernetes_hardened_pod(multi_service: str, tmp_path: Path, podman_ok: None):
    manifest = (ROOT / "examples/kubernetes/pod-hardened.yaml").read_text()
    yaml = tmp_path / "pod-hardened.yaml"
    yaml.write_text(manifest.replace("localhost/pyinit-example/multi-service:latest",
                                     multi_service))
    podman("kube", "play", str(yaml), timeout=180)
    name = "pyinit-example-hardened-app"
    try:
        r = exec_(name, "svctl", "-w", "60", "check", timeout=90)
        assert r.returncode == 0, r.stdout + r.stderr + logs(name)
        assert exec_(name, "id", "-u").stdout.strip() == "1000770000"
        assert fetch(name, "http://127.0.0.1:8081/readyz").strip() == "ready"
        wait_log(name, "pyinit: info: [nginx] ready")
        assert_clean_degradations(logs(name))
    finally:
        podman("kube", "down", str(yaml), check=False, timeout=120)
