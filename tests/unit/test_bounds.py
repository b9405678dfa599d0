"""Bounded, strict input (issue 17 findings 2, 3 and 5, issue 18 item 10): every input a
less trusted party controls costs bounded memory and time, numbers are ASCII digits in
range, and no value is ever formatted into a message unbounded."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pyinit.cli import dumb_init, svctl, tini
from pyinit.config import UsageError, parse
from pyinit.core import bounds, schema
from pyinit.core.protocol import ProtocolError, parse_request
from pyinit.core.views import MAX_FIELD, capped
from pyinit.linux import users as privileges
from pyinit.runtime import yamlfile
from pyinit.services import notify

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bomb(levels: int) -> str:
    """The billion-laughs service.yaml of issue 17: 288 bytes at 7 levels, 360 at 9."""
    text = "restart:\n  - &a [" + ",".join(["laugh"] * 9) + "]\n"
    for prev, name in zip("abcdefgh", "bcdefghi"[: levels - 1]):
        text += f"  - &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


def test_the_bombs_are_the_issues_sizes() -> None:
    assert len(bomb(7)) == 288 and len(bomb(9)) == 360


# --- render: a value in a message ----------------------------------------------------
def nested_shared(levels: int) -> list:
    value: list = ["laugh"] * 9
    for _ in range(levels):
        value = [value] * 9  # shared, as a YAML loader builds aliases
    return value


@pytest.mark.parametrize(
    "value",
    [
        nested_shared(12),  # 9**13 leaves: repr() would never finish
        "x" * 10**7,
        10**5000,  # str() raises past 4300 digits
        {"k" * 10**6: ["v"] * 10**6},
        eval("[" * 40 + "]" * 40),  # noqa: S307 - a deeply nested list
        b"\xff" * 10**6,
        object(),
    ],
    ids=["bomb", "long-text", "huge-int", "huge-dict", "deep", "bytes", "object"],
)
def test_render_is_bounded_whatever_the_value(value: object) -> None:
    text = bounds.render(value)
    assert len(text) <= bounds.MAX_MESSAGE_VALUE + 3
    assert "\n" not in text


def test_render_is_repr_for_small_values() -> None:
    for value in ("sometimes", 3, 1.5, None, True, ["a", 1], {"a": [1, 2]}):
        assert bounds.render(value) == repr(value)
    assert bounds.render("x" * 100, 10) == repr("x" * 9)[:10] + "..."


# --- YAML: size, aliases, depth ------------------------------------------------------
def write(tmp_path, text: str | bytes, name: str = "service.yaml") -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


@pytest.mark.parametrize("levels", [7, 9])
def test_alias_bombs_are_refused_before_anything_is_built(tmp_path, levels: int) -> None:
    path = write(tmp_path, bomb(levels))
    with pytest.raises(schema.ConfigError) as info:
        yamlfile.load_service(path)
    assert str(info.value) == (
        f"{path}: more than {yamlfile.MAX_NODES} YAML values, with aliases expanded"
    )


def test_aliases_within_budget_still_work(tmp_path) -> None:
    path = write(tmp_path, "base: &env {A: '1', B: '2'}\n")
    assert yamlfile.load_yaml(path) == {"base": {"A": "1", "B": "2"}}
    text = "x-defaults: &d {restart: on-failure}\nenvironment: &e {A: '1'}\n"
    assert yamlfile.load_yaml(write(tmp_path, text, "b.yaml"))["environment"] == {"A": "1"}
    merged = "a: &a {restart: never}\nb:\n  <<: *a\n  essential: true\n"
    assert yamlfile.load_yaml(write(tmp_path, merged, "c.yaml"))["b"] == {
        "restart": "never",
        "essential": True,
    }


def test_recursive_alias_and_deep_nesting_are_refused(tmp_path) -> None:
    with pytest.raises(schema.ConfigError, match="an alias refers to a value that contains"):
        yamlfile.load_yaml(write(tmp_path, "a: &x [1, *x]\n"))
    deep = "a: " + "[" * 40 + "]" * 40 + "\n"
    with pytest.raises(schema.ConfigError, match=r"nested deeper than 32 levels"):
        yamlfile.load_yaml(write(tmp_path, deep, "d.yaml"))
    deeper = "[" * 5000 + "]" * 5000  # over libyaml's own limit, or Python's recursion
    with pytest.raises(schema.ConfigError):
        yamlfile.load_yaml(write(tmp_path, deeper, "e.yaml"))


def test_document_size_is_bounded_by_a_bounded_read(tmp_path) -> None:
    path = write(tmp_path, "# " + "x" * yamlfile.MAX_DOCUMENT + "\n")
    with pytest.raises(schema.ConfigError) as info:
        yamlfile.load_yaml(path)
    assert str(info.value) == f"{path}: larger than 64 KiB"
    fits = write(tmp_path, "# " + "x" * (yamlfile.MAX_DOCUMENT - 10) + "\n", "ok.yaml")
    assert yamlfile.load_yaml(fits) is None


def test_a_huge_number_is_one_line(tmp_path) -> None:
    path = write(tmp_path, "nice: " + "9" * 60000 + "\n")
    with pytest.raises(schema.ConfigError) as info:
        yamlfile.load_service(path)
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


@pytest.mark.parametrize("kind", ["fifo", "device", "dir"])
def test_a_service_yaml_that_is_not_a_file_is_refused_without_blocking(tmp_path, kind) -> None:
    """A FIFO would block PID 1's open() for ever; /dev/zero would never end."""
    path = tmp_path / "service.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    code = (
        "import sys; from pyinit.core import schema; from pyinit.runtime import yamlfile\n"
        "try: yamlfile.load_service(sys.argv[1])\n"
        "except schema.ConfigError as e: print(e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    why = {"dir": "Is a directory", "device": "zero is not a regular file"}.get(
        kind, "service.yaml is not a regular file"
    )
    assert r.stdout == f"{path}: cannot read: {why}\n", r.stderr


