"""pyinit.linux.safefs: which directories others may write, and walking and opening in
them without following a link another user could have put there."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from pyinit.linux import safefs

ME = (0, 1000)


def st(uid: int, mode: int) -> os.stat_result:
    return SimpleNamespace(st_uid=uid, st_mode=mode)  # type: ignore[return-value]


@pytest.mark.parametrize(
    "uid, mode, expect",
    [
        (0, 0o40755, False),
        (1000, 0o40700, False),
        (0, 0o40775, True),  # group-writable
        (0, 0o40757, True),
        (0, 0o41777, True),  # /tmp
        (65534, 0o40755, True),  # another user's
    ],
)
def test_others_may_write(uid: int, mode: int, expect: bool) -> None:
    assert safefs.others_may_write(st(uid, mode), ME) is expect


@pytest.mark.parametrize(
    "dir_uid, dir_mode, entry_uid, expect",
    [
        (0, 0o40755, 65534, True),  # only root can replace any entry
        (0, 0o41777, 0, True),  # /tmp, root's entry: sticky keeps others from replacing it
        (0, 0o41777, 65534, False),  # /tmp, another user's entry
        (0, 0o40777, 0, False),  # no sticky bit
        (65534, 0o41777, 0, False),  # sticky, but the dir's owner may replace anything
        (65534, 0o40755, 0, False),
    ],
)
def test_stable(dir_uid: int, dir_mode: int, entry_uid: int, expect: bool) -> None:
    assert safefs.stable(st(dir_uid, dir_mode), st(entry_uid, 0o120777), ME) is expect


def ino(fd: int) -> int:
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def test_open_dir_follows_trusted_links_and_creates(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real")
    (tmp_path / "abs").symlink_to(tmp_path / "real")
    assert ino(safefs.open_dir(str(tmp_path / "link"))) == (tmp_path / "real").stat().st_ino
    assert ino(safefs.open_dir(str(tmp_path / "abs/../real"))) == (tmp_path / "real").stat().st_ino
    fd = safefs.open_dir(str(tmp_path / "link" / "a" / "b"), create=0o750)
    assert ino(fd) == (tmp_path / "real" / "a" / "b").stat().st_ino
    with pytest.raises(FileNotFoundError):
        safefs.open_dir(str(tmp_path / "missing"))
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        safefs.open_dir(str(tmp_path / "file" / "x"), create=0o755)
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(OSError) as info:
        safefs.open_dir(str(tmp_path / "loop"))
    assert info.value.errno == errno.ELOOP


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a dir to another user")
def test_open_dir_refuses_a_link_in_another_users_dir(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (tmp_path / "target").mkdir()
    (theirs / "logs").symlink_to(tmp_path / "target")
    (theirs / "real").mkdir()
    os.chown(theirs, 65534, 65534)
    with pytest.raises(OSError) as info:
        safefs.open_dir(str(theirs / "logs"))
    assert info.value.errno == errno.ELOOP
    assert info.value.strerror == (
        "logs is a symlink in a directory another user can write: not followed"
    )
    assert ino(safefs.open_dir(str(theirs / "real"))) == (theirs / "real").stat().st_ino
    fd = safefs.open_dir(str(theirs))
    try:
        assert safefs.shared(fd)
    finally:
        os.close(fd)


def test_open_file_only_regular_never_a_link(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "hard").write_text("y")
    os.link(tmp_path / "hard", tmp_path / "hard2")
    d = safefs.open_dir(str(tmp_path))
    try:
        with pytest.raises(OSError) as info:
            safefs.open_file(d, "link", os.O_WRONLY | os.O_APPEND)
        assert info.value.strerror == "link is a symlink: not followed"
        with pytest.raises(OSError) as info:  # O_NONBLOCK: the FIFO does not hang us
            safefs.open_file(d, "fifo", os.O_RDONLY)
        assert info.value.strerror == "fifo is not a regular file"
        with pytest.raises(OSError) as info:
            safefs.open_file(d, "hard", os.O_RDONLY, single_link=True)
        assert info.value.strerror == "hard has other hard links: not used"
        os.close(safefs.open_file(d, "hard", os.O_RDONLY, single_link=False))
        fd = safefs.open_file(d, "new", os.O_WRONLY | os.O_CREAT, 0o600)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600 & ~_umask()
        os.close(fd)
        assert "new" in safefs.listdir(d, 100)[0]
    finally:
        os.close(d)
    assert (tmp_path / "target").read_text() == "x"


def test_open_file_looks_before_it_opens(tmp_path: Path) -> None:
    """A FIFO (or a device) is refused before the open: for a FIFO without a reader,
    an open for writing would fail with ENXIO instead; opening a device can act."""
    os.mkfifo(tmp_path / "current")
    d = safefs.open_dir(str(tmp_path))
    try:
        with pytest.raises(OSError) as info:
            safefs.open_file(d, "current", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        assert info.value.strerror == "current is not a regular file"
    finally:
        os.close(d)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def test_open_read_follows_only_links_nobody_else_can_replace(tmp_path: Path) -> None:
    (tmp_path / "conf").write_text("real")
    (tmp_path / "rel").symlink_to("conf")
    (tmp_path / "chain").symlink_to("rel")
    for name in ("conf", "rel", "chain"):
        with open(safefs.open_read(str(tmp_path / name))) as fh:
            assert fh.read() == "real"
    with pytest.raises(IsADirectoryError):
        safefs.open_read(str(tmp_path))
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        (theirs / "service.yaml").symlink_to(tmp_path / "conf")
        os.chown(theirs, 65534, 65534)
        with pytest.raises(OSError) as info:
            safefs.open_read(str(theirs / "service.yaml"))
        assert info.value.strerror == (
            "service.yaml is a symlink in a directory another user can write: not followed"
        )


def test_open_read_has_one_link_budget_for_the_whole_path(tmp_path: Path) -> None:
    """The directory links and the file's links count together, as the kernel's
    MAXSYMLINKS: 30 of each was 60 links followed (and the directory chain walked
    again for each file link)."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "conf").write_text("real")
    for i in range(30):
        (tmp_path / f"d{i}").symlink_to(f"d{i + 1}" if i < 29 else "real")
        (tmp_path / "real" / f"l{i}").symlink_to(f"l{i + 1}" if i < 29 else "conf")
    with open(safefs.open_read(str(tmp_path / "d0" / "conf"))) as fh:
        assert fh.read() == "real"  # 30 links: within the budget
    with open(safefs.open_read(str(tmp_path / "real" / "l0"))) as fh:
        assert fh.read() == "real"
    with pytest.raises(OSError) as info:
        safefs.open_read(str(tmp_path / "d0" / "l0"))
    assert info.value.errno == errno.ELOOP
    assert info.value.strerror == "too many levels of symbolic links"


