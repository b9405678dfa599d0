"""Capturing a service's stdout and stderr (log modes `prefix` and `file`).

pyinit holds both ends of one pipe per stream for the life of the service, so
nothing is lost across restarts. The read ends are non-blocking and read by the
loop; lines go to the container's stdout/stderr as `NAME | line` (or JSON), or
to a FileLog directory, and into a small ring for `svctl logs`, and to every
`svctl logs -f` follower.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

from pyinit.core.lines import Ring, Splitter, render, render_plain, split_block
from pyinit.output.logdir import FileLog
from pyinit.output.sinks import Sink
from pyinit.runtime import log
from pyinit.runtime.loop import EventLoop

READ_SIZE = 64 * 1024
STREAMS = ("stdout", "stderr")


@dataclass
class Settings:
    mode: str  # prefix or file
    fmt: str = "text"  # text or json (prefix mode)
    timestamps: bool = False
    directory: str = ""
    within: str = ""  # a dir that must exist, directory being below it (the service dir)
    max_size: int = 1_000_000
    max_files: int = 10


class Capture:
    def __init__(self, loop: EventLoop, name: str, settings: Settings,
                 sinks: dict[str, Optional[Sink]]) -> None:
        self.loop = loop
        self.name = name
        self.settings = settings
        self.sinks = sinks
        self.ring = Ring()
        self.followers: list[Callable[[bytes], None]] = []
        self.file = (FileLog(settings.directory, name, settings.max_size, settings.max_files,
                             settings.within)
                     if settings.mode == "file" else None)
        self.file_failed: Optional[str] = None  # file mode that fell back to prefix: why
        self.pipes: dict[str, tuple[int, int]] = {}
        self.splitters = {stream: Splitter() for stream in STREAMS}
        for stream in STREAMS:
            r, w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(r, False)
            self.pipes[stream] = (r, w)
            self.loop.add_reader(r, lambda s=stream: self.on_readable(s))
        if self.file is not None:
            self.open_file()

    @property
    def mode(self) -> str:
        """prefix or file: the mode in effect (a file that cannot be opened: prefix)."""
        return "file" if self.file is not None else "prefix"

    def open_file(self) -> None:
        """File mode: open `current` now; when that fails (read-only or not pyinit's
        directory), say so once for this service and write prefix lines instead."""
        assert self.file is not None
        try:
            self.file.open()
        except OSError as exc:
            self.file_failed = f"{self.settings.directory} ({exc.strerror or exc})"
            log.warning(f"cannot write its log file in {self.file_failed}: prefix mode "
                        "instead", self.name)
            self.file = None

    def fd(self, stream: str) -> int:
        """The write end a process gets as its stdout or stderr."""
        return self.pipes[stream][1]

    def on_readable(self, stream: str) -> None:
        try:
            data = os.read(self.pipes[stream][0], READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        self.emit(stream, self.splitters[stream].feed(data))

    def emit(self, stream: str, block: bytes) -> None:
        """Pass on a block of whole lines (see lines.Splitter)."""
        if not block:
            return
        self.ring.add(block)
        if self.followers:
            for line in split_block(block):
                for follow in list(self.followers):
                    follow(line)
        s = self.settings
        now = time.time() if s.timestamps or (s.fmt == "json" and self.file is None) else None
        if self.file is not None:
            self.file.write(render_plain(block, now))
            return
        sink = self.sinks.get(stream)
        if sink is not None:
            sink.put(self.name, render(self.name, stream, block, s.fmt, now))

    def drain(self) -> None:
        """Read whatever is left in the pipes and flush partial lines (at shutdown)."""
        for stream in STREAMS:
            r = self.pipes[stream][0]
            while True:
                try:
                    data = os.read(r, READ_SIZE)
                except OSError:
                    break
                if not data:
                    break
                self.emit(stream, self.splitters[stream].feed(data))
            self.emit(stream, self.splitters[stream].flush())

    def dropped(self) -> int:
        if self.file is not None:
            return self.file.dropped
        return sum(sink.dropped.get(self.name, 0) for sink in self.sinks.values() if sink)

    def tail(self, n: int) -> list[bytes]:
        return self.file.tail(n) if self.file is not None else self.ring.tail(n)

    def rotate(self) -> None:
        if self.file is None and self.file_failed is not None:
            self.retry_file()
            return
        if self.file is not None:
            try:
                self.file.rotate()
            except OSError as exc:
                self.file.failed(exc, 0)

    def retry_file(self) -> None:
        """On SIGHUP: a file mode that fell back to prefix tries its directory again."""
        s = self.settings
        self.file = FileLog(s.directory, self.name, s.max_size, s.max_files, s.within)
        try:
            self.file.open()
        except OSError:
            self.file = None  # still failing: said once already
            return
        self.file_failed = None
        log.info(f"writing its log to {s.directory} again", self.name)

    def close(self) -> None:
        for r, w in self.pipes.values():
            self.loop.remove(r)
            os.close(r)
            os.close(w)
        self.pipes.clear()
        if self.file is not None:
            self.file.close()
