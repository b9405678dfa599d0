"""Packaging: the wheel is pure Python, the Debian recipe installs only wheels, the
.deb installs with Debian's psutil and pyyaml, and the other recipes are well formed."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from podmanlib import BASE, ROOT, Containers, build, containerfile

DOCKER = ROOT / "packaging" / "docker"


def test_wheel_is_pure_python_and_sdist_is_complete(dist: Path):
    wheels = list((dist / "dist").glob("pyinit_pid1-*.whl"))
    assert [w.name for w in wheels] == ["pyinit_pid1-0.1.0-py3-none-any.whl"]
    names = zipfile.ZipFile(wheels[0]).namelist()
    code = [n for n in names if ".dist-info/" not in n]
    data = [n for n in code if not n.endswith(".py")]  # the JSON Schemas, for editors
    assert sorted(data) == ["pyinit/core/schemas/pyinit.schema.json",
                            "pyinit/core/schemas/service.schema.json"], data
    assert "pyinit_pid1-0.1.0.dist-info/licenses/LICENSE" in names
    meta = zipfile.ZipFile(wheels[0]).read(next(n for n in names if n.endswith("METADATA")))
    requires = re.findall(rb"^Requires-Dist: ([\w-]+)", meta, re.M)
    assert b"psutil" in requires and b"pyyaml" in [r.lower() for r in requires]
    assert b"License-Expression: MIT" in meta and b"Name: pyinit-pid1" in meta
    sdist = subprocess.run(["tar", "tzf", *map(str, (dist / "dist").glob("pyinit_pid1-*.tar.gz"))],
                           capture_output=True, text=True, check=True).stdout
    assert "pyproject.toml" in sdist and "pyinit/boot.py" in sdist
    assert "pyinit_pid1-0.1.0/LICENSE" in sdist.splitlines()


def test_debian_image_has_pyinit_and_its_dependencies(containers: Containers, base_image: str):
    r = containers.run(base_image, "--", "/opt/pyinit/bin/python", "-c", (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d: m.version(d) for d in ('pyinit-pid1', 'psutil', 'PyYAML')}))"),
        opts=["--rm"])
    assert r.returncode == 0, r.stdout + r.stderr
    versions = json.loads(r.stdout.strip().splitlines()[-1])
    assert versions["pyinit-pid1"] == "0.1.0" and versions["psutil"] and versions["PyYAML"]
    r = containers.run(base_image, "--", "head", "-1", "/usr/local/bin/svctl", opts=["--rm"])
    assert r.stdout.strip() == "#!/opt/pyinit/bin/python -I", r.stdout + r.stderr


def test_pip_install_of_the_wheel_takes_only_wheels(containers: Containers, dist: Path):
    """The one-command path: pip pulls psutil and pyyaml from PyPI as binary wheels
    (--only-binary=:all: fails if anything would need building) into a bare image."""
    containerfile(dist, f"""FROM {BASE}
COPY dist/ /tmp/dist/
RUN python3 -m venv /v && /v/bin/pip install -q --only-binary=:all: /tmp/dist/pyinit_pid1-*.whl
ENTRYPOINT ["/v/bin/pyinit", "--"]
""")
    image = build(dist, "pip-wheel")
    r = containers.run(image, "sh", "-c", "command -v gcc cc || echo no-compiler;"
                       " /v/bin/python -c 'import psutil, yaml; print(psutil.__file__)'",
                       opts=["--rm"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no-compiler" in r.stdout and "/v/lib/python3" in r.stdout, r.stdout


def test_deb_installs_with_debian_dependencies(containers: Containers, tmp_path: Path):
    subprocess.run([str(ROOT / "packaging/debian/build-deb.sh"), str(tmp_path)], check=True,
                   capture_output=True)
    ctx = containerfile(tmp_path, f"""FROM {BASE}
COPY pyinit-pid1_0.1.0_all.deb /tmp/
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/pyinit-pid1_0.1.0_all.deb \\
 && rm -rf /var/lib/apt/lists/*
RUN mkdir -p /etc/service/hello \\
 && printf '#!/bin/sh\\necho hello from a service\\nexec sleep infinity\\n' \\
      > /etc/service/hello/run && chmod +x /etc/service/hello/run
ENTRYPOINT ["pyinit", "--"]
""")
    image = build(ctx, "deb")
    r = containers.run(image, "sh", "-c",
                       "svctl -w 20 check && svctl status hello"
                       " && dpkg -s python3-psutil python3-yaml"
                       " | grep -c 'Status: install ok installed' && exit 3", opts=["--rm"])
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert re.search(r"^run: hello: \(pid \d+\)", out, re.M), out
    assert "hello from a service" in out and "\n2\n" in out, out
    r = containers.run(image, "python3", "-c", "import pyinit; print(pyinit.__file__)",
                       opts=["--rm"])
    assert "/usr/lib/python3/dist-packages/pyinit/" in r.stdout, r.stdout + r.stderr


def instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions (continuations joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("recipe", sorted(p.name for p in DOCKER.glob("*.Dockerfile")))
def test_recipes_are_well_formed(recipe: str):
    steps = instructions(DOCKER / recipe)
    known = {"ARG", "FROM", "RUN", "COPY", "ENV", "ENTRYPOINT", "CMD", "STOPSIGNAL", "HEALTHCHECK"}
    assert {w for w, _ in steps} <= known, steps
    assert steps[0][0] == "ARG" and steps[1] == ("FROM", "${BASE}")
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["pyinit"]
    assert dict(steps)["STOPSIGNAL"] == "SIGTERM"
    run = " ".join(rest for w, rest in steps if w == "RUN")
    assert "mkdir -p /etc/service /etc/my_init.d" in run
    assert "python3 -m venv" in run and "/tmp/pyinit-dist/pyinit_pid1-*.whl" in run
    text = (DOCKER / recipe).read_text()
    assert "Tested" in text or "Not run here" in text  # says what it was tested with
