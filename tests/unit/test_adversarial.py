"""Adversarial review of issues 17 and 23 (branch review-sec): pure-logic regressions."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from pyinit.core import schema
from pyinit.runtime import yamlfile

SEXAGESIMAL = "1" + ":59" * 15000 + ".5"  # an integer part too large for a float


@pytest.mark.parametrize(
    "value", [SEXAGESIMAL, "9" * 5000, "2001-13-45", "2001-12-14 21:59:43 +99:00"]
)
def test_yaml_numbers_and_dates_out_of_range_are_config_errors(tmp_path: Path, value: str) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(f"stop_timeout: {value}\n")
    with pytest.raises(schema.ConfigError) as exc:
        yamlfile.load_service(str(path))
    assert str(exc.value) == f"{path}: not valid YAML: a number or date out of range"


def test_the_interpreter_is_never_pythonexecutables_program(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With PYTHONEXECUTABLE set, sys.executable names that program (Linux, even
    under -I): the re-exec and the launchers' `#!` line use this interpreter's own
    file instead."""
    from pyinit import entry, launchers

    monkeypatch.setenv("PYTHONEXECUTABLE", "/bin/echo")
    monkeypatch.setattr(sys, "executable", "/bin/echo")
    python = entry.interpreter()
    assert os.path.samefile(python, "/proc/self/exe")
    assert launchers.main([str(tmp_path)]) == 0
    first = (tmp_path / "pyinit").read_text().splitlines()[0]
    assert first == f"#!{python} -I"
    monkeypatch.delenv("PYTHONEXECUTABLE")
    assert os.path.samefile(entry.interpreter(), "/proc/self/exe")


def test_the_interpreter_is_never_another_python_found_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without PYTHONEXECUTABLE, sys.executable is argv[0] looked up on PATH (Linux):
    started as `python3` with another user's `python3` first on PATH, the re-exec
    ran that one. Only the running file is used."""
    from pyinit import entry

    monkeypatch.delenv("PYTHONEXECUTABLE", raising=False)
    hijack = tmp_path / "python3"
    hijack.write_text("#!/bin/sh\nexit 99\n")
    hijack.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(hijack))
    assert os.path.samefile(entry.interpreter(), "/proc/self/exe")
    monkeypatch.setattr(sys, "executable", sys.orig_argv[0])
    if "/" in sys.orig_argv[0]:  # the venv's path, kept when it is the running file
        assert entry.interpreter() == os.path.abspath(sys.orig_argv[0])


def test_supervise_fifo_is_not_opened_when_it_is_a_device(tmp_path: Path) -> None:
    """supervise/control replaced (by the service dir's owner) with a device: it was
    opened O_RDWR before its type was checked; now it is refused unopened. A device
    number no driver has answers the open with ENXIO, so an open would show."""
    from pyinit.linux import safefs
    from pyinit.services import supervise as supervise_dir

    os.mknod(tmp_path / "control", 0o600 | stat.S_IFCHR, os.makedev(240, 77))
    fd = safefs.open_dir(str(tmp_path))
    try:
        with pytest.raises(OSError) as exc:
            supervise_dir.open_fifo(fd, "control")
    finally:
        os.close(fd)
    assert exc.value.strerror == "control exists but is not a FIFO"


def test_a_bug_on_one_services_files_does_not_stop_the_scan(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Defence in depth for the finding above: an exception nobody foresaw while
    reading one service (here a stand-in) made scan() raise, so no service started."""
    from pyinit.services import servicedir as service

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run").write_text("#!/bin/sh\n")
        (tmp_path / name / "run").chmod(0o755)
    real = service.read_config

    def flaky(path: str, defaults: object, *reading: object) -> object:
        if path.endswith("/a"):
            raise OverflowError("a case nobody foresaw")
        return real(path, defaults, *reading)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "read_config", flaky)
    found, _ = service.scan([str(tmp_path)])
    assert found["a"].error == "pyinit could not read it (see its log)"
    assert found["b"].error is None
    assert f"internal error in reading {tmp_path / 'a'}" in capfd.readouterr().err


def test_refused_run_dirs_are_described_in_bounded_text() -> None:
    """XDG_RUNTIME_DIR comes from the environment (up to 128 KiB): the warning that
    no run dir is usable put it whole into one line."""
    from pyinit.runtime import rundir

    xdg = "/" + "x" * 100_000
    choice = rundir.choose(None, {"XDG_RUNTIME_DIR": xdg}, 5, lambda c, u: "Permission denied")
    text = rundir.describe(choice.refused)
    assert len(text) < 1000 and text.startswith("/run/pyinit: Permission denied; /xxx")
