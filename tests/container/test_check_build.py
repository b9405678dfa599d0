"""`RUN pyinit check` in a Containerfile: `podman build` fails for a broken service
(naming every problem, as boot would) and succeeds for a good one; and `pyinit check
--root` reads an image exported from podman as an unpacked tree."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from podmanlib import ROOT, build, containerfile, network_args, podman

GOOD = """
RUN mkdir -p /etc/service/web \\
 && printf '#!/bin/sh\\nexec sleep infinity\\n' > /etc/service/web/run \\
 && chmod +x /etc/service/web/run \\
 && printf 'user: nobody\\nready: {tcp: 8080}\\n' > /etc/service/web/service.yaml
"""
BROKEN = (
    GOOD
    + """
RUN mkdir -p /etc/service/worker \\
 && printf '#!/usr/bin/python9\\nprint(1)\\n' > /etc/service/worker/run \\
 && chmod +x /etc/service/worker/run \\
 && printf 'requires: [db]\\nuser: nosuchuser\\n' > /etc/service/worker/service.yaml \\
 && mkdir -p /etc/service/cron && printf 'echo\\n' > /etc/service/cron/run
"""
)


def podman_build(ctx: Path, tag: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "build", "--format", "docker", "-t", tag, *network_args(), str(ctx)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_run_pyinit_check_fails_the_build_of_a_broken_service(base_image: str, tmp_path: Path):
    ctx = containerfile(tmp_path / "broken", f"FROM {base_image}\n{BROKEN}\nRUN pyinit check\n")
    r = podman_build(ctx, "localhost/pyinit-test/check-broken:latest")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    for line in (
        "pyinit: error: [worker] /etc/service/worker/service.yaml: user: unknown user 'nosuchuser'",
        "pyinit: error: [worker] /etc/service/worker/run: interpreter /usr/bin/python9: not found",
        "pyinit: error: [cron] run is not executable",
    ):
        assert line in out, out[-3000:]
    r = podman("image", "exists", "localhost/pyinit-test/check-broken:latest", check=False)
    assert r.returncode != 0  # no image was made


def test_run_pyinit_check_passes_a_good_image(base_image: str, tmp_path: Path):
    ctx = containerfile(tmp_path / "good", f"FROM {base_image}\n{GOOD}\nRUN pyinit check\n")
    tag = build(ctx, "check-good")
    assert tag.endswith("check-good:latest")


def test_check_root_reads_an_exported_image(base_image: str, tmp_path: Path):
    """The broken image's tree (without RUN pyinit check), exported and unpacked, is
    checked from the host with --root: the image's users, interpreters and links."""
    ctx = containerfile(tmp_path / "tree", f"FROM {base_image}\n{BROKEN}\n")
    tag = build(ctx, "check-tree")
    name = f"pyinit-check-export-{tmp_path.name}"
    podman("create", "--name", name, tag)
    try:
        tar = tmp_path / "image.tar"
        podman("export", "-o", str(tar), name)
    finally:
        podman("rm", "-f", name, check=False)
    tree = tmp_path / "rootfs"
    tree.mkdir()
    with tarfile.open(tar) as archive:
        members = [m for m in archive.getmembers() if not m.isdev()]
        archive.extractall(tree, members)  # noqa: S202 - our own image
    r = subprocess.run(
        [sys.executable, "-m", "pyinit", "check", "--root", str(tree)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    lines = r.stderr.splitlines()
    assert r.returncode == 1, r.stderr
    assert sorted(lines) == sorted(
        [
            "pyinit: error: [cron] run is not executable",
            "pyinit: error: [worker] /etc/service/worker/service.yaml: user: unknown user "
            "'nosuchuser'",
            "pyinit: error: [worker] /etc/service/worker/run: interpreter /usr/bin/python9: "
            "not found",
        ]
    ), lines
    assert "[web]" not in r.stderr  # nobody and /bin/sh are the image's
