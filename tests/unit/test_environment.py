"""The container environment directory: parsing, merging, rendering (core/envdir.py),
reading and exporting (runtime/environment.py)."""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from pyinit.core import envdir
from pyinit.core.envdir import SKIPPED, merge, parse_entries, render_json, render_sh
from pyinit.runtime import environment, log
from pyinit.runtime.environment import export_dir, import_dir, read_dir

TRICKY = {
    "EMPTY": "",
    "SPACES": "  a  b  ",
    "SINGLE": "it's",
    "DOUBLE": 'say "hi"',
    "BOTH": "'\"'\"",
    "DOLLAR": "$HOME ${PATH} $(echo no) `echo no`",
    "BACKSLASH": "a\\b\\\\c\\",
    "NEWLINES": "line1\nline2\n",
    "LEADING_NL": "\nx",
    "TAB": "a\tb",
    "UNICODE": "héllo ☃ 日本 \U0001f600",
    "GLOB": "* ? [a-z] ~",
    "BANG": "!x !! ;& | > <",
    "EQUALS": "a=b=c",
    "DASH": "-n",
}


def docker_env_group() -> bool:
    try:
        grp.getgrnam("docker_env")
    except KeyError:
        return False
    return True


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warnings are given once per process: start every test with none given."""
    monkeypatch.setattr(log, "said", set())


# --- parse_entries -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"bar", "bar"),
        (b"bar\n", "bar"),
        (b"bar\n\n", "bar\n"),
        (b"\n", ""),
        (b"\n\n", "\n"),
        (b"", ""),
        (b"a\nb\n", "a\nb"),
        (b"bar\r\n", "bar\r"),
        (b"  spaced  ", "  spaced  "),
        ("caf\u00e9 \u2603\n".encode(), "caf\u00e9 \u2603"),
    ],
)
def test_parse_strips_exactly_one_trailing_newline(raw: bytes, value: str) -> None:
    parsed = parse_entries({"FOO": raw})
    assert parsed.values == {"FOO": value}
    assert parsed.problems == []


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A.B", "A B", "", "É", "A=B", "-", "a/b"])
def test_parse_rejects_invalid_names(name: str) -> None:
    parsed = parse_entries({name: b"x", "GOOD": b"y"})
    assert parsed.values == {"GOOD": "y"}
    assert len(parsed.problems) == 1
    assert repr(name) in parsed.problems[0]
    assert "not a valid variable name" in parsed.problems[0]


@pytest.mark.parametrize("name", ["A", "_", "_A1", "abc", "A_B_C", "x9"])
def test_parse_accepts_valid_names(name: str) -> None:
    assert parse_entries({name: b"v"}).values == {name: "v"}


def test_parse_rejects_non_utf8() -> None:
    parsed = parse_entries({"LATIN": b"caf\xe9\n", "OK": b"fine"})
    assert parsed.values == {"OK": "fine"}
    assert len(parsed.problems) == 1
    assert "LATIN" in parsed.problems[0] and "UTF-8" in parsed.problems[0]


@pytest.mark.parametrize("raw", [b"a\0b", b"\0", b"ab\0\n"])
def test_parse_rejects_nul(raw: bytes) -> None:
    parsed = parse_entries({"NUL": raw, "OK": b"fine"})
    assert parsed.values == {"OK": "fine"}
    assert len(parsed.problems) == 1
    assert "NUL" in parsed.problems[0]


def test_parse_reports_one_problem_per_bad_entry() -> None:
    entries = {"1X": b"a", "BAD-NAME": b"b", "LATIN": b"\xff", "NUL": b"\0", "A": b"1"}
    parsed = parse_entries(entries)
    assert parsed.values == {"A": "1"}
    assert len(parsed.problems) == 4
    assert all("\n" not in p for p in parsed.problems)


# --- merge -------------------------------------------------------------------


def test_merge_without_override_keeps_current() -> None:
    current = {"A": "1", "B": "2"}
    merged = merge(current, {"B": "new", "C": "3"}, override=False)
    assert merged == {"A": "1", "B": "2", "C": "3"}
    assert current == {"A": "1", "B": "2"}  # not mutated


def test_merge_with_override_takes_imported() -> None:
    merged = merge({"A": "1", "B": "2"}, {"B": "new", "C": "3"}, override=True)
    assert merged == {"A": "1", "B": "new", "C": "3"}


def test_merge_keeps_empty_current_value_without_override() -> None:
    assert merge({"A": ""}, {"A": "x"}, override=False) == {"A": ""}


# --- rendering -----------------------------------------------------------------


def _source(path: Path) -> dict[str, str]:
    """The environment a shell gets after sourcing path (read NUL-separated)."""
    out = subprocess.run(
        ["env", "-i", "sh", "-c", '. "$1" && exec env -0', "sh", str(path)],
        capture_output=True, check=True,
    ).stdout
    env = {}
    for item in out.split(b"\0"):
        if item:
            key, _, value = item.partition(b"=")
            env[key.decode()] = value.decode("utf-8")
    return env


def test_render_sh_round_trips_through_sh(tmp_path: Path) -> None:
    script = tmp_path / "env.sh"
    script.write_text(render_sh(TRICKY), encoding="utf-8")
    sourced = _source(script)
    for key, value in TRICKY.items():
        assert sourced.get(key) == value, key


def test_render_sh_is_one_export_per_variable_even_with_newlines() -> None:
    text = render_sh({"A": "1", "B": "x"})
    assert text == "export A=1\nexport B=x\n"
    multi = render_sh({"NL": "a\nb"})
    assert multi.startswith("export NL=") and multi.count("export") == 1


def test_render_sh_skips_user_variables_and_invalid_names(tmp_path: Path) -> None:
    env = {k: "skipped" for k in SKIPPED}
    env.update({"KEPT": "yes", "BAD-NAME": "no", "1X": "no"})
    text = render_sh(env)
    assert text == "export KEPT=yes\n"
    script = tmp_path / "env.sh"
    script.write_text(text)
    assert _source(script)["KEPT"] == "yes"


def test_render_json() -> None:
    env = dict(TRICKY)
    env.update({k: "skipped" for k in SKIPPED})
    env["BAD-NAME"] = "no"
    text = render_json(env)
    assert text.endswith("\n")
    assert json.loads(text) == TRICKY
    assert list(json.loads(text)) == sorted(TRICKY)


def test_render_json_empty() -> None:
    assert json.loads(render_json({})) == {}


# --- reading and importing ---------------------------------------------------------


def test_read_dir_missing_is_empty(tmp_path: Path) -> None:
    parsed = read_dir(str(tmp_path / "missing"))
    assert parsed.values == {} and parsed.problems == []


def test_read_dir_not_a_directory_is_a_problem(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    parsed = read_dir(str(f))
    assert parsed.values == {}
    assert len(parsed.problems) == 1 and "cannot read" in parsed.problems[0]


def test_read_dir_ignores_subdirectories(tmp_path: Path) -> None:
    (tmp_path / "SUB").mkdir()
    (tmp_path / "A").write_bytes(b"1\n")
    parsed = read_dir(str(tmp_path))
    assert parsed.values == {"A": "1"} and parsed.problems == []


def test_read_dir_lists_no_more_than_max_files_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared env dir may hold any number of names: it is listed only up to
    MAX_FILES (one entry more, to tell), not in full and cut afterwards."""
    monkeypatch.setattr(environment, "MAX_FILES", 5)
    for i in range(200):
        (tmp_path / f"V{i:03d}").write_text(str(i))
    read = [0]
    real_listdir, real_scandir = os.listdir, os.scandir

    def counting_listdir(*args: object) -> list[str]:
        names = real_listdir(*args)  # type: ignore[call-overload]
        read[0] += len(names)
        return names

    class CountingScandir:
        def __init__(self, *args: object) -> None:
            self.it = real_scandir(*args)  # type: ignore[call-overload]

        def __enter__(self) -> CountingScandir:
            return self

        def __exit__(self, *exc: object) -> None:
            self.it.close()

        def __iter__(self) -> CountingScandir:
            return self

        def __next__(self) -> os.DirEntry:
            entry = next(self.it)
            read[0] += 1
            return entry

    monkeypatch.setattr(os, "listdir", counting_listdir)
    monkeypatch.setattr(os, "scandir", CountingScandir)
    parsed = read_dir(str(tmp_path))
    monkeypatch.setattr(os, "listdir", real_listdir)
    monkeypatch.setattr(os, "scandir", real_scandir)
    assert read[0] <= 6, f"{read[0]} names listed"
    assert len(parsed.values) == 5
    assert parsed.problems == ["more than 5 names: only the first 5 listed are read"]


