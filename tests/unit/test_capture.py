"""capture.Capture with a real event loop: pipes in, lines out to sinks or a file."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pyinit.output.capture import Capture, Settings
from pyinit.output.sinks import Sink
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop


@pytest.fixture(autouse=True)
def plain_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "_write", None)
    monkeypatch.setattr(log, "verbosity", log.INFO)
    monkeypatch.setattr(log, "json_lines", False)


class Rig:
    """A loop, two sinks writing into pipes the test reads, and the captures made."""

    def __init__(self) -> None:
        self.loop = EventLoop()
        self.fds: list[int] = []
        self.readers: dict[str, int] = {}
        self.sinks: dict[str, Sink | None] = {}
        self.got = {"stdout": b"", "stderr": b""}
        self.captures: list[Capture] = []
        for stream in ("stdout", "stderr"):
            r, w = os.pipe()
            os.set_blocking(r, False)
            self.fds += [r, w]
            self.readers[stream] = r
            self.sinks[stream] = Sink(self.loop, w)

    def capture(self, name: str, settings: Settings) -> Capture:
        cap = Capture(self.loop, name, settings, self.sinks)
        self.captures.append(cap)
        return cap

    def read(self) -> dict[str, bytes]:
        for stream, r in self.readers.items():
            try:
                self.got[stream] += os.read(r, 1 << 20)
            except BlockingIOError:
                pass
        return self.got

    def until(self, cond, timeout: float = 5.0) -> None:
        def done() -> bool:
            self.read()
            return bool(cond())
        assert self.loop.run_until(done, timeout) or done(), f"timed out: {self.got}"

    def close(self) -> None:
        for cap in self.captures:
            cap.close()
        for sink in self.sinks.values():
            assert sink is not None
            sink.close()
            if sink.poll_fd is not None:
                os.close(sink.poll_fd)
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def test_prefix_mode_lines_come_out_prefixed_per_stream(rig: Rig) -> None:
    cap = rig.capture("web", Settings("prefix"))
    os.write(cap.fd("stdout"), b"hello\nwor")
    os.write(cap.fd("stderr"), b"oops\n")
    rig.until(lambda: rig.got["stdout"] and rig.got["stderr"])
    os.write(cap.fd("stdout"), b"ld\n")
    os.write(cap.fd("stderr"), b"again\n")
    # the later lines out prove the earlier bytes were all handled: nothing else between
    rig.until(lambda: rig.got["stdout"].count(b"\n") >= 2 and rig.got["stderr"].count(b"\n") >= 2)
    assert rig.got == {"stdout": b"web | hello\nweb | world\n",
                       "stderr": b"web | oops\nweb | again\n"}
    assert cap.tail(10) == [b"hello", b"oops", b"world", b"again"]
    assert cap.dropped() == 0


def test_drain_flushes_a_partial_line(rig: Rig) -> None:
    cap = rig.capture("web", Settings("prefix"))
    os.write(cap.fd("stdout"), b"complete\npartial")
    os.write(cap.fd("stderr"), b"\xff no newline")
    cap.drain()  # without the loop having run: reads the pipes itself
    rig.until(lambda: rig.got["stderr"])
    assert rig.got == {"stdout": b"web | complete\nweb | partial\n",
                       "stderr": b"web | \xff no newline\n"}


def test_two_services_share_the_sinks(rig: Rig) -> None:
    a = rig.capture("a", Settings("prefix"))
    b = rig.capture("b", Settings("prefix"))
    for i in range(50):
        os.write(a.fd("stdout"), b"a-%d\n" % i)
        os.write(b.fd("stdout"), b"b-%d\n" % i)
    rig.until(lambda: rig.got["stdout"].count(b"\n") == 100)
    lines = rig.got["stdout"].decode().splitlines()
    assert all(re.fullmatch(r"(a|b) \| \1-\d+", x) for x in lines), lines
    for name in "ab":
        assert [x for x in lines if x.startswith(name)] == [f"{name} | {name}-{i}"
                                                             for i in range(50)]


def test_json_format(rig: Rig) -> None:
    cap = rig.capture("api", Settings("prefix", fmt="json"))
    os.write(cap.fd("stderr"), b"bad \xfe byte\n")
    rig.until(lambda: rig.got["stderr"].endswith(b"\n"))
    rec = json.loads(rig.got["stderr"])
    assert rec["service"] == "api" and rec["stream"] == "stderr"
    assert rec["line"].encode("utf-8", "surrogateescape") == b"bad \xfe byte"


def test_timestamps(rig: Rig) -> None:
    cap = rig.capture("api", Settings("prefix", timestamps=True))
    os.write(cap.fd("stdout"), b"x\n")
    rig.until(lambda: rig.got["stdout"].endswith(b"\n"))
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z api \| x\n", rig.got["stdout"])


def test_followers_get_every_line(rig: Rig) -> None:
    cap = rig.capture("web", Settings("prefix"))
    seen: list[bytes] = []
    cap.followers.append(seen.append)
    os.write(cap.fd("stdout"), b"1\n2\n")
    os.write(cap.fd("stderr"), b"3\n")
    rig.until(lambda: len(seen) == 3)
    assert sorted(seen) == [b"1", b"2", b"3"]


def test_file_mode_writes_the_directory_not_the_sinks(rig: Rig, tmp_path: Path) -> None:
    d = tmp_path / "logs"
    cap = rig.capture("web", Settings("file", directory=str(d), max_size=4096, max_files=2))
    os.write(cap.fd("stdout"), b"out\n")
    os.write(cap.fd("stderr"), b"err\n")
    os.write(cap.fd("stdout"), b"tail")
    wait = d / "current"
    rig.until(lambda: wait.exists() and wait.read_bytes().count(b"\n") == 2)
    cap.drain()
    assert sorted(wait.read_bytes().splitlines()) == [b"err", b"out", b"tail"]
    assert rig.read() == {"stdout": b"", "stderr": b""}
    assert cap.tail(2)[-1] == b"tail"
    cap.rotate()
    assert wait.read_bytes() == b""
    assert len([n for n in os.listdir(d) if n.endswith(".s")]) == 1


def test_file_mode_that_cannot_open_falls_back_to_prefix_once(
    rig: Rig, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A read-only (or not pyinit's) log directory: one warning for the service, and its
    lines come out in prefix mode instead of being lost; SIGHUP tries the file again."""
    blocker = tmp_path / "ro"
    blocker.write_text("")
    d = blocker / "web"
    cap = rig.capture("web", Settings("file", directory=str(d)))
    assert cap.mode == "prefix"
    os.write(cap.fd("stdout"), b"still here\n")
    rig.until(lambda: rig.got["stdout"])
    assert rig.got["stdout"] == b"web | still here\n"
    cap.rotate()  # SIGHUP: still failing, nothing more said
    assert capfd.readouterr().err == (
        f"pyinit: warning: [web] cannot write its log file in {d} (Not a directory): "
        "prefix mode instead\n")
    blocker.unlink()
    cap.rotate()  # SIGHUP: the directory can be made now
    assert cap.mode == "file"
    assert capfd.readouterr().err == f"pyinit: info: [web] writing its log to {d} again\n"
    os.write(cap.fd("stdout"), b"to the file\n")
    rig.until(lambda: (d / "current").read_bytes() == b"to the file\n")


def test_close_releases_the_pipes(rig: Rig) -> None:
    cap = rig.capture("web", Settings("prefix"))
    fds = [cap.fd("stdout"), cap.fd("stderr")]
    rig.captures.remove(cap)
    cap.close()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
