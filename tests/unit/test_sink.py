"""output.Sink: service lines to a pipe nobody may be reading, without ever blocking."""

from __future__ import annotations

import array
import fcntl
import os
import select
import termios

import pytest

from pyinit.output.sinks import Sink
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop

F_SETPIPE_SZ = 1031
LINE = b"a" * 98 + b"\n"  # 99 bytes


@pytest.fixture(autouse=True)
def plain_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyinit's messages as plain blocking writes to fd 2 (captured by capfd)."""
    monkeypatch.setattr(log, "_write", None)
    monkeypatch.setattr(log, "verbosity", log.INFO)
    monkeypatch.setattr(log, "prog", "pyinit")
    monkeypatch.setattr(log, "json_lines", False)


@pytest.fixture
def pipe():
    r, w = os.pipe()
    fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
    os.set_blocking(r, False)
    fds = [r, w]
    yield fds
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def make_sink():
    made: list[Sink] = []

    def make(loop: EventLoop, fd: int, limit: int) -> Sink:
        sink = Sink(loop, fd, limit)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()
        if sink.poll_fd is not None:
            os.close(sink.poll_fd)


def in_pipe(fd: int) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


def read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return out
        if not data:
            return out
        out += data


def test_stalled_reader_fills_then_drops_per_source_with_one_warning(pipe, make_sink,
                                                                     capfd) -> None:
    r, w = pipe
    loop = EventLoop()
    sink = make_sink(loop, w, 1000)
    assert sink.poll_fd is not None
    for i in range(200):  # 19800 bytes into a 4096 byte pipe
        sink.put("a", b"%05d" % i + LINE[5:])
    assert sink.dropped["a"] > 0 and sink.pending["a"] <= 1000
    assert not sink.empty() and sink.waiting
    held = in_pipe(r)
    assert 4096 - len(LINE) < held <= 4096
    assert sink.dropped["a"] + sink.pending["a"] + held == 200 * len(LINE)
    sink.put("b", b"b-line\n")  # another service: not held up by a's dropping
    assert sink.dropped.get("b", 0) == 0 and sink.pending["b"] == 7
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("pyinit: warning: [a] output is not being read fast enough")

    got = read_all(r)
    assert len(got) == held
    assert loop.run_until(sink.empty, 5), "the queue never emptied"
    got += read_all(r)
    assert not sink.waiting
    assert sink.pending == {"a": 0, "b": 0}
    lines = got.split(b"\n")
    assert lines[-1] == b"" and lines[-2] == b"b-line"
    numbers = [int(line[:5]) for line in lines[:-2]]
    assert numbers == list(range(len(numbers))), "lines out of order, cut or mixed up"
    assert all(line[5:] == LINE[5:-1] for line in lines[:-2])
    assert len(got) - 7 + sink.dropped["a"] == 200 * len(LINE)
    err = capfd.readouterr().err.splitlines()
    assert err == [f"pyinit: warning: [a] output flowing again; {sink.dropped['a']} bytes "
                   "dropped so far"]

    before = sink.dropped["a"]
    sink.put("a", b"again\n")  # accepted and written at once
    assert read_all(r) == b"again\n" and sink.dropped["a"] == before and sink.empty()
    assert capfd.readouterr().err == ""


def test_dropping_again_warns_again(pipe, make_sink, capfd) -> None:
    r, w = pipe
    loop = EventLoop()
    sink = make_sink(loop, w, 1000)
    for _round in range(2):
        for _ in range(60):
            sink.put("a", LINE)
        read_all(r)
        assert loop.run_until(sink.empty, 5)
        read_all(r)
    err = capfd.readouterr().err
    assert err.count("not being read fast enough") == 2
    assert err.count("flowing again") == 2


def test_reader_gone_epipe_discards_and_counts(pipe, make_sink, capfd) -> None:
    r, w = pipe
    os.close(r)
    pipe.remove(r)
    loop = EventLoop()
    sink = make_sink(loop, w, 1000)
    sink.put("a", b"x\n")
    sink.put("b", b"yyy\n")
    sink.put("a", b"zz\n")
    assert sink.dropped == {"a": 5, "b": 4}
    assert sink.broken and sink.empty() and not sink.waiting
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"pyinit: warning: service output to fd {w} lost: cannot write:")


def test_epipe_with_lines_queued_counts_them(pipe, make_sink, capfd) -> None:
    r, w = pipe
    loop = EventLoop()
    sink = make_sink(loop, w, 100_000)
    for _ in range(100):
        sink.put("a", LINE)
    queued = sink.pending["a"]
    assert queued == 100 * len(LINE) - in_pipe(r)
    os.close(r)
    pipe.remove(r)
    assert loop.run_until(lambda: sink.broken is not None, 5)
    assert sink.dropped["a"] == queued and sink.empty() and not sink.waiting
    assert capfd.readouterr().err.count("lost") == 1


def test_full_pipe_never_blocks_the_caller(pipe, make_sink) -> None:
    """A million bytes at a pipe nobody reads: put() returns at once every time."""
    r, w = pipe
    sink = make_sink(EventLoop(), w, 10_000)
    for _ in range(10_000):
        sink.put("a", LINE)
    assert select.select([], [w], [], 0)[1] == []  # the pipe is really full
    assert sink.pending["a"] <= 10_000
    assert sink.dropped["a"] == 10_000 * len(LINE) - in_pipe(r) - sink.pending["a"]


def test_regular_file_is_written_directly(tmp_path, make_sink) -> None:
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        sink = make_sink(EventLoop(), fd, 1000)
        assert sink.poll_fd is None
        for _ in range(100):
            sink.put("a", LINE)
        assert sink.empty() and sink.dropped == {}
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == LINE * 100


def test_block_over_the_limit_is_not_dropped_when_nothing_waits(tmp_path, make_sink) -> None:
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        sink = make_sink(EventLoop(), fd, 10)
        assert sink.poll_fd is None
        sink.put("a", b"longer than the limit\n")  # the limit is about bytes waiting
        assert sink.empty() and sink.dropped == {}
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"longer than the limit\n"
