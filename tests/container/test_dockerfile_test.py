"""Dockerfile.test: the in-container suite passes with pyinit as the container's PID 1."""

from __future__ import annotations

from podmanlib import BASE, ROOT, Containers, build


def test_in_container_suite_passes(containers: Containers, podman_ok: None):
    image = build(ROOT, "dockerfile-test", file=ROOT / "Dockerfile.test", args={"BASE": BASE})
    r = containers.run(image, opts=["--rm"], timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert " passed" in out and "failed" not in out and "skipped" not in out, out
    assert "ticker: started" in out