def test_import_dir_override_and_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    for key in ("PYINIT_T_SET", "PYINIT_T_NEW"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PYINIT_T_SET", "outer")
    (tmp_path / "PYINIT_T_SET").write_text("inner\n")
    (tmp_path / "PYINIT_T_NEW").write_text("new\n")
    (tmp_path / "BAD-NAME").write_text("x")
    import_dir(str(tmp_path), override=False)
    assert os.environ["PYINIT_T_SET"] == "outer"
    assert os.environ["PYINIT_T_NEW"] == "new"
    import_dir(str(tmp_path), override=True)
    assert os.environ["PYINIT_T_SET"] == "inner"
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1  # the bad name is reported once, not once per import
    assert err[0].startswith("pyinit: warning: ") and "'BAD-NAME'" in err[0]
    assert "not a valid variable name" in err[0]
    (tmp_path / "OTHER-BAD").write_text("x")
    import_dir(str(tmp_path), override=True)
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and "'OTHER-BAD'" in err[0]  # a new problem is reported


# --- exporting -------------------------------------------------------------------


def test_export_dir_writes_files_dumps_and_modes(tmp_path: Path) -> None:
    target = tmp_path / "container_environment"
    env = dict(TRICKY)
    env.update({k: "skipped" for k in SKIPPED})
    env["BAD-NAME"] = "no"
    assert export_dir(str(target), env) is True

    fmode, dump_mode = 0o600, 0o640 if docker_env_group() else 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    names = sorted(os.listdir(target))
    assert names == sorted(TRICKY)  # no temp files left, skipped names absent
    for key, value in TRICKY.items():
        path = target / key
        expected = value + "\n" if value.endswith("\n") else value
        assert path.read_bytes() == expected.encode("utf-8"), key
        assert stat.S_IMODE(path.stat().st_mode) == fmode
    sh = tmp_path / "container_environment.sh"
    js = tmp_path / "container_environment.json"
    assert stat.S_IMODE(sh.stat().st_mode) == dump_mode
    assert stat.S_IMODE(js.stat().st_mode) == dump_mode
    assert json.loads(js.read_text(encoding="utf-8")) == TRICKY
    sourced = _source(sh)
    assert {k: sourced.get(k) for k in TRICKY} == TRICKY
    for key in SKIPPED:
        assert key not in json.loads(js.read_text(encoding="utf-8"))


def test_export_then_import_round_trips_exactly(tmp_path: Path) -> None:
    """pyinit re-imports its own export after every startup script: no value may
    change, not even one ending in newlines (a file loses one newline on read)."""
    target = tmp_path / "env"
    env = dict(TRICKY)
    env.update({"NL1": "x\n", "NL2": "y\n\n", "ONLY_NL": "\n"})
    for _ in range(3):
        assert export_dir(str(target), env) is True
        parsed = read_dir(str(target))
        assert parsed.problems == []
        assert parsed.values == env
        env = parsed.values


def test_exported_files_match_my_init_for_ordinary_values(tmp_path: Path) -> None:
    """A value without a trailing newline is written as is, like my_init does."""
    target = tmp_path / "env"
    export_dir(str(target), {"A": "plain", "B": "", "C": "a\nb"})
    assert (target / "A").read_bytes() == b"plain"
    assert (target / "B").read_bytes() == b""
    assert (target / "C").read_bytes() == b"a\nb"
    assert envdir.file_content("x\n") == "x\n\n"


def test_export_dir_replaces_atomically(tmp_path: Path) -> None:
    """Existing files are replaced by rename, never rewritten in place: a reader
    holding the old file keeps seeing the complete old content."""
    target = tmp_path / "env"
    export_dir(str(target), {"FOO": "old value"})
    old_files = {
        name: open(path, "rb")  # noqa: SIM115 - closed below
        for name, path in (
            ("FOO", target / "FOO"),
            ("sh", tmp_path / "env.sh"),
            ("json", tmp_path / "env.json"),
        )
    }
    old_inodes = {
        "FOO": (target / "FOO").stat().st_ino,
        "sh": (tmp_path / "env.sh").stat().st_ino,
        "json": (tmp_path / "env.json").stat().st_ino,
    }
    try:
        assert export_dir(str(target), {"FOO": "new"}) is True
        assert (target / "FOO").read_text() == "new"
        assert (target / "FOO").stat().st_ino != old_inodes["FOO"]
        assert (tmp_path / "env.sh").stat().st_ino != old_inodes["sh"]
        assert (tmp_path / "env.json").stat().st_ino != old_inodes["json"]
        assert old_files["FOO"].read() == b"old value"
        assert b"old value" in old_files["sh"].read()
        assert b"old value" in old_files["json"].read()
    finally:
        for fh in old_files.values():
            fh.close()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".pyinit-")]
    assert not [n for n in os.listdir(target) if n.startswith(".pyinit-")]


