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


# --- sv's command syntax (issue 18.8): runit 2.1.2 sv.c's first-character rule ------------
@pytest.mark.parametrize("word, command", [
    # svctl's own names are exact and come first, even where sv's rule says otherwise
    ("status", "status"), ("s", "s"), ("tree", "tree"), ("rescan", "rescan"),
    ("check", "check"), ("try-restart", "try-restart"), ("reload", "reload"),
    ("restart", "restart"), ("start", "start"), ("stop", "stop"), ("shutdown", "shutdown"),
    ("force-stop", "force-stop"), ("force-reload", "force-reload"),
    ("force-restart", "force-restart"), ("force-shutdown", "force-shutdown"),
    ("e", "e"), ("exit", "exit"), ("up", "up"), ("u", "u"),
    # then sv's rule: the first character
    ("stat", "status"), ("stats", "status"), ("sxyz", "status"),
    ("upp", "up"), ("uxyz", "up"), ("dn", "down"), ("on", "once"), ("ps", "pause"),
    ("continue", "cont"), ("cxyz", "cont"), ("checkx", "cont"), ("hangup", "hup"),
    ("help", "hup"), ("al", "alarm"), ("int", "interrupt"), ("quiet", "quit"),
    ("1st", "1"), ("2nd", "2"), ("terminate", "term"), ("tr", "term"), ("kil", "kill"),
    ("xit", "exit"), ("end", "exit"), ("X", "force-shutdown"), ("Exit", "force-shutdown"),
    ("D", "force-stop"), ("Down", "force-stop"), ("T", "force-reload"),
])
def test_sv_command_words(word: str, command: str) -> None:
    a = parse_args([word, "web"], {})
    assert (a.command, a.services) == (command, ["web"])


def test_svctl_names_with_their_own_arguments_win_over_sv_rule() -> None:
    from pyinit.cli.svctl import command_name

    for word in ("logs", "scale", "shutdown-container", "rescan", "tree"):
        assert command_name(word) == word  # sv: l -> usage, s -> status, r -> usage, t -> term
    assert parse_args(["scale", "worker", "2"], {}).command == "scale"
    assert parse_args(["shutdown-container", "3"], {}).exit_code == 3


@pytest.mark.parametrize("word", [
    # sv says usage (exit 100) for these too: 'r' and 'f' match whole words only, and
    # there is no rule for other first characters
    "r", "re", "restartx", "f", "force", "force-kill", "l", "w", "wait", "b", "U", "S",
    "", "3", "-",
])
def test_words_sv_rejects_are_unknown_commands(word: str) -> None:
    with pytest.raises(Usage, match="^unknown command"):
        parse_args([word, "web"], {})


@pytest.mark.parametrize("word", ["stat", "help", "debug", "enable", "xit", "T"])
def test_short_forms_need_a_service(word: str) -> None:
    """sv always needs a SERVICE; svctl's "none means all" stays with its own names."""
    with pytest.raises(Usage, match="need a SERVICE"):
        parse_args([word], {})
    assert parse_args([word, "web"], {}).services == ["web"]


@pytest.mark.parametrize("argv, option", [
    (["check", "-w", "1"], "-w"), (["check", "web", "-w", "1"], "-w"),
    (["up", "-v", "web"], "-v"), (["status", "-x"], "-x"), (["s", "web", "--json=1"], "--json=1"),
    (["restart", "--run-dir", "/x", "web"], "--run-dir"), (["down", "-w5", "web"], "-w5"),
    (["tree", "-h"], "-h"), (["stat", "web", "-w", "2"], "-w"),
])
def test_options_after_the_command_are_refused(argv, option: str) -> None:
    with pytest.raises(Usage) as exc:
        parse_args(argv, {})
    assert exc.value.brief
    assert str(exc.value).startswith(f"option {option!r} after the command ")


def test_options_after_the_command_print_one_line_and_exit_100(capsys) -> None:
    from pyinit.cli.svctl import main

    with pytest.raises(SystemExit) as exc:
        main(["check", "-w", "1"])
    assert exc.value.code == 100
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "svctl: error: option '-w' after the command 'check': options go before it")


def test_json_stays_and_double_dash_passes_dashed_names() -> None:
    a = parse_args(["status", "--json", "web"], {})
    assert (a.json, a.services) == (True, ["web"])
    a = parse_args(["down", "--", "-odd", "web"], {})
    assert a.services == ["-odd", "web"]
    assert parse_args(["up", "-"], {}).services == ["-"]


def test_long_unknown_words_are_cut_in_the_message() -> None:
    with pytest.raises(Usage) as exc:
        parse_args(["z" * 5000, "web"], {})
    assert len(str(exc.value)) < 120
