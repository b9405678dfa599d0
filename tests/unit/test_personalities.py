"""Which personality a program name selects (issue 18.7), and each personality's --help."""

from __future__ import annotations

import pytest

from pyinit.cli.pyinit import personality


@pytest.mark.parametrize(
    "name, chosen",
    [
        ("tini", "tini"),
        ("dumb-init", "dumb-init"),
        ("my_init", "my_init"),
        # Debian's tini package, Docker's --init, tini's release assets (ci/run_build.sh)
        ("tini-static", "tini"),
        ("docker-init", "tini"),
        ("tini-amd64", "tini"),
        ("tini-arm64", "tini"),
        ("tini-armel", "tini"),
        ("tini-armhf", "tini"),
        ("tini-i386", "tini"),
        ("tini-ppc64el", "tini"),
        ("tini-ppc64le", "tini"),
        ("tini-s390x", "tini"),
        ("tini-mips64el", "tini"),
        ("tini-muslc-amd64", "tini"),
        ("tini-static-amd64", "tini"),
        ("tini-static-arm64", "tini"),
        ("tini-static-muslc-amd64", "tini"),
        # dumb-init's release assets
        ("dumb-init_1.2.5_x86_64", "dumb-init"),
        ("dumb-init_1.2.5_aarch64", "dumb-init"),
        ("dumb-init_1.2.2_ppc64le", "dumb-init"),
        # pyinit itself, and names that only look alike
        ("pyinit", None),
        ("init", None),
        ("tini-", None),
        ("tini-foo", None),
        ("tini-static-", None),
        ("tini-static-x", None),
        ("tinix", None),
        ("Tini", None),
        ("dumb-init_", None),
        ("dumb-init_x_amd64", None),
        ("dumb-init_1.2.5", None),
        ("my_init.py", None),
        ("docker-init-x", None),
    ],
)
def test_program_names(name: str, chosen: str | None) -> None:
    assert personality(name) == chosen


def test_my_init_help_is_my_inits(capsys) -> None:
    from pyinit.cli import my_init

    for flag in ("--help", "-h"):
        with pytest.raises(SystemExit) as exc:
            my_init.main([flag])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: my_init ")
        for option in (
            "--enable-insecure-key",
            "--skip-startup-files",
            "--skip-runit",
            "--no-kill-all-on-exit",
            "--quiet",
            "MAIN_COMMAND",
        ):
            assert option in out, option
        assert "docs/migration.md#from-phusion-baseimages-my_init-with-runit" in out
        assert "--kill-timeout" not in out  # pyinit's own flags are pyinit --help's


@pytest.mark.parametrize(
    "args, wants",
    [
        (["--help"], True),
        (["--quiet", "-h"], True),
        (["--", "--help"], False),
        (["bash", "--help"], False),
        ([], False),
        (["--skip-runit", "ls", "-h"], False),
        (["--kill-timeout", "5", "--help"], True),  # an option's value is no command
    ],
)
def test_my_init_help_only_before_the_command(
    args: list[str], wants: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    from pyinit.cli.my_init import help_text
    from pyinit.config import parse

    if wants:
        with pytest.raises(SystemExit) as stop:
            parse(args, {}, help_text)
        assert stop.value.code == 0
        assert capsys.readouterr().out == help_text()
    else:
        parse(args, {}, help_text)
        assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "args, insecure, command",
    [
        (["--enable-insecure-key"], True, []),
        (["--enable-insecure-key", "--enable-insecure-key", "--", "x"], True, ["x"]),
        (["bash", "--enable-insecure-key"], False, ["bash", "--enable-insecure-key"]),
    ],
)
def test_my_init_takes_enable_insecure_key_before_the_command(
    args: list[str], insecure: bool, command: list[str]
) -> None:
    from pyinit.cli.my_init import help_text
    from pyinit.config import UsageError, parse

    cfg = parse(args, {}, help_text)
    assert (cfg.enable_insecure_key, cfg.command) == (insecure, command)
    with pytest.raises((SystemExit, UsageError)):  # plain pyinit does not know the flag
        parse(["--enable-insecure-key"], {})


def test_tini_and_dumb_init_help_end_with_the_note() -> None:
    from pyinit.cli import dumb_init, tini

    with pytest.raises(tini.Exit) as exc:
        tini.parse(["-h"], {})
    assert exc.value.out == tini.usage("tini") + tini.NOTE and exc.value.code == 0
    assert tini.usage("/x/tini-static-arm64").startswith(
        "tini-static-arm64 (tini version 0.19.0)\nUsage: tini-static-arm64 [OPTIONS]"
    )
    assert "docs/migration.md#from-tini" in tini.NOTE
    with pytest.raises(dumb_init.Exit) as dexc:
        dumb_init.parse(["--help"], {})
    assert dexc.value.err.endswith(dumb_init.NOTE) and dexc.value.code == 0
    assert "docs/migration.md#from-dumb-init" in dumb_init.NOTE
