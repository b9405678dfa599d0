"""Container-test fixtures: skip everything (with the reason) when podman cannot run
the base image here; build pyinit's wheel and the Debian base image once per session;
remove every container a test starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from podmanlib import BASE, ROOT, Containers, build, unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.container)
            item.add_marker(pytest.mark.timeout(900))


@pytest.fixture(scope="session")
def podman_ok() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory, podman_ok: None) -> Path:
    """A build context holding dist/: pyinit's wheel and sdist from `python -m build`."""
    ctx = tmp_path_factory.mktemp("dist-context")
    r = subprocess.run([sys.executable, "-m", "build", "--outdir", str(ctx / "dist"), str(ROOT)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return ctx


@pytest.fixture(scope="session")
def base_image(dist: Path) -> str:
    """packaging/docker/debian.Dockerfile built on the lab's Debian 12 image."""
    return build(dist, "debian", file=ROOT / "packaging/docker/debian.Dockerfile",
                 args={"BASE": BASE})


@pytest.fixture
def containers(podman_ok: None):
    c = Containers()
    yield c
    c.cleanup()


@pytest.fixture(scope="session")
def multi_service(base_image: str) -> str:
    """examples/multi-service on the Debian base image."""
    return build(ROOT / "examples" / "multi-service", "multi-service", args={"BASE": base_image})