def test_open_read_of_a_directory_path_is_refused(tmp_path: Path) -> None:
    for path in (str(tmp_path / ".."), "/", str(tmp_path) + "/."):
        with pytest.raises(IsADirectoryError):
            safefs.open_read(path)


def test_open_file_of_kind_fifo(tmp_path: Path) -> None:
    """supervise/'s FIFOs go through open_file too: a FIFO only, and one with other
    hard links refused where others may write the dir (as for a regular file)."""
    os.mkfifo(tmp_path / "control")
    (tmp_path / "plain").write_text("x")
    os.mkfifo(tmp_path / "twice")
    os.link(tmp_path / "twice", tmp_path / "twice2")
    d = safefs.open_dir(str(tmp_path))
    try:
        fd = safefs.open_file(d, "control", os.O_RDWR, kind=stat.S_IFIFO)
        assert stat.S_ISFIFO(os.fstat(fd).st_mode)
        os.close(fd)
        with pytest.raises(OSError) as info:
            safefs.open_file(d, "plain", os.O_RDWR, kind=stat.S_IFIFO)
        assert info.value.strerror == "plain exists but is not a FIFO"
        with pytest.raises(OSError) as info:
            safefs.open_file(d, "twice", os.O_RDWR, single_link=True, kind=stat.S_IFIFO)
        assert info.value.strerror == "twice has other hard links: not used"
    finally:
        os.close(d)


def test_listdir_reads_no_further_than_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(100):
        (tmp_path / f"n{i:03d}").write_text("")
    real = os.scandir
    read = [0]

    class Counting:
        def __init__(self, *args: object) -> None:
            self.it = real(*args)  # type: ignore[call-overload]

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.it.close()

        def __iter__(self) -> Counting:
            return self

        def __next__(self) -> os.DirEntry:
            entry = next(self.it)
            read[0] += 1
            return entry

    d = safefs.open_dir(str(tmp_path))
    try:
        monkeypatch.setattr(os, "scandir", Counting)
        names, more = safefs.listdir(d, 10)
        assert len(names) == 10 and more and read[0] == 11
        names, more = safefs.listdir(d, 100)
        assert sorted(names) == sorted(os.listdir(tmp_path)) and not more
    finally:
        os.close(d)


def test_set_mode_changes_the_held_dir_not_what_its_path_now_names(tmp_path: Path) -> None:
    (tmp_path / "held").mkdir(mode=0o755)
    d = safefs.open_dir(str(tmp_path / "held"))
    try:
        os.rename(tmp_path / "held", tmp_path / "moved")
        (tmp_path / "held").mkdir(mode=0o755)
        safefs.set_mode(d, 0o700)
    finally:
        os.close(d)
    assert stat.S_IMODE((tmp_path / "moved").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "held").stat().st_mode) == 0o755 & ~_umask()


def test_open_dir_below_makes_only_what_is_below_an_existing_base(tmp_path) -> None:
    base = tmp_path / "svc"
    with pytest.raises(FileNotFoundError):
        safefs.open_dir_below(str(base), str(base / "supervise"), 0o700)
    assert not base.exists()  # never made again
    base.mkdir()
    os.close(safefs.open_dir_below(str(base), str(base / "a" / "b"), 0o700))
    assert (base / "a" / "b").is_dir()
    with pytest.raises(OSError):
        safefs.open_dir_below(str(base), str(tmp_path / "elsewhere"), 0o700)
    with pytest.raises(OSError):
        safefs.open_dir_below(str(base), str(base / "x" / ".." / ".." / "up"), 0o700)
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "up").exists()
