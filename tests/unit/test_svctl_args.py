"""svctl's command line: parsing is pure, so every form and every bad input is checked here."""

from __future__ import annotations

import pytest

from pyinit.cli.svctl import COMMANDS, Usage, parse_args


def test_defaults_and_run_dir_sources() -> None:
    a = parse_args(["status"], {})
    assert (a.command, a.services, a.run_dir, a.wait, a.verbose) == (
        "status", [], "/run/pyinit", 7.0, False)
    assert parse_args(["status"], {"PYINIT_RUN_DIR": "/x"}).run_dir == "/x"
    assert parse_args(["--run-dir", "/y", "status"], {"PYINIT_RUN_DIR": "/x"}).run_dir == "/y"
    assert parse_args(["--run-dir=/z", "status"], {}).run_dir == "/z"


def test_wait_flags() -> None:
    a = parse_args(["-w", "3", "up", "web"], {})
    assert (a.wait, a.verbose, a.services) == (3.0, True, ["web"])
    assert parse_args(["-w2.5", "down"], {}).wait == 2.5
    assert parse_args(["-v", "up"], {}).verbose
    assert parse_args(["up"], {"SVWAIT": "4"}).wait == 4.0


def test_bad_svwait_is_a_warning_not_an_error(capsys) -> None:
    a = parse_args(["status"], {"SVWAIT": "soon"})
    assert a.wait == 7.0
    err = capsys.readouterr().err
    assert err == "svctl: warning: SVWAIT: not a number of seconds: 'soon'; using 7\n"


@pytest.mark.parametrize("words, code", [
    ([], 0), (["3"], 3), (["--exit-code", "7"], 7), (["--exit-code=255"], 255),
])
def test_shutdown_container_exit_code_forms(words, code) -> None:
    assert parse_args(["shutdown-container", *words], {}).exit_code == code


@pytest.mark.parametrize("argv, message", [
    ([], "no command given"),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["-x", "status"], "unknown option -x"),
    (["-w"], "-w needs a value"),
    (["-w", "never", "up"], "-w: not a number of seconds: 'never'"),
    (["-w", "-1", "up"], "-w: out of range: '-1'"),
    (["shutdown-container", "256"], "the exit code must be 0..255, not '256'"),
    (["shutdown-container", "--exit-code"], "--exit-code needs a value"),
    (["shutdown-container", "1", "2"], "shutdown-container takes one exit code"),
    (["scale", "worker"], "scale takes a SERVICE and a count from 0 to 1000"),
    (["scale", "worker", "1001"], "scale takes a SERVICE and a count from 0 to 1000"),
    (["scale", "worker", "-1"], "scale takes a SERVICE and a count from 0 to 1000"),
    (["scale", "worker", "2", "3"], "scale takes a SERVICE and a count from 0 to 1000"),
])
def test_usage_errors(argv, message) -> None:
    with pytest.raises(Usage, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        parse_args(argv, {})


def test_command_table_matches_runit_sv() -> None:
    expect = {
        "up": ("u", False, False), "down": ("d", False, False), "once": ("o", False, False),
        "pause": ("p", False, False), "cont": ("c", False, False), "hup": ("h", False, False),
        "alarm": ("a", False, False), "interrupt": ("i", False, False),
        "quit": ("q", False, False), "1": ("1", False, False), "2": ("2", False, False),
        "term": ("t", False, False), "kill": ("k", False, False), "exit": ("x", False, False),
        "start": ("u", True, False), "stop": ("d", True, False), "restart": ("tcu", True, False),
        "reload": ("h", True, False), "shutdown": ("x", True, False),
        "try-restart": ("tc", True, False), "check": ("C", True, False),
        "force-stop": ("d", True, True), "force-reload": ("tc", True, True),
        "force-restart": ("tcu", True, True), "force-shutdown": ("x", True, True),
    }
    for name, (letters, wait, kill) in expect.items():
        c = COMMANDS[name]
        assert (c.letters, c.wait, c.kill) == (letters, wait, kill), name


def test_scale_args() -> None:
    args = parse_args(["scale", "worker", "5"], {})
    assert (args.command, args.services, args.count) == ("scale", ["worker"], 5)
