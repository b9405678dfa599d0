"""Command-line tools on a broken or closed stdout or stderr: no traceback, the
conventional exit (docs/svctl.md#broken-or-closed-output).

- The reader went away (EPIPE: `svctl status | head -1`): exit quietly with 141,
  what a shell reports for runit's sv or coreutils killed by SIGPIPE (Python
  ignores SIGPIPE, so the write fails with EPIPE instead of killing the tool).
- Any other failed write to stdout (ENOSPC on /dev/full, EIO): one line
  `NAME: write error: TEXT` on stderr, exit 1, as coreutils does.
- stdout or stderr closed (`>&-`): what goes there is dropped (to /dev/null);
  the exit code is the tool's own. The closed fd
  gets /dev/null (ensure_std_fds), so no socket, pipe or file opened later takes
  fd 0, 1 or 2 and receives what is meant for stdout or stderr.
"""

from __future__ import annotations

import errno
import os
import sys

# typing, functools, select cost svctl's start (tests/unit/test_svctl_import_budget.py)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, TypeVar

    F = TypeVar("F", bound=Callable[..., None])

EPIPE_EXIT = 141  # 128 + SIGPIPE (13), what a shell shows for a tool SIGPIPE killed
WRITE_ERROR = 1
WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EIO, errno.EBADF, errno.EDQUOT})


def guarded(name: str) -> Callable[[F], F]:
    """Wrap a tool's main() so a broken or failing stdout/stderr ends it as above; the
    exit code is what main returns or raises (SystemExit)."""

    def decorate(main: F) -> F:
        def wrapper(*args: object, **kw: object) -> None:
            code: object = 0
            ensure_std_fds()
            if sys.stdout is None:  # closed at start: what goes there is dropped
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            if sys.stderr is None:
                sys.stderr = open(os.devnull, "w")  # noqa: SIM115
            try:
                try:
                    code = main(*args, **kw)
                except SystemExit as stop:
                    code = stop.code
                flush(sys.stdout)
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    finish(EPIPE_EXIT)
                if exc.errno not in WRITE_ERRORS:
                    raise  # not a failed write: a bug, shown as one
                say(f"{name}: write error: {exc.strerror}\n")
                finish(WRITE_ERROR)
            flush(sys.stderr)
            sys.exit(code)

        wrapper.__wrapped__ = main  # type: ignore[attr-defined]  # functools.wraps's essentials
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(wrapper, attr, getattr(main, attr))
        return wrapper  # type: ignore[return-value]

    return decorate


def ensure_std_fds() -> None:
    """Open /dev/null on fd 0, 1 and 2 where closed (runit and s6 do the same), so
    pyinit's log (fd 2), service output (fd 1) and the children's standard fds never
    land in an epoll, signalfd, socket or supervise/ file that took the number."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def flush(stream: object) -> None:
    if stream is not None:
        stream.flush()  # type: ignore[attr-defined]


def broken(fd: int) -> bool:
    """Is fd a pipe or socket whose reader is gone (poll reports POLLERR)?"""
    import select

    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (OSError, ValueError):
        return False


def say(text: str) -> None:
    try:
        os.write(2, text.encode(errors="replace"))
    except OSError:
        pass


def finish(code: int) -> None:
    """Exit now, without Python flushing the broken stream again at exit."""
    os._exit(code)