def test_notification_fd_file_is_read_bounded_and_strictly(tmp_path) -> None:
    from pyinit.services.servicedir import read_config

    for text in ("٣", "+3", "3_0", "9" * 5000, "\xff"):
        (tmp_path / "notification-fd").write_bytes(text.encode("utf-8", "surrogateescape"))
        with pytest.raises(ValueError, match="must hold a number from 3 to 1023"):
            read_config(str(tmp_path), None)
    (tmp_path / "notification-fd").write_text("4\n")
    assert read_config(str(tmp_path), None).ready.target == 4


YAML_SCALARS = st.one_of(
    st.integers(),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.sampled_from(["TERM", "always", "022", "1M"]),
)
KEYS = st.sampled_from(sorted(schema.SERVICE_KEYS) + ["bogus", "ready", "log"])


@st.composite
def aliased_yaml(draw) -> str:
    """A document of nested lists and mappings whose anchors are reused as aliases."""
    anchors: list[str] = []
    lines = []
    for i in range(draw(st.integers(1, 6))):
        items = []
        for _ in range(draw(st.integers(1, 9))):
            if anchors and draw(st.booleans()):
                items.append("*" + draw(st.sampled_from(anchors)))
            else:
                items.append(
                    yaml.safe_dump(draw(YAML_SCALARS), default_flow_style=True)
                    .strip()
                    .removesuffix("...")
                    .strip()
                    or "null"
                )
        flow = (
            "[" + ", ".join(items) + "]"
            if draw(st.booleans())
            else ("{" + ", ".join(f"k{j}: {v}" for j, v in enumerate(items)) + "}")
        )
        anchors.append(f"a{i}")
        lines.append(f"{draw(KEYS)}{i if draw(st.booleans()) else ''}: &a{i} {flow}")
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(aliased_yaml())
def test_any_aliased_yaml_gives_a_bounded_message(tmp_path_factory, text: str) -> None:
    path = write(tmp_path_factory.mktemp("y"), text)
    try:
        yamlfile.load_service(path)
    except schema.ConfigError as exc:
        lines = str(exc).splitlines()
        assert 1 <= len(lines) <= schema.MAX_PROBLEMS + 1
        assert all(len(line) <= schema.MAX_LINE for line in lines)


# --- all the problems of one file at once (issue 18 item 10) --------------------------
def test_every_problem_is_reported_each_on_its_line() -> None:
    data = {
        "restart": "sometimes",
        "nice": 30,
        "bogus": 1,
        "log": {"mode": "fil"},
        "ready": {"tcp": "db:1"},
        "backoff": {"factor": 0.5},
    }
    with pytest.raises(schema.ConfigError) as info:
        schema.validate(data, "f")
    assert str(info.value).splitlines() == [
        "f: key 'restart' must be one of always, on-failure, never, not 'sometimes'",
        "f: key 'nice' must be an integer from -20 to 19, not 30",
        "f: unknown key 'bogus' (allowed: " + ", ".join(sorted(schema.SERVICE_KEYS)) + ")",
        "f: log: key 'mode' must be one of inherit, prefix, file, not 'fil'",
        "f: backoff: key 'factor' must be 1 or more",
        "f: ready: key 'tcp' host 'db' must be an IP address or localhost (pyinit does no "
        "DNS lookups)",
    ]


