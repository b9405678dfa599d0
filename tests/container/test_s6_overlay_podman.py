"""pyinit in place of s6-overlay v3 in a linuxserver.io-style image (images/s6-overlay):
`ENTRYPOINT ["/init"]` reads /etc/s6-overlay/s6-rc.d; checked against what s6-overlay
documents: cont-init.d, then the `user` bundle in dependency order, then the
/etc/services.d longrun (legacy-services) and `user2` (its oneshot depends on
legacy-services), then CMD; the container's exit code is CMD's; `with-contenv`
gives run scripts the container environment (/run/s6/container_environment,
written by a oneshot); `s6-setuidgid abc` drops to the user; `podman stop` stops
the services gracefully (services.d first), then cont-finish.d."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import wait_for
from podmanlib import Containers, build, exec_, logs, podman, wait_exit

IMAGE = Path(__file__).parent / "images" / "s6-overlay"
LOG = "/var/log/order.log"


@pytest.fixture(scope="module")
def s6_image(base_image: str) -> str:
    return build(IMAGE, "s6-overlay", args={"BASE": base_image})


def order(name: str, tmp_path: Path) -> list[str]:
    """The order log of a (stopped) container."""
    dest = tmp_path / "order.log"
    podman("cp", f"{name}:{LOG}", str(dest))
    return dest.read_text().splitlines()


def before(lines: list[str], *steps: str) -> None:
    """Each step is in lines, in this order."""
    at = [lines.index(step) for step in steps]
    assert at == sorted(at), lines


# svc-app's own line may come after `late`: a longrun without a notification-fd is up
# once started, in s6-rc as in pyinit (tests/integration/test_s6_overlay.py waits on one)
BOOT = ["cont-init", "init-migrations", "init-adduser uid=1000", "init-config-end", "legacy-app",
        "late"]  # fmt: skip
APP = ["init-config-end", "svc-app FROM_INIT=from-init", "app user=abc uid=1000 HOME=/config"]


def test_cmd_runs_after_user_and_user2_and_its_exit_code_is_the_containers(
    containers: Containers, s6_image: str, tmp_path: Path
) -> None:
    # CMD waits for the app's trap (a longrun counts as up once started, as in s6-rc)
    cmd = f'until grep -q "app user=" {LOG}; do sleep 0.1; done; echo cmd >> {LOG}; exit 5'
    name = containers.start(s6_image, "bash", "-c", cmd)
    assert wait_exit(name, 120) == 5, logs(name)
    lines = order(name, tmp_path)
    before(lines, *BOOT, "cmd", "app-term", "cont-finish")
    before(lines, "cmd", "legacy-term", "app-term")  # services.d stops first
    before(lines, *APP, "cmd", "app-term")  # with-contenv's variable; s6-setuidgid abc
    assert "Traceback" not in logs(name)


def test_podman_stop_is_graceful_and_bounded(
    containers: Containers, s6_image: str, tmp_path: Path
) -> None:
    name = containers.start(s6_image)  # no CMD: runs until stopped
    wait_for(lambda: "late" in exec_(name, "cat", LOG).stdout, 120, "the boot")
    wait_for(lambda: "app user=" in exec_(name, "cat", LOG).stdout, 60, "the app")
    status = exec_(name, "s6-svstat", "/run/service/svc-app")
    assert status.stdout.startswith("up (pid "), status.stdout + status.stderr
    assert exec_(name, "s6-svstat", "-o", "up,normallyup", "svc-app").stdout == "true true\n"
    podman("stop", "-t", "20", name, timeout=60)
    assert wait_exit(name, 30) == 0  # s6-overlay's halt without CMD: 0
    lines = order(name, tmp_path)
    before(lines, *BOOT, "app-term", "cont-finish")
    before(lines, *APP, "app-term")
    before(lines, "legacy-term", "app-term", "cont-finish")
    out = logs(name)
    assert "SIGKILL" not in out and "Traceback" not in out, out
