"""pyinit's messages: one line each, with level and optional service tag."""

from __future__ import annotations

import os

import pytest

from pyinit.runtime import log


@pytest.fixture(autouse=True)
def _restore_log_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "verbosity", log.INFO)
    monkeypatch.setattr(log, "prog", "pyinit")


@pytest.mark.parametrize(
    ("level", "word"),
    [(log.ERROR, "error"), (log.WARNING, "warning"), (log.INFO, "info"), (log.DEBUG, "debug")],
)
def test_format_line_levels(level: int, word: str) -> None:
    assert log.format_line(level, "hello") == f"pyinit: {word}: hello\n"


def test_format_line_with_service_tag() -> None:
    assert log.format_line(log.INFO, "started", "web") == "pyinit: info: [web] started\n"
    assert log.format_line(log.INFO, "started", "") == "pyinit: info: started\n"


@pytest.mark.parametrize(
    "text",
    ["two\nlines", "trailing\n", "\nleading", "crlf\r\nline", "a\n\n\nb", "x\rz", "u\u2028v"],
)
def test_format_line_is_always_one_line(text: str) -> None:
    line = log.format_line(log.WARNING, text, "svc")
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert "\r" not in line and "\u2028" not in line
    assert line.startswith("pyinit: warning: [svc] ")


def test_format_line_keeps_words_of_a_multi_line_message() -> None:
    assert log.format_line(log.ERROR, "first\nsecond") == "pyinit: error: first second\n"


def test_format_line_unknown_level_is_debug_like() -> None:
    assert log.format_line(log.DEBUG + 1, "x") == "pyinit: debug: x\n"


def test_configure_sets_program_name_and_clamps_level() -> None:
    log.configure(log.DEBUG, "svctl")
    assert log.format_line(log.INFO, "x") == "svctl: info: x\n"
    log.configure(-5)
    assert log.verbosity == log.ERROR
    log.configure(99)
    assert log.verbosity == log.DEBUG + 2


def test_emit_respects_verbosity(capfd: pytest.CaptureFixture[str]) -> None:
    log.configure(log.WARNING)
    log.error("e")
    log.warning("w")
    log.info("i")
    log.debug("d")
    assert capfd.readouterr().err == "pyinit: error: e\npyinit: warning: w\n"
    log.configure(log.DEBUG)
    log.debug("d", "svc")
    assert capfd.readouterr().err == "pyinit: debug: [svc] d\n"
    log.configure(log.ERROR)  # --quiet
    log.warning("hidden")
    log.error("shown")
    assert capfd.readouterr().err == "pyinit: error: shown\n"