def test_problems_are_capped_with_a_count() -> None:
    data = {f"bogus{i}": 1 for i in range(25)}
    with pytest.raises(schema.ConfigError) as info:
        schema.validate(data, "f")
    lines = str(info.value).splitlines()
    assert len(lines) == 21 and lines[-1] == "and 5 more problems"
    assert len(info.value.problems) == 25


def test_pyinit_yaml_reports_every_problem(tmp_path) -> None:
    path = write(
        tmp_path, "wait_for_service: true\ndefaults:\n  nice: 30\n  restart: x\n", "pyinit.yaml"
    )
    with pytest.raises(schema.ConfigError) as info:
        yamlfile.load_global(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{path}: unknown key 'wait_for_service'")


# --- numeric ids -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        ("0", 0),
        ("65534", 65534),
        ("4294967294", 4294967294),
        ("nobody", None),
        ("a1", None),
    ],
)
def test_parse_id_accepts(text: str, expected: int | None) -> None:
    assert bounds.parse_id(text) == expected


@pytest.mark.parametrize(
    "text", ["٠", "²", "١٢", "4294967295", "4294967296", "99999999999", "9" * 5000]
)
def test_parse_id_refuses(text: str) -> None:
    with pytest.raises(bounds.InputError) as info:
        bounds.parse_id(text, "uid")
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


@pytest.mark.parametrize(
    "text, reason",
    [("٠", "digits"), ("4294967295", "range"), ("9" * 5000, "range"), ("a\x00", "name"),
     ("", "name"), ("x" * 300, "name")],
)
def test_parse_ident_says_which_rule(text: str, reason: str) -> None:
    with pytest.raises(bounds.IdentError) as info:
        bounds.parse_ident(text, "uid")
    assert info.value.reason == reason
    assert "\n" not in str(info.value) and len(str(info.value)) < 200
    assert bounds.parse_ident("4294967294", "uid") == 4294967294
    assert bounds.parse_ident("nobody", "uid") is None


def test_seconds_is_strict_and_bounded() -> None:
    assert bounds.seconds("86400", 86400) == 86400.0 and bounds.seconds(".5", 1) == 0.5
    for text, message in (
        ("soon", "not a number of seconds: 'soon'"),
        ("٣", "not a number of seconds: '٣'"),
        ("-1", "out of range: '-1' (0 to 86400 seconds)"),
        ("86400.5", "out of range: '86400.5' (0 to 86400 seconds)"),
        ("x" * 5000, "not a number of seconds: '" + "x" * 79 + "..."),
    ):
        with pytest.raises(bounds.InputError) as info:
            bounds.seconds(text, 86400)
        assert str(info.value) == message


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nobody:٠", "gid '٠' is written in digits other than 0-9"),
        ("٠", "uid '٠' is written in digits other than 0-9"),
        ("²", "uid '²' is written in digits other than 0-9"),
        ("4294967296", "uid must be a number from 0 to 4294967294, not '4294967296'"),
        ("4294967295", "uid must be a number from 0 to 4294967294, not '4294967295'"),
        ("nobody:99999999999", "gid must be a number from 0 to 4294967294, not '99999999999'"),
        ("a\x00b", "user or group 'a\\x00b' is not a valid name"),
        ("x" * 300, "user or group '" + "x" * 79),
    ],
)
def test_resolve_refuses_with_one_line(spec: str, message: str) -> None:
    with pytest.raises(privileges.PrivilegeError) as info:
        privileges.resolve(spec)
    assert str(info.value).startswith(message)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    "value, why",
    [
        ("٠", "a name or a number in digits 0-9, not '٠'"),
        (99999999999, "from 0 to 4294967294, not 99999999999"),
        (-1, "from 0 to 4294967294"),
        ("4294967295", "from 0 to 4294967294"),
        ("a\x00", "a name without control characters"),
    ],
)
def test_service_yaml_user_and_group_are_strict(value: object, why: str) -> None:
    for key in ("user", "group"):
        with pytest.raises(schema.ConfigError, match=why):
            schema.validate({key: value}, "f")
    with pytest.raises(schema.ConfigError, match=why):
        schema.validate({"log": {"user": value}}, "f")
    assert schema.validate({"user": 1000, "group": "0"}, "f").run_as.spec() == "1000:0"


