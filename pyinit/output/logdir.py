"""`log: {mode: file}`: a service's lines in a directory, as svlogd keeps them.

`current` is appended to; when the next line would take it past max_size it is
renamed to `@TAI64N.s` (svlogd's name for a finished file) and a new `current`
starts; only the newest max_files finished files are kept. `rotate()` also
runs on `svctl hup NAME/log` and SIGHUP. Writes only append (no seek, so never
"Illegal seek"), and every open is non-blocking, so a FIFO in the way cannot
hang PID 1. A failed write (disk full, directory gone) drops the lines, counts
them and warns once; the next lines try again (after a full disk, only once
RESUME_FREE bytes are free, so a nearly full disk does not flap between failing
and working). A write cut short is truncated back to the last whole line.

The directory may be the service user's: everything in it is done relative to
the directory's fd, reached by safefs.open_dir, and `current` is opened by
safefs.open_file (no symlink, only a regular file with one link where others may
write), so a service cannot make root write into, or `svctl logs` read from,
another file. Rotated names carry svlogd's TAI64N label (pyinit.core.tai64).

Pruning is bounded: the directory may hold any number of names its owner made, so
each rotation reads at most MAX_SCAN entries of it (warning once when there are
more), keeps the names of finished files (`@` + 24 hex digits + `.s`) and removes
the oldest beyond max_files; the files this FileLog finished itself are always
counted, so its own are pruned even in a directory too full to scan.
"""

from __future__ import annotations

import errno
import heapq
import os
import re
import time
from typing import Optional

from pyinit.core import tai64
from pyinit.linux import safefs
from pyinit.runtime import log

RESUME_FREE = 16 * 1024  # after "disk full", wait for this much free space before writing
MAX_SCAN = 10000  # directory entries read per rotation (the rest are not looked at)
DONE = re.compile(r"@[0-9a-f]{24}\.s")  # a finished file's name (svlogd's)


class FileLog:
    def __init__(self, directory: str, source: str, max_size: int = 1_000_000,
                 max_files: int = 10, within: str = "") -> None:
        self.directory = directory
        self.within = within  # must exist (the service dir of a relative log.dir): not made
        self.source = source
        self.max_size = max_size
        self.max_files = max_files
        self.fd: Optional[int] = None
        self.dir_fd: Optional[int] = None  # the directory, walked safely (O_PATH)
        self.size = 0
        self.dropped = 0
        self.failing: Optional[str] = None
        self.full = False  # the last failure was a full disk or quota
        self.made: list[str] = []  # finished files this FileLog renamed, not yet pruned

    @property
    def current(self) -> str:
        return os.path.join(self.directory, "current")

    def open(self) -> None:
        """Open (creating it, mode 0755) the directory and `current` in it, never
        through a link another user could have put there (safefs)."""
        if self.dir_fd is None:
            self.dir_fd = (safefs.open_dir_below(self.within, self.directory, create=0o755)
                           if self.within else safefs.open_dir(self.directory, create=0o755))
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT  # safefs adds O_NONBLOCK: no FIFO hang
        self.fd = safefs.open_file(self.dir_fd, "current", flags, 0o644)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        """Append whole lines; rotate first if they would not fit."""
        if self.full and not self.has_room():
            self.dropped += len(data)  # no write until there is room: no flapping warnings
            return
        start = -1
        try:
            if self.fd is None:
                self.open()
            if self.size and self.size + len(data) > self.max_size:
                self.rotate()
            assert self.fd is not None
            start = self.size
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
                self.size += n
        except OSError as exc:
            if start >= 0:
                self.undo_partial(start)
            self.failed(exc, len(data))
            return
        self.full = False
        if self.failing is not None:
            log.info(f"writing {self.directory} again ({self.dropped} bytes dropped so far)",
                     self.source)
            self.failing = None

    def undo_partial(self, start: int) -> None:
        """A write cut short (disk full): cut `current` back to the last whole line,
        so the next line is not glued to half of this one."""
        if self.fd is not None and self.size > start:
            try:
                os.ftruncate(self.fd, start)
                self.size = start
            except OSError:
                pass

    def has_room(self) -> bool:
        if self.dir_fd is None:
            return True  # nothing held: the next open says what is wrong
        try:  # the directory pyinit holds, not whatever its path names now
            st = os.fstatvfs(self.dir_fd)
        except OSError:
            return True  # let the write say what is wrong
        return st.f_bavail * st.f_frsize >= RESUME_FREE

    def failed(self, exc: OSError, lost: int) -> None:
        self.dropped += lost
        self.full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            self.close()  # reopen (e.g. the directory was recreated) on the next line
        if self.failing is None:
            self.failing = exc.strerror or str(exc)
            log.warning(f"cannot write {self.directory}: {self.failing}; dropping lines "
                        "until it works again", self.source)

    def rotate(self) -> None:
        """Finish `current` as @TAI64N.s and start a new one; keep max_files finished ones."""
        if self.fd is None:
            self.open()
        if self.size == 0:
            return
        self.close_file()
        assert self.dir_fd is not None
        name = tai64.text(time.time_ns()) + ".s"
        os.rename("current", name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        self.made.append(name)
        self.prune()
        self.open()

    def prune(self) -> None:
        """Remove the oldest finished files beyond max_files, reading at most MAX_SCAN
        entries of the directory (see the module docstring)."""
        assert self.dir_fd is not None
        found, more = safefs.listdir(self.dir_fd, MAX_SCAN)
        done = set(self.made).union(name for name in found if DONE.fullmatch(name))
        if more:
            log.once(log.WARNING, f"{self.directory} holds more than {MAX_SCAN} names: only "
                     f"the first {MAX_SCAN} are looked at when pruning finished files", self.source)
        keep = set(heapq.nlargest(self.max_files, done))  # TAI64N names sort by time
        for name in done - keep:
            try:
                os.unlink(name, dir_fd=self.dir_fd)  # unlink never follows a link
            except OSError:
                pass
        self.made = [n for n in self.made if n in keep]

    def close_file(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        """Close `current` and the directory (the next write walks to it again)."""
        self.close_file()
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None

    def tail(self, n: int, limit: int = 1 << 20) -> list[bytes]:
        """The last n lines of `current` (read from its last `limit` bytes)."""
        try:
            dir_fd = safefs.open_dir(self.directory)
            try:
                fd = safefs.open_file(dir_fd, "current", os.O_RDONLY)
            finally:
                os.close(dir_fd)
            with open(fd, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                start = max(0, fh.tell() - limit)
                fh.seek(start)
                data = fh.read(limit)  # not to the end: the file may grow meanwhile
        except OSError:
            return []
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if start > 0 and lines:
            lines.pop(0)  # cut in the middle
        return lines[-n:] if n > 0 else []
