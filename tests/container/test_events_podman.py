"""Events and hooks in a real container under podman: `svctl events -f` inside a running
container sees a crash and the restart, and a hook in /etc/pyinit.yaml fires on it with
the event on stdin and its output in the container's log."""

from __future__ import annotations

import json
import os
import select
import subprocess

import pytest
from helpers import wait_for
from podmanlib import Containers, build, containerfile, exec_, logs

PYINIT_YAML = """\
hooks:
  - name: alert
    events: [exited, failed]
    services: [crashy]
    user: nobody
    timeout: 10
    command:
      - /bin/sh
      - -c
      - >-
        cat > /tmp/hook-$PYINIT_SEQ.json;
        echo "alert: $PYINIT_SERVICE $PYINIT_EVENT $PYINIT_SIGNAL"
"""


@pytest.fixture(scope="module")
def events_image(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    ctx = tmp_path_factory.mktemp("events-image")
    (ctx / "pyinit.yaml").write_text(PYINIT_YAML)
    run = ctx / "run"
    run.write_text("#!/bin/sh\nexec sleep 100000\n")
    run.chmod(0o755)
    containerfile(ctx, "ARG BASE\nFROM ${BASE}\n"
                       "COPY pyinit.yaml /etc/pyinit.yaml\n"
                       "COPY run /etc/service/crashy/run\n"
                       "RUN chmod 0644 /etc/pyinit.yaml && chmod 0755 /etc/service/crashy/run\n")
    return build(ctx, "events", args={"BASE": base_image})


def test_svctl_events_follow_and_a_hook_on_a_crash(containers: Containers,
                                                   events_image: str) -> None:
    name = containers.start(events_image)
    r = exec_(name, "svctl", "-w", "60", "check", "crashy", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    follow = subprocess.Popen(["podman", "exec", name, "svctl", "events", "-f", "crashy"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got: list[dict] = []
    buf = b""

    def seen(event: str, **fields: object) -> bool:
        nonlocal buf
        assert follow.stdout is not None
        while select.select([follow.stdout], [], [], 0.05)[0]:
            chunk = os.read(follow.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
        *lines, buf = buf.split(b"\n")
        got.extend(json.loads(line) for line in lines)
        return any(e["event"] == event and all(e.get(k) == v for k, v in fields.items())
                   for e in got)

    try:
        wait_for(lambda: seen("ready", service="crashy"), 30, "the ring's first events")
        assert exec_(name, "svctl", "kill", "crashy").returncode == 0  # a crash: SIGKILL
        wait_for(lambda: seen("exited", signal="SIGKILL", expected=False), 30, "the crash")
        wait_for(lambda: seen("ready") and got[-1]["event"] == "ready" and seen("up", restarts=1),
                 30, "the restart")
        names = [e["event"] for e in got if e["service"] == "crashy"]
        after = names[names.index("exited"):]
        # a crash within a second of the start waits out a backoff first
        assert after in (["exited", "starting", "up", "ready"],
                         ["exited", "backoff", "starting", "up", "ready"]), names
    finally:
        follow.kill()
        follow.wait(30)
    # the hook ran as nobody, with the event on stdin, its output in the container's log
    def hook_json() -> str:
        r = exec_(name, "sh", "-c", "cat /tmp/hook-*.json")
        return r.stdout if r.returncode == 0 else ""

    event = json.loads(wait_for(hook_json, 30, "the hook's file").splitlines()[0])
    assert (event["event"], event["service"], event["signal"]) == ("exited", "crashy",
                                                                   "SIGKILL")
    owner = exec_(name, "sh", "-c", "stat -c %U /tmp/hook-*.json").stdout.split()
    assert owner == ["nobody"]
    wait_for(lambda: "[hook alert] alert: crashy exited SIGKILL" in logs(name), 30,
             "the hook's output in the log")
    assert "Traceback" not in logs(name)
