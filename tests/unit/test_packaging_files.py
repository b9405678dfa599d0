"""What packaging/ ships besides the code: the man pages (every flag each parser
knows is in its page, and groff renders them without a warning), svctl's bash
completion (run in a real bash: COMPREPLY), the .deb's files, the distribution's
metadata and README links that work on a package index page."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pyinit import config
from pyinit.cli import check, setuser, svctl

ROOT = Path(__file__).resolve().parents[2]
MAN = ROOT / "packaging" / "man"
COMPLETION = ROOT / "packaging" / "completion" / "svctl.bash"


def page(name: str) -> str:
    return (MAN / f"{name}.8").read_text().replace("\\-", "-")


def flags(parser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def svctl_commands() -> set[str]:
    return {n for n in (*svctl.COMMANDS, *svctl.HANDLERS) if len(n) > 1}


def test_every_flag_is_in_its_man_page():
    text = page("pyinit")
    missing = [
        f
        for f in flags(config.build_parser()) | flags(check.build_parser())
        if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)
    ]
    assert not missing, missing
    text = page("svctl")
    missing = [
        w
        for w in {
            "-v",
            "-w",
            "--run-dir",
            "--help",
            "--version",
            "--json",
            "-f",
            "-n",
            "--exit-code",
            *svctl_commands(),
        }
        if w not in text
    ]
    assert not missing, missing
    text = page("setuser")
    assert not [
        o
        for o in [*setuser.parse.__code__.co_consts, "--help", "--version"]
        if isinstance(o, str) and o.startswith("--") and o not in text
    ]


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("name", ["pyinit", "svctl", "setuser"])
def test_man_pages_render_without_warnings(name: str):
    r = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(MAN / f"{name}.8")],
        capture_output=True,
        text=True,
        env={"LC_ALL": "C.UTF-8", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(
        ["groff", "-man", "-Tutf8", str(MAN / f"{name}.8")], capture_output=True, text=True
    )
    assert f"{name} -" in r.stdout.replace("\u2010", "-").replace("\u2212", "-"), r.stdout[:300]


def complete(
    *words: str, status: str = "run: web: (pid 9) 3s\nrun: worker@1: (pid 8) 2s\n"
) -> list[str]:
    """COMPREPLY for the command line `words` (the last one being completed), with a
    stub svctl printing `status` as `svctl status` would."""
    script = f"""
svctl() {{ [ "$1" = status ] && printf '%s\\n' {" ".join(repr(x) for x in status.splitlines())}; }}
source {str(COMPLETION)!r}
COMP_WORDS=({" ".join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
_svctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    r = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return sorted(w for w in r.stdout.splitlines() if w)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completion_of_commands_options_and_services():
    assert complete("svctl", "st") == ["start", "status", "stop"]
    assert complete("svctl", "res") == ["rescan", "restart"]
    assert complete("svctl", "--r") == ["--run-dir"]
    assert complete("svctl", "-w", "5", "sc") == ["scale"]
    assert complete("svctl", "up", "w") == ["web", "worker@1"]
    assert complete("svctl", "-v", "restart", "web", "wo") == ["worker@1"]
    assert complete("svctl", "status", "--j") == ["--json"]
    assert complete("svctl", "status", "--l") == ["--long"]
    assert complete("svctl", "logs", "-") == ["-f", "-n"]
    assert complete("svctl", "rescan", "") == []


def test_bash_completion_falls_back_to_the_service_dirs(tmp_path: Path):
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
    script = f"""
svctl() {{ return 100; }}
PYINIT_SERVICE_DIR={str(tmp_path)!r}
source {str(COMPLETION)!r}
COMP_WORDS=(svctl down '')
COMP_CWORD=2
_svctl
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    r = subprocess.run(["bash", "--norc", "-c", script], capture_output=True, text=True)
    assert sorted(r.stdout.split()) == ["alpha", "beta"], r.stdout + r.stderr


def test_bash_completion_knows_every_svctl_command():
    """A command added to svctl belongs in the completion (and in svctl.8)."""
    listed = set(re.search(r'local commands="([^"]*)"', COMPLETION.read_text()).group(1).split())
    assert svctl_commands() - {"e"} <= listed, svctl_commands() - listed


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
def test_the_deb_installs_man_pages_completion_and_docs(tmp_path: Path):
    out = subprocess.run(
        [str(ROOT / "packaging/debian/build-deb.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == str(tmp_path / "pyinit-pid1_0.1.0_all.deb")
    files = subprocess.run(
        ["dpkg-deb", "-c", out], capture_output=True, text=True, check=True
    ).stdout
    for path in (
        "usr/share/man/man8/pyinit.8.gz",
        "usr/share/man/man8/svctl.8.gz",
        "usr/share/man/man8/setuser.8.gz",
        "usr/share/bash-completion/completions/svctl",
        "usr/share/doc/pyinit-pid1/copyright",
        "usr/share/doc/pyinit-pid1/docs/pyinit.md",
        "usr/lib/python3/dist-packages/pyinit/core/schemas/service.schema.json",
    ):
        assert f"./{path}\n" in files, path
    info = subprocess.run(["dpkg-deb", "-f", out, "Package"], capture_output=True, text=True)
    assert info.stdout.strip() == "pyinit-pid1"


def test_distribution_metadata():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        pytest.skip("tomllib needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "pyinit-pid1"
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    classifiers = project["classifiers"]
    for version in ("3.9", "3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    assert any(c.startswith("Intended Audience ::") for c in classifiers)
    assert any(c.startswith("Environment ::") for c in classifiers)
    assert project["keywords"] and set(project["urls"]) >= {"Homepage", "Source"}
    assert "pyinit-pid1" in project["urls"]["Source"]


def test_readme_links_work_on_a_package_index_page():
    """PyPI shows README.md without the repository: every link is absolute (or an
    anchor of the page itself), into the repository named in the metadata."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]*)\)", readme)
    assert targets
    for target in targets:
        assert target.startswith(("https://", "#")), target
        if "github.com/pyinit-pid1/pyinit-pid1/" in target:
            rel = target.split("/main/", 1)[1].split("#")[0]
            assert (ROOT / rel).exists(), target


def test_version_everywhere_agrees():
    from pyinit import __version__

    assert f'version = "{__version__}"' in (ROOT / "pyproject.toml").read_text()
    for name in ("pyinit", "svctl", "setuser"):
        assert f'"pyinit-pid1 {__version__}"' in (MAN / f"{name}.8").read_text()
