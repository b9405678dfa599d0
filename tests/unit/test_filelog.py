"""output/logdir.py's FileLog: a service's lines in an svlogd-style directory."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from pyinit.core import tai64
from pyinit.output import logdir as filelog
from pyinit.output.logdir import FileLog
from pyinit.runtime import log

DONE = re.compile(r"@[0-9a-f]{24}\.s")


@pytest.fixture(autouse=True)
def plain_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "_write", None)
    monkeypatch.setattr(log, "verbosity", log.INFO)
    monkeypatch.setattr(log, "prog", "pyinit")
    monkeypatch.setattr(log, "json_lines", False)


@pytest.fixture
def flog(tmp_path: Path):
    logs: list[FileLog] = []

    def make(max_size: int = 1_000_000, max_files: int = 10, sub: str = "web") -> FileLog:
        f = FileLog(str(tmp_path / sub), "web", max_size, max_files)
        logs.append(f)
        return f

    yield make
    for f in logs:
        f.close()


def finished(d: Path) -> list[str]:
    names = sorted(n for n in os.listdir(d) if n != "current")
    assert all(DONE.fullmatch(n) for n in names), names
    return names


def line(i: int) -> bytes:
    return b"line %05d\n" % i  # 11 bytes


def test_tai64n_labels_sort_by_time() -> None:
    assert tai64.text(0) == "@400000000000000a00000000"  # svlogd: 2^62 + 10
    assert tai64.text(1_500_000_000) < tai64.text(2_250_000_000) < tai64.text(1_700_000_000 * 10**9)
    assert DONE.fullmatch(tai64.text(1_700_000_000_123_000_000) + ".s")


def test_write_creates_dir_and_appends(flog, tmp_path: Path) -> None:
    f = flog()
    f.write(b"one\n")
    f.write(b"two\n")
    assert (tmp_path / "web" / "current").read_bytes() == b"one\ntwo\n"
    f.close()
    f2 = flog()
    f2.write(b"three\n")  # a new FileLog appends and knows the size
    assert (tmp_path / "web" / "current").read_bytes() == b"one\ntwo\nthree\n"
    assert f2.size == 14


def test_rotation_by_size_keeps_max_files(flog, tmp_path: Path) -> None:
    f = flog(max_size=100, max_files=3)
    for i in range(100):
        f.write(line(i))
    d = tmp_path / "web"
    done = finished(d)
    assert len(done) == 3
    for name in done:
        assert 0 < (d / name).stat().st_size <= 100
    assert (d / "current").stat().st_size <= 100
    kept = b"".join((d / n).read_bytes() for n in done) + (d / "current").read_bytes()
    # nothing lost or reordered in what is kept: the newest lines, contiguous
    assert kept == b"".join(line(i) for i in range(100 - len(kept) // 11, 100))
    assert f.dropped == 0


def test_a_block_larger_than_max_size_is_still_written(flog, tmp_path: Path) -> None:
    f = flog(max_size=20, max_files=2)
    f.write(b"x" * 50 + b"\n")
    f.write(b"y\n")
    d = tmp_path / "web"
    assert (d / "current").read_bytes() == b"y\n"
    assert [(d / n).read_bytes() for n in finished(d)] == [b"x" * 50 + b"\n"]


def test_rotate_starts_a_new_current(flog, tmp_path: Path) -> None:
    f = flog()
    f.rotate()  # nothing written yet: no empty finished file
    assert finished(tmp_path / "web") == []
    f.write(b"before\n")
    f.rotate()
    f.write(b"after\n")
    d = tmp_path / "web"
    done = finished(d)
    assert [(d / n).read_bytes() for n in done] == [b"before\n"]
    assert (d / "current").read_bytes() == b"after\n"
    f.rotate()
    f.rotate()  # current is empty now: nothing to finish
    assert len(finished(d)) == 2


def test_tail(flog) -> None:
    f = flog()
    assert f.tail(5) == []  # no current yet
    for i in range(20):
        f.write(line(i))
    assert f.tail(3) == [b"line 00017", b"line 00018", b"line 00019"]
    assert f.tail(0) == []
    assert len(f.tail(100)) == 20
    # reading only the last 30 bytes: the cut first line is left out
    assert f.tail(100, limit=30) == [b"line 00018", b"line 00019"]


def test_disk_full_drops_counts_warns_once_and_resumes(flog, tmp_path: Path, capfd,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    f = flog()
    f.write(b"first\n")
    real_write = os.write
    full = True

    def write(fd: int, data) -> int:
        if full and fd == f.fd:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(filelog.os, "write", write)
    capfd.readouterr()
    f.write(b"lost 1\n")
    f.write(b"lost 22\n")
    assert f.dropped == 15
    err = capfd.readouterr().err.splitlines()
    assert err == [f"pyinit: warning: [web] cannot write {tmp_path / 'web'}: No space left on "
                   "device; dropping lines until it works again"]
    full = False
    f.write(b"back\n")
    f.write(b"more\n")
    assert (tmp_path / "web" / "current").read_bytes() == b"first\nback\nmore\n"
    assert f.dropped == 15 and f.failing is None
    err = capfd.readouterr().err.splitlines()
    assert err == [f"pyinit: info: [web] writing {tmp_path / 'web'} again (15 bytes dropped "
                   "so far)"]


def test_directory_removed_is_recreated(flog, tmp_path: Path, capfd) -> None:
    f = flog()
    f.write(b"a\n")
    d = tmp_path / "web"
    (d / "current").unlink()
    d.rmdir()
    f.write(b"b\n")  # the open fd still works: written to the unlinked file
    f.close()
    f.write(b"c\n")
    assert (d / "current").read_bytes() == b"c\n"
    assert f.dropped == 0 and capfd.readouterr().err == ""


def test_unwritable_place_is_counted_and_retried(flog, tmp_path: Path, capfd) -> None:
    (tmp_path / "blocker").write_text("a file where the directory should be")
    f = FileLog(str(tmp_path / "blocker" / "web"), "web")
    f.write(b"a\n")
    f.write(b"bb\n")
    assert f.dropped == 5 and f.fd is None
    assert capfd.readouterr().err.count("cannot write") == 1
    (tmp_path / "blocker").unlink()
    (tmp_path / "blocker").mkdir()
    f.write(b"ccc\n")
    f.close()
    assert (tmp_path / "blocker" / "web" / "current").read_bytes() == b"ccc\n"


@pytest.mark.timeout(10)
def test_fifo_at_current_does_not_block(flog, tmp_path: Path, capfd) -> None:
    d = tmp_path / "web"
    d.mkdir()
    os.mkfifo(d / "current")
    f = flog()
    f.write(b"nobody reads this\n")  # open(O_NONBLOCK) of a FIFO without reader: ENXIO
    assert f.dropped == 18 and f.fd is None
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1 and "cannot write" in err[0], err
    assert f.tail(5) == []  # not a regular file: nothing to read, and no hang


def test_free_space_is_asked_of_the_held_dir_not_its_path(flog, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """After "disk full", free space is read from the directory pyinit holds open
    (fstatvfs), not from whatever its path names now (the dir's owner may have
    moved it and put a link to another file system there)."""
    f = flog()
    f.write(b"first\n")
    asked: list[object] = []

    def fstatvfs(fd: int) -> os.statvfs_result:
        asked.append(fd)
        return os.statvfs_result((4096, 4096, 100, 0, 0, 10, 0, 0, 0, 255))  # none free

    monkeypatch.setattr(filelog.os, "fstatvfs", fstatvfs)
    monkeypatch.setattr(filelog.os, "statvfs", lambda path: asked.append(path))
    f.full = True
    assert not f.has_room()
    assert asked == [f.dir_fd]
    f.write(b"dropped\n")
    assert f.dropped == 8


def test_short_write_at_disk_full_leaves_no_glued_line(flog, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    f = flog()
    f.write(b"first\n")
    real_write = os.write
    room = [3]  # the disk takes 3 more bytes, then is full

    def write(fd: int, data) -> int:
        if fd != f.fd or room[0] is None:
            return real_write(fd, data)
        if room[0] == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[: room[0]]))
        room[0] -= n
        return n

    monkeypatch.setattr(filelog.os, "write", write)
    f.write(b"lost line\n")
    assert f.dropped > 0
    room[0] = None  # space again
    f.write(b"back\n")
    lines = (tmp_path / "web" / "current").read_bytes().split(b"\n")
    assert lines[0] == b"first" and b"back" in lines, lines


def test_prune_reads_a_bounded_number_of_entries_of_a_crowded_dir(
    flog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    """A service user who owns the log dir can fill it with names: each rotation reads
    at most MAX_SCAN of them (not the whole dir), warns once, and still prunes the
    files this log finished itself down to max_files."""
    monkeypatch.setattr(filelog, "MAX_SCAN", 50, raising=False)
    d = tmp_path / "web"
    d.mkdir()
    for i in range(2000):
        (d / f"junk{i:05d}").write_bytes(b"")
    read = [0]
    real_listdir, real_scandir = os.listdir, os.scandir

    def counting_listdir(*args):
        names = real_listdir(*args)
        read[0] += len(names)
        return names

    class CountingScandir:
        def __init__(self, *args) -> None:
            self.it = real_scandir(*args)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.it.close()

        def __iter__(self):
            return self

        def __next__(self):
            entry = next(self.it)
            read[0] += 1
            return entry

    monkeypatch.setattr(os, "listdir", counting_listdir)
    monkeypatch.setattr(os, "scandir", CountingScandir)
    f = flog(max_size=100, max_files=3)
    for i in range(60):
        f.write(line(i))
    monkeypatch.setattr(os, "listdir", real_listdir)
    monkeypatch.setattr(os, "scandir", real_scandir)
    rotations = 60 * 11 // 100
    assert rotations >= 5
    assert read[0] <= rotations * 51, f"{read[0]} directory entries read in {rotations} rotations"
    mine = [n for n in os.listdir(d) if DONE.fullmatch(n)]
    assert len(mine) == 3, mine
    err = capfd.readouterr().err
    assert err.count("holds more than 50 names") == 1, err


def test_prune_ignores_names_that_are_not_finished_files(flog, tmp_path: Path) -> None:
    d = tmp_path / "web"
    d.mkdir()
    others = ["@notes.s", "@400000006553f10a0000000.s", "@0000000000000000000000000.s", "keep"]
    for name in others:
        (d / name).write_text("the user's")
    f = flog(max_size=100, max_files=1)
    for i in range(40):
        f.write(line(i))
    assert sorted(n for n in os.listdir(d) if n in others) == sorted(others)
    assert len([n for n in os.listdir(d) if DONE.fullmatch(n)]) == 1