def test_export_dir_tightens_an_existing_directory(tmp_path: Path) -> None:
    target = tmp_path / "env"
    target.mkdir(mode=0o777)
    target.chmod(0o777)
    export_dir(str(target), {"A": "1"})
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another group")
def test_docker_env_gets_the_dumps_only_as_in_phusions_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """phusion's image: the dir 0700 root:root, .sh and .json 0640 root:docker_env.
    The variable files are 0600 (phusion: 0644 behind the 0700 dir)."""
    gid = 4321
    monkeypatch.setattr(environment.grp, "getgrnam",
                        lambda name: grp.struct_group((name, "x", gid, [])))
    target = tmp_path / "env"
    assert export_dir(str(target), {"A": "1"}) is True
    st = target.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o700, os.getegid())
    st = (target / "A").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o600, os.getegid())
    for dump in ("env.sh", "env.json"):
        st = (tmp_path / dump).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid), dump


def _unwritable(tmp_path: Path, kind: str) -> Path:
    if kind == "parent is a file":
        (tmp_path / "file").write_text("")
        return tmp_path / "file" / "env"
    if kind == "path is a file":
        (tmp_path / "env").write_text("")
        return tmp_path / "env"
    if kind == "dump is a directory":
        (tmp_path / "env.sh").mkdir()
        return tmp_path / "env"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["parent is a file", "path is a file", "dump is a directory"])