def test_other_numbers_are_ascii_only() -> None:
    with pytest.raises(schema.ConfigError):
        schema.validate({"log": {"max_size": "٣٣٣٣٣k"}}, "f")
    with pytest.raises(schema.ConfigError):
        schema.validate({"stop_signal": "ſigterm"}, "f")  # 'ſ'.upper() == 'S'
    with pytest.raises(schema.ConfigError):
        schema.validate({"rlimits": {"nofile": 2**64}}, "f")
    for text in ("٣", "1_0", " 5", "nan", "1e3", "²"):
        with pytest.raises(UsageError):
            parse([], {"KILL_PROCESS_TIMEOUT": text})
    assert bounds.parse_seconds("0.5") == 0.5


@pytest.mark.parametrize(
    "argv",
    [
        ["scale", "web", "²"],
        ["scale", "web", "9" * 5000],
        ["logs", "-n", "٣", "web"],
        ["shutdown-container", "²"],
        ["-w", "٣", "up", "web"],
    ],
)
def test_svctl_numbers_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(svctl.Usage):
        svctl.parse_args(argv, {})


def test_svctl_shows_a_refusal_on_one_line_cut_once() -> None:
    assert svctl.refusal({"error": "a\nb\rc"}) == "pyinit refused: a b c"
    assert svctl.refusal({"error": "e" * 4000}) == "pyinit refused: " + "e" * 4000
    assert svctl.refusal({"error": ["x"]}) == "pyinit refused: no reason given"


def test_dumb_init_and_tini_numbers_are_usage_errors() -> None:
    for value in ("²:15", "15:²", "9" * 5000 + ":1"):
        with pytest.raises(dumb_init.Exit):
            dumb_init.parse(["--rewrite", value, "true"], {})
    for value in ("²", "9" * 5000):
        with pytest.raises(tini.Exit):
            tini.parse(["-e", value, "true"], {})
    for value in ("²", "-1", " 2", "100", "9" * 5000, "x" * 5000):
        with pytest.raises(tini.Exit) as info:
            tini.parse(["true"], {"TINI_VERBOSITY": value})
        assert len(info.value.err) < 200, value
    assert tini.parse(["true"], {"TINI_VERBOSITY": "3"}).verbosity == 3


def test_signal_names_are_ascii() -> None:
    from pyinit.core import signames

    for text in ("²", "١٥", "RTMIN+²", "9" * 5000, "ıNT", "ſigterm", "x" * 5000):
        with pytest.raises(ValueError) as info:
            signames.parse(text)
        assert len(str(info.value)) < 120, text  # 'ı'.upper() == 'I', 'ſ'.upper() == 'S'
    assert signames.parse("15") == 15


# --- files: bounded reads --------------------------------------------------------------
def test_read_fd_bounds(tmp_path) -> None:
    def read(path, limit: int) -> bytes:
        return bounds.read_fd(os.open(path, os.O_RDONLY | os.O_NONBLOCK), limit, "f")

    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read(path, 10) == b"x" * 10
    with pytest.raises(bounds.InputError, match="f: larger than 9 bytes"):
        read(path, 9)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(bounds.InputError, match="f: not a regular file"):
        read(fifo, 10)  # returns at once: opened non-blocking
    with pytest.raises(bounds.InputError, match="f: not a regular file"):
        read("/dev/zero", 10)


# --- the environment exec can take -------------------------------------------------------
def test_exec_env_drops_what_execve_refuses() -> None:
    big = "x" * (200 * 1024)
    out = bounds.exec_env({"CA_BUNDLE": big, "A": "1"})
    assert out.env == {"A": "1"}
    assert len(out.too_long) == 1 and out.too_long[0].startswith("not passing CA_BUNDLE")
    edge = "y" * (bounds.MAX_ARG_STRLEN - len("E=") - 1)  # exactly the limit with its NUL
    assert bounds.exec_env({"E": edge}).env == {"E": edge}
    assert bounds.exec_env({"E": edge + "y"}).env == {}
    many = {f"V{i}": "z" * 100_000 for i in range(30)}
    out = bounds.exec_env({**many, "SMALL": "1"}, budget=1_000_000, keep={"V0"})
    assert "SMALL" in out.env and "V0" in out.env
    assert sum(bounds.env_entry_size(k, v) for k, v in out.env.items()) <= 1_000_000
    assert len(out.too_much) == 31 - len(out.env)
    name = "N" * 100_000
    line = bounds.exec_env({name: "x" * 40_000}).too_long[0]
    assert len(line) < 300  # the variable's name is shown bounded too


