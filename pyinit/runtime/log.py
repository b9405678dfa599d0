"""pyinit's own messages: one line each, `pyinit: LEVEL: [service] text`.

PID 1 must never block on its own stderr (a stalled log driver, a FIFO nobody
reads, Ctrl-S on a terminal). fd 2 is shared with children, so it cannot be
made non-blocking itself; `configure(nonblocking=True)` opens a private
non-blocking description of the same pipe or terminal (or writes to a socket
with MSG_DONTWAIT). A message that cannot be written at once is dropped and
counted; the next message that gets through says how many were lost.
"""

from __future__ import annotations

import os
import socket
import stat
from typing import Callable, Hashable

ERROR, WARNING, INFO, DEBUG = 0, 1, 2, 3
_NAMES = {ERROR: "error", WARNING: "warning", INFO: "info", DEBUG: "debug"}

verbosity = INFO
prog = "pyinit"
json_lines = False  # --log-format json: one JSON object per message, like service lines


_write = None  # how to write without blocking; None: plain os.write(2)
dropped = 0


def configure(level: int, name: str = "pyinit", nonblocking: bool = False,
              fmt: str = "text") -> None:
    """Set the highest level printed (ERROR..DEBUG), the program name and the format
    (text or json); with nonblocking, never wait for stderr (for PID 1)."""
    global verbosity, prog, _write, json_lines
    verbosity = max(ERROR, min(DEBUG + 2, level))
    prog = name
    json_lines = fmt == "json"
    if nonblocking:
        _write, poll_fd = nonblocking_writer(2)
        if poll_fd is None:
            _write = None


def nonblocking_writer(fd: int) -> tuple[Callable[[bytes], int], int | None]:
    """A write function for fd that never blocks (raising BlockingIOError instead), and
    the fd to poll for writability; None if fd cannot block (a regular file)."""
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISSOCK(mode):
            sock = socket.socket(fileno=os.dup(fd))
            os.set_inheritable(sock.fileno(), False)
            return (lambda data: sock.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL),
                    sock.fileno())
        if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
            try:
                own = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except PermissionError:
                if not stat.S_ISFIFO(mode):
                    raise
                return polled_pipe_writer(fd)  # non-root: the runtime's pipe is not ours
            return (lambda data: os.write(own, data)), own
    except OSError:
        pass
    return (lambda data: os.write(fd, data)), None  # a file (or no /proc): never waits


PIPE_BUF = 4096


def polled_pipe_writer(fd: int) -> tuple[Callable[[bytes], int], int]:
    """For a pipe pyinit may not reopen (it belongs to another uid, e.g. the container
    runtime's, and pyinit runs as non-root): write at most PIPE_BUF bytes, and only when
    poll() says the pipe has a free buffer, which such a write then never waits for.
    (Only a service writing the same pipe in the instant between the poll and the
    write could make it wait.)"""
    import select

    dup = os.dup(fd)
    os.set_inheritable(dup, False)
    poller = select.poll()
    poller.register(dup, select.POLLOUT)

    def write(data: bytes) -> int:
        if not poller.poll(0):
            raise BlockingIOError(11, "pipe full")
        return os.write(dup, data[:PIPE_BUF])

    return write, dup


def _out(data: bytes) -> bool:
    """Write data whole or not at all (as far as the kernel allows); False if dropped."""
    global dropped
    try:
        if _write is None:
            os.write(2, data)
        else:
            if dropped:
                note = f"{prog}: warning: {dropped} messages dropped: stderr was full\n"
                _write(note.encode())
                dropped = 0
            _write(data)
    except OSError:  # BlockingIOError, EPIPE, ...
        dropped += 1
        return False
    return True


def format_line(level: int, text: str, service: str | None = None) -> str:
    """Render one message line; newlines in text are flattened."""
    flat = " ".join(text.splitlines())  # also a bare \r, which would overwrite the line
    if json_lines:
        import json
        import time

        from pyinit.core.lines import timestamp

        return json.dumps({"ts": timestamp(time.time()), "service": service or prog,
                           "stream": "stderr", "level": _NAMES.get(level, "debug"),
                           "line": flat, "from": prog}) + "\n"
    where = f"[{service}] " if service else ""
    return f"{prog}: {_NAMES.get(level, 'debug')}: {where}{flat}\n"


def emit(level: int, text: str, service: str | None = None) -> None:
    if level > verbosity:
        return
    _out(format_line(level, text, service).encode("utf-8", "backslashreplace"))


MAX_SAID = 10_000  # lines `once` remembers; past that it says no new one
said: set[tuple[str | None, Hashable]] = set()


def once(level: int, text: str, service: str | None = None, key: Hashable = None) -> None:
    """emit, the first time only, a line that would recur (each re-import of the env
    dir, each start of a service, each write of a file): once per (service, key), in
    bounded memory. key is the text unless given: a fixed key says one of several
    texts (a warning naming the first of many paths) once for all of them. The one way
    pyinit says a thing once; a failure that may end (and be said again when it
    recurs) is core.repeats.Repeats, a flood is its Throttle."""
    seen = (service, text if key is None else key)
    if seen not in said and len(said) < MAX_SAID:
        said.add(seen)
        emit(level, text, service)


def error(text: str, service: str | None = None) -> None:
    emit(ERROR, text, service)


def warning(text: str, service: str | None = None) -> None:
    emit(WARNING, text, service)


def info(text: str, service: str | None = None) -> None:
    emit(INFO, text, service)


def debug(text: str, service: str | None = None) -> None:
    emit(DEBUG, text, service)


def bug(where: str) -> None:
    """Log the current exception as a pyinit bug, with its traceback, and carry on."""
    emit(ERROR, f"internal error in {where} (pyinit keeps running):")
    import traceback  # only on a bug

    _out(traceback.format_exc().encode("utf-8", "backslashreplace"))
