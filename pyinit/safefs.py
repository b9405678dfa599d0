"""Paths that PID 1 touches in directories another user may write.

pyinit runs as root; a service user (or anyone else in the container) may own or
be able to write a log dir, a service dir or a parent of either. Whoever can
write a directory can replace any name in it, between two calls, by a symlink or
a hard link to a file only root may write. So, in such a directory, pyinit:

- reaches it by `open_dir`: one component at a time from `/` (openat), following
  a symlink only where no other user can replace it (`stable`), creating missing
  components when asked, and keeping the directory open;
- opens, renames and removes names relative to that fd (`open_file`, and the
  `dir_fd=` forms), never by path: O_NOFOLLOW, O_NOCTTY, O_NONBLOCK, O_CLOEXEC,
  then fstat: only a regular file is used, and, in a directory others may
  write, only one with a single link (a hard link to /etc/shadow has two);
- changes modes and owners with fchmod/fchown on its own fd, never by name.

`others_may_write` and `stable` are pure (stat records in, a verdict out).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Optional

MAX_LINKS = 40  # symlinks followed in one path, as the kernel's MAXSYMLINKS
DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC


def trusted_uids() -> tuple[int, int]:
    """Owners whose files pyinit trusts: root and pyinit's own uid."""
    return 0, os.geteuid()


def others_may_write(st: os.stat_result, trusted: tuple[int, ...]) -> bool:
    """Can a uid not in trusted add, remove or rename names in this directory?"""
    return st.st_uid not in trusted or bool(stat.S_IMODE(st.st_mode) & 0o022)


def stable(dir_st: os.stat_result, entry_st: os.stat_result, trusted: tuple[int, ...]) -> bool:
    """Can only a trusted uid replace this entry of this directory? True in a
    directory only trusted uids may write, and for a trusted uid's entry in a
    sticky directory a trusted uid owns (/tmp: others may not rename or remove it)."""
    if not others_may_write(dir_st, trusted):
        return True
    return (
        bool(dir_st.st_mode & stat.S_ISVTX)
        and dir_st.st_uid in trusted
        and entry_st.st_uid in trusted
    )


def _fail(code: int, why: str, path: str) -> OSError:
    return OSError(code, why, path)


def open_dir(path: str, create: Optional[int] = None) -> int:
    """An O_PATH fd of directory path, walked one component at a time from `/`.

    A symlink is followed only when `stable` (else OSError ELOOP, "a symlink in
    a directory another user can write"); with create, missing components are
    made with that mode (less the umask). OSError when path is not a directory."""
    trusted = trusted_uids()
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    parts = path.split("/")
    parts.reverse()  # a stack: the next component last
    stack = [os.open("/", DIR_FLAGS)]
    links = 0
    try:
        while parts:
            name = parts.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            here = stack[-1]
            try:
                st = os.stat(name, dir_fd=here, follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    raise
                try:
                    os.mkdir(name, create, dir_fd=here)
                except FileExistsError:
                    pass
                st = os.stat(name, dir_fd=here, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                if not stable(os.fstat(here), st, trusted):
                    raise _fail(
                        errno.ELOOP,
                        f"{name} is a symlink in a directory another user can write: not followed",
                        path,
                    )
                links += 1
                if links > MAX_LINKS:
                    raise _fail(errno.ELOOP, "too many levels of symbolic links", path)
                target = os.readlink(name, dir_fd=here)
                if target.startswith("/"):
                    for fd in stack[1:]:
                        os.close(fd)
                    del stack[1:]
                parts.extend(reversed(target.split("/")))
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise _fail(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            fd = os.open(name, DIR_FLAGS, dir_fd=here)
            stack.append(fd)
            if not stat.S_ISDIR(os.fstat(fd).st_mode):  # replaced since the lstat
                raise _fail(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def shared(dir_fd: int) -> bool:
    """Can a user other than root or pyinit's write the directory open as dir_fd?"""
    return others_may_write(os.fstat(dir_fd), trusted_uids())


def open_file(
    dir_fd: int, name: str, flags: int, mode: int = 0o644, single_link: Optional[bool] = None
) -> int:
    """Open name in the directory dir_fd: never through a symlink, only a regular
    file; single_link (default: when others may write the dir) refuses a file
    with other hard links. OSError with a one-phrase strerror otherwise."""
    if single_link is None:
        single_link = shared(dir_fd)
    try:
        fd = os.open(name, flags | FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _fail(errno.ELOOP, f"{name} is a symlink: not followed", name) from None
        raise
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _fail(errno.EISDIR, os.strerror(errno.EISDIR), name)
        if not stat.S_ISREG(st.st_mode):
            raise _fail(errno.EINVAL, f"{name} is not a regular file", name)
        if single_link and st.st_nlink > 1:
            raise _fail(errno.EMLINK, f"{name} has other hard links: not used", name)
    except OSError:
        os.close(fd)
        raise
    return fd


def listdir(dir_fd: int) -> list[str]:
    """The names in the directory open (O_PATH) as dir_fd."""
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def open_read(path: str) -> int:
    """Open the file at path for reading (a service's service.yaml, env_file,
    notification-fd): the directories on the way walked by open_dir; a symlink as
    the last component followed only where no other user can replace it; the file
    opened by open_file (regular, one link where others may write the dir)."""
    trusted = trusted_uids()
    for _ in range(MAX_LINKS + 1):
        parent, name = os.path.split(path)
        dir_fd = open_dir(parent or ".")
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                return open_file(dir_fd, name, os.O_RDONLY)
            if not stable(os.fstat(dir_fd), st, trusted):
                raise _fail(
                    errno.ELOOP,
                    "is a symlink in a directory another user can write: not followed",
                    path,
                )
            path = os.path.join(parent, os.readlink(name, dir_fd=dir_fd))
        finally:
            os.close(dir_fd)
    raise _fail(errno.ELOOP, "too many levels of symbolic links", path)