def test_export_dir_unwritable_warns_once_and_returns_false(
    tmp_path: Path, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    target = _unwritable(tmp_path, kind)
    assert export_dir(str(target), {"A": "1", "B": "2"}) is False
    err = capfd.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pyinit: warning: cannot export the environment to ")
    assert "carrying on" in lines[0]
    assert "Traceback" not in err
    leftovers = [p for p in tmp_path.rglob(".pyinit-*")]
    assert leftovers == []


def test_export_dir_unwritable_for_non_root(tmp_path: Path) -> None:
    """A read-only directory as a non-root user: warn, return False, no traceback."""
    target = tmp_path / "env"
    target.mkdir()
    tmp_path.chmod(0o755)
    code = (
        "import os, sys\n"
        "from pyinit.runtime.environment import export_dir\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "sys.exit(0 if export_dir(sys.argv[1], {'A': '1'}) is False else 1)\n"
    )
    if os.geteuid() != 0:
        target.chmod(0o500)
        code = code.replace("os.setgid(65534); os.setuid(65534)\n", "")
    r = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyinit: warning: cannot export"), r.stderr


def test_exported_skips_values_that_are_not_utf8() -> None:
    env = {"GOOD": "caf\u00e9", "RAW": "caf\udce9"}  # os.environ's form of b"caf\xe9"
    assert envdir.exported(env) == {"GOOD": "caf\u00e9"}
    assert "RAW" not in render_sh(env) and "RAW" not in render_json(env)


def test_export_dir_with_an_inherited_non_utf8_value_warns_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A variable pyinit inherited with undecodable bytes cannot be written: it is
    left out with one warning (it was a crash of the whole boot)."""
    target = tmp_path / "env"
    env = {"GOOD": "yes", "RAW": "caf\udce9"}
    assert export_dir(str(target), env) is True
    assert export_dir(str(target), env) is True  # re-exported after each script
    assert sorted(os.listdir(target)) == ["GOOD"]
    assert json.loads((tmp_path / "env.json").read_text()) == {"GOOD": "yes"}
    err = capfd.readouterr().err.splitlines()
    assert err == ["pyinit: warning: not exporting RAW: its value is not valid UTF-8"]


# --- where the dump goes: the env dir, else the run dir (read-only root) ------------------


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "said", set())


def test_exporter_writes_the_env_dir_and_names_it(tmp_path: Path, fresh_warnings,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    exporter = environment.Exporter(str(tmp_path / "env"), str(tmp_path / "run" / "env"))
    env = {"A": "1"}
    assert exporter.export(env) == str(tmp_path / "env")
    assert env["PYINIT_ENV_DIR"] == exporter.current == str(tmp_path / "env")
    assert (tmp_path / "env" / "A").read_text() == "1"
    assert (tmp_path / "env" / "PYINIT_ENV_DIR").read_text() == str(tmp_path / "env")
    assert not (tmp_path / "run").exists()
    assert capfd.readouterr().err == ""


def test_exporter_falls_back_to_the_run_dir_with_one_warning(
    tmp_path: Path, fresh_warnings, capfd: pytest.CaptureFixture[str]
) -> None:
    target = _unwritable(tmp_path, "path is a file")
    fallback = tmp_path / "run" / "container_environment"
    exporter = environment.Exporter(str(target), str(fallback))
    env = {"A": "1"}
    for value in ("1", "2"):  # boot, then after a startup script
        env["A"] = value
        assert exporter.export(env) == str(fallback)
        assert (fallback / "A").read_text() == value
    assert env["PYINIT_ENV_DIR"] == exporter.current == str(fallback)
    assert json.loads((tmp_path / "run" / "container_environment.json").read_text())["A"] == "2"
    err = capfd.readouterr().err.splitlines()
    assert err == [f"pyinit: warning: cannot write the container environment to {target} "
                   f"(Not a directory): writing it to {fallback} instead"]


def test_exporter_gives_up_with_one_warning(tmp_path: Path, fresh_warnings,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    target = _unwritable(tmp_path, "path is a file")
    (tmp_path / "run").write_text("")
    fallback = tmp_path / "run" / "env"
    exporter = environment.Exporter(str(target), str(fallback))
    env: dict[str, str] = {}
    assert exporter.export(env) is None
    assert exporter.export(env) is None
    assert env["PYINIT_ENV_DIR"] == exporter.current == str(target)  # read back from there
    err = capfd.readouterr().err.splitlines()
    assert err == [f"pyinit: warning: cannot export the environment to {target} (Not a "
                   f"directory) or {fallback} (Not a directory); carrying on"]


def test_exporter_without_a_run_dir(tmp_path: Path, fresh_warnings,
                                    capfd: pytest.CaptureFixture[str]) -> None:
    target = _unwritable(tmp_path, "path is a file")
    assert environment.Exporter(str(target), None).export({}) is None
    assert capfd.readouterr().err == (f"pyinit: warning: cannot export the environment to "
                                      f"{target} (Not a directory); carrying on\n")


def test_no_chown_to_docker_env_writes_private_files_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_warnings,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """--cap-drop=ALL: no CAP_CHOWN, so no group docker_env: 0700/0600, one warning."""
    monkeypatch.setattr(environment, "_modes", lambda: (0o700, 0o600, 0o640, 4321))

    def no_chown(path, uid, gid):
        raise PermissionError(1, "Operation not permitted", path)

    monkeypatch.setattr(os, "chown", no_chown)
    monkeypatch.setattr(os, "fchown", no_chown)
    target = tmp_path / "env"
    for _ in range(2):
        assert export_dir(str(target), {"A": "1"}) is True
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "A").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "env.sh").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "env.json").stat().st_mode) == 0o600
    err = capfd.readouterr().err.splitlines()
    assert err == ["pyinit: warning: cannot give the environment files to group docker_env "
                   "(Operation not permitted; needs CAP_CHOWN): they are readable by uid "
                   f"{os.geteuid()} only"]