def test_exec_env_really_execs(tmp_path) -> None:
    """What exec_env keeps, execve takes (no E2BIG)."""
    env = {f"V{i}": "z" * 120_000 for i in range(40)}  # ~4.8 MB: over ARG_MAX
    env["CA_BUNDLE"] = "c" * (200 * 1024)
    env["PATH"] = "/usr/bin:/bin"
    fits = bounds.exec_env(env)
    assert "CA_BUNDLE" not in fits.env
    r = subprocess.run(["/bin/true"], env=fits.env, timeout=30)
    assert r.returncode == 0
    with pytest.raises(OSError):
        subprocess.run(["/bin/true"], env=env, timeout=30)


def test_env_dir_skips_a_value_over_the_kernel_limit(tmp_path) -> None:
    from pyinit.runtime import environment

    (tmp_path / "CA_BUNDLE").write_bytes(b"-----BEGIN CERTIFICATE-----\n" * 8000)
    (tmp_path / "GOOD").write_text("yes")
    parsed = environment.read_dir(str(tmp_path))
    assert parsed.values == {"GOOD": "yes"}
    assert parsed.problems == [
        "skipping CA_BUNDLE: its value is larger than 128 KiB, more "
        "than the kernel passes to a program in one variable"
    ]


def test_env_file_is_bounded_and_filtered(tmp_path) -> None:
    from pyinit.runtime.launch import MAX_ENV_FILE, LaunchError, environment

    (tmp_path / "app.env").write_text("CA_BUNDLE=" + "c" * (200 * 1024) + "\nOK=1\n")
    config = schema.ServiceConfig(
        env_file="app.env", environment=(("X", "y" * (150 * 1024)), ("Y", "2"))
    )
    env = environment(config, str(tmp_path), None, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", "OK": "1", "Y": "2"}
    (tmp_path / "app.env").write_text("A=" + "a" * MAX_ENV_FILE)
    with pytest.raises(LaunchError, match="larger than 1024 KiB"):
        environment(schema.ServiceConfig(env_file="app.env"), str(tmp_path), None, {})


# --- datagrams and the control socket ----------------------------------------------------
class FakeLoop:
    def add_reader(self, fd: int, cb) -> None:
        pass

    def remove(self, fd: int) -> None:
        pass


def test_sd_notify_reads_a_bounded_batch_per_wakeup(tmp_path) -> None:
    """Senders that keep the socket full (the kernel queues only a few datagrams, but
    many senders refill it as fast as it is read) cannot hold the loop: one wake-up
    handles at most MAX_BATCH datagrams, the rest wait for the next turn."""
    seen: list[dict] = []
    sock = notify.NotifySocket(FakeLoop(), str(tmp_path / "n.sock"), lambda p, f: seen.append(f))
    real = sock.sock
    creds = notify._UCRED.pack(os.getpid(), 0, 0)

    class Endless:
        def recvmsg(self, size: int, space: int):
            return b"STATUS=x", [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, creds)], 0, None

    try:
        sock.sock = Endless()  # type: ignore[assignment]
        sock.on_readable()
        assert len(seen) == notify.MAX_BATCH
    finally:
        sock.sock = real
        sock.close()


def test_sd_notify_fields_are_bounded() -> None:
    data = "\n".join(f"K{i}=v" for i in range(1000)).encode()
    assert len(notify.parse(data)) == notify.MAX_FIELDS
    assert notify.parse("ſ=1\nREADY=1".encode()) == {"READY": "1"}


@pytest.mark.parametrize(
    "line",
    [
        b'{"v": true, "cmd": "ping"}',
        b'{"v": 1.0, "cmd": "ping"}',
        b'{"v": "' + b"x" * 60000 + b'", "cmd": "ping"}',
    ],
)
def test_control_version_is_strict_and_echoed_bounded(line: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(line)
    assert len(str(info.value)) < 100


def test_status_record_fields_are_capped() -> None:
    rec = capped({"error": "e" * 10**6, "waiting_for": ["w" * 10**5] * 5000, "pid": 3})
    assert len(rec["error"]) == MAX_FIELD and rec["error"].endswith("...")
    assert len(rec["waiting_for"]) == 1000 and len(rec["waiting_for"][0]) == MAX_FIELD
    assert rec["pid"] == 3


def test_control_request_names_are_bounded() -> None:
    line = json.dumps({"v": 1, "cmd": "status", "services": ["web"] * 1001}).encode()
    with pytest.raises(ProtocolError, match="at most 1000 names"):
        parse_request(line)
    assert parse_request(line.replace(b'"web", ', b"", 1))["services"] == ["web"] * 1000