def test_emit_survives_a_closed_stderr(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Messages to a closed stderr are dropped (and counted), without an exception; once
    stderr is back, messages go out again, and none of the lost ones."""
    monkeypatch.setattr(log, "dropped", 0)
    capfd.readouterr()
    saved = os.dup(2)
    try:
        os.close(2)
        log.error("nowhere to go")  # must not raise
        log.bug("nowhere")
        assert log.dropped >= 2  # the error and the bug line at least
        with pytest.raises(OSError):
            os.fstat(2)  # still closed: the logger opened nothing in its place
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    log.error("back")
    assert capfd.readouterr().err == "pyinit: error: back\n"


def test_emit_encodes_unencodable_text(capfd: pytest.CaptureFixture[str]) -> None:
    log.warning("bad \udcff surrogate")
    err = capfd.readouterr().err
    assert err.startswith("pyinit: warning: bad ") and err.endswith("surrogate\n")
    assert err.count("\n") == 1


def test_bug_logs_the_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    try:
        raise KeyError("lost")
    except KeyError:
        log.bug("the widget handler")
    err = capfd.readouterr().err
    first, rest = err.split("\n", 1)
    assert first == "pyinit: error: internal error in the widget handler (pyinit keeps running):"
    assert rest.startswith("Traceback (most recent call last):")
    assert "KeyError: 'lost'" in rest


NONBLOCKING_PROBE = r"""
import fcntl, os, time
from pyinit.runtime import log
r, w = os.pipe()
os.dup2(w, 2)  # stderr is a pipe nobody reads yet
filler = os.open("/proc/self/fd/2", os.O_WRONLY | os.O_NONBLOCK)
try:
    while True:
        os.write(filler, b"x" * 4096)
except BlockingIOError:
    pass
log.configure(log.INFO, nonblocking=True)
assert fcntl.fcntl(2, fcntl.F_GETFL) & os.O_NONBLOCK == 0  # children's fd 2 untouched
t = time.monotonic()
for i in range(200):
    log.info(f"message {i}")
print("took", time.monotonic() - t, "dropped", log.dropped)
fcntl.fcntl(r, fcntl.F_SETFL, os.O_NONBLOCK)
while True:
    try:
        if not os.read(r, 65536):
            break
    except BlockingIOError:
        break
log.info("after the reader caught up")
print(os.read(r, 65536).decode().strip())
"""


def test_a_full_stderr_pipe_never_blocks_and_drops_are_reported() -> None:
    from helpers import run_python

    out = run_python(NONBLOCKING_PROBE, timeout=20).stdout.splitlines()
    took, dropped = float(out[0].split()[1]), int(out[0].split()[3])
    assert dropped == 200 and took < 5  # a blocking write would hang until the timeout
    assert out[1:] == [
        "pyinit: warning: 200 messages dropped: stderr was full",
        "pyinit: info: after the reader caught up",
    ]


def test_a_regular_file_stderr_is_written_directly(tmp_path) -> None:
    from helpers import run_python

    target = tmp_path / "err.txt"
    code = (f"import os\nfd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)\n"
            "os.dup2(fd, 2)\nfrom pyinit.runtime import log\n"
            "log.configure(log.INFO, nonblocking=True)\nassert log._write is None\n"
            "log.info('one'); log.info('two')\n")
    run_python(code)
    assert target.read_text() == "pyinit: info: one\npyinit: info: two\n"


def test_json_format_gives_one_json_object_per_message() -> None:
    import json

    from pyinit.runtime import log

    try:
        log.configure(log.INFO, fmt="json")
        line = log.format_line(log.WARNING, "two\nlines", "web")
        plain = log.format_line(log.INFO, "boot")
    finally:
        log.configure(log.INFO)
    assert line.endswith("\n") and line.count("\n") == 1
    obj = json.loads(line)
    assert {k: obj[k] for k in ("service", "stream", "level", "line", "from")} == {
        "service": "web", "stream": "stderr", "level": "warning", "line": "two lines",
        "from": "pyinit"}
    assert json.loads(plain)["service"] == "pyinit"
    assert log.format_line(log.INFO, "boot") == "pyinit: info: boot\n"


def test_a_pipe_pyinit_may_not_reopen_is_written_without_blocking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Non-root pyinit, stdout the runtime's pipe (another uid's: /proc/self/fd/1 cannot
    be reopened): a full pipe raises BlockingIOError instead of blocking PID 1."""
    real_open = os.open

    def refuse(path, *args, **kw):
        if str(path).startswith("/proc/self/fd/"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kw)

    monkeypatch.setattr(os, "open", refuse)
    r, w = os.pipe()
    try:
        write, poll_fd = log.nonblocking_writer(w)
        assert poll_fd is not None and poll_fd != w
        total = 0
        with pytest.raises(BlockingIOError):
            for _ in range(10_000):  # a pipe holds 64 KiB: this fills it
                n = write(b"x" * 10_000)
                assert 0 < n <= log.PIPE_BUF
                total += n
        assert total >= 4096
        assert os.get_blocking(w)  # the shared description was left alone
        os.read(r, 65536)
        assert write(b"again\n") == 6
        os.close(poll_fd)
    finally:
        os.close(r)
        os.close(w)


def test_once_says_a_line_once_per_service(monkeypatch, capfd) -> None:
    monkeypatch.setattr(log, "said", set())
    monkeypatch.setattr(log, "MAX_SAID", 3)
    for _ in range(2):
        log.once(log.WARNING, "x too long")
        log.once(log.WARNING, "x too long", "web")
    log.once(log.WARNING, "y", "web")
    log.once(log.WARNING, "z", "web")  # past MAX_SAID: nothing more is remembered or said
    assert capfd.readouterr().err.splitlines() == [
        "pyinit: warning: x too long",
        "pyinit: warning: [web] x too long",
        "pyinit: warning: [web] y",
    ]


def test_once_with_a_key_says_one_of_several_texts_once(monkeypatch, capfd) -> None:
    monkeypatch.setattr(log, "said", set())
    for path in ("/a", "/b"):
        log.once(log.WARNING, f"cannot create {path}: keeping them elsewhere", key="fallback")
    log.once(log.WARNING, "cannot create /a: keeping them elsewhere")  # its own key: the text
    log.once(log.WARNING, "again", "web", key="fallback")  # the key is per service
    assert capfd.readouterr().err.splitlines() == [
        "pyinit: warning: cannot create /a: keeping them elsewhere",
        "pyinit: warning: cannot create /a: keeping them elsewhere",
        "pyinit: warning: [web] again",
    ]
