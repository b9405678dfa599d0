"""What operators see in a running container (issue 21, parts 2 and 4): `svctl status -l`
through `podman exec` (plain on a pipe, colored on a terminal unless NO_COLOR), and
`/metrics` on the health listener, scraped from inside and parsed by Prometheus's
own text parser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import wait_for
from podmanlib import Containers, build, exec_, fetch, wait_log
from prometheus_client.parser import text_string_to_metric_families

APP = Path(__file__).parent / "images" / "app"
GREEN_UP = "\033[32mup\033[0m"


@pytest.fixture(scope="module")
def app_image(base_image: str) -> str:
    return build(APP, "app", args={"BASE": base_image})


def table(text: str) -> dict[str, list[str]]:
    lines = [line.rstrip("\r") for line in text.splitlines()]
    assert re.split(r"\s{2,}", lines[0]) == [
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "READY", "USER"
    ], text  # fmt: skip
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", x.strip()) for x in lines[1:])}


def test_status_l_and_metrics_in_a_running_container(containers: Containers, app_image: str):
    name = containers.start(app_image, opts=["-e", "PYINIT_HEALTH_LISTEN=127.0.0.1:8081"])
    r = exec_(name, "svctl", "-w", "60", "check", timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_log(name, "leaker: leaked 20 orphans")

    r = exec_(name, "svctl", "status", "-l")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "\033" not in r.stdout  # a pipe: plain
    rows = table(r.stdout)
    assert {"web", "worker", "stubborn", "leaker"} <= set(rows), r.stdout
    assert rows["web"][1] == "up" and rows["web"][6] == "yes", r.stdout
    assert rows["stubborn"][1] == "down", r.stdout
    assert set(table(exec_(name, "svctl", "list").stdout)) == set(rows)

    on_tty = exec_(name, "svctl", "status", "-l", opts=["-t", "-e", "TERM=xterm"])
    assert GREEN_UP in on_tty.stdout, repr(on_tty.stdout)
    no_color = exec_(name, "svctl", "status", "-l", opts=["-t", "-e", "NO_COLOR=1"])
    assert "\033" not in no_color.stdout and "up" in no_color.stdout

    def scrape() -> dict[tuple, float]:
        body = fetch(name, "http://127.0.0.1:8081/metrics")
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for f in text_string_to_metric_families(body) for s in f.samples}  # fmt: skip

    def reaped() -> bool:
        return scrape()[("pyinit_orphans_reaped_total", ())] >= 20

    wait_for(reaped, 30, "the 20 orphans to be reaped and counted")
    m = scrape()
    web = (("service", "web"),)
    assert m[("pyinit_service_up", web)] == 1 and m[("pyinit_service_ready", web)] == 1
    assert m[("pyinit_service_state", (*web, ("state", "up")))] == 1
    assert m[("pyinit_service_up", (("service", "stubborn"),))] == 0
    assert [v for (n, _), v in m.items() if n == "pyinit_build_info"] == [1]
    assert re.fullmatch(r"[0-9]+\.[0-9]+\S*", _version(m))
    # a crash shows as a restart and a last exit code
    exec_(name, "svctl", "kill", "web")
    wait_for(lambda: scrape()[("pyinit_service_restarts_total", web)] >= 1, 30, "web restarted")
    assert scrape()[("pyinit_service_last_exit_code", web)] == 128 + 9
    after = table(exec_(name, "svctl", "status", "-l", "web").stdout)["web"]
    assert after[4] == "1" and after[5].startswith("SIGKILL, "), after


def _version(m: dict[tuple, float]) -> str:
    (labels,) = [labels for (n, labels) in m if n == "pyinit_build_info"]
    return dict(labels)["version"]
