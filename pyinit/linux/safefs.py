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
  then fstat: only a regular file (or, asked for, a FIFO) is used, and, in a
  directory others may write, only one with a single link (a hard link to
  /etc/shadow has two);
- lists a directory only up to a limit (`listdir`): its owner may fill it;
- changes modes and owners with fchmod/fchown on its own fd (`set_mode` for a
  directory held O_PATH), never by name.

`others_may_write` and `stable` are pure (stat records in, a verdict out).
"""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False  # svctl's run dir lookup reads safefs: no typing at run time
if TYPE_CHECKING:
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

    A symlink is followed only when `stable` (else OSError ELOOP, "NAME is a
    symlink in a directory another user can write: not followed"); with create,
    missing components are made with that mode (less the umask). OSError when path
    is not a directory."""
    return _walk(path, create, None)


def open_dir_below(base: str, path: str, create: int) -> int:
    """open_dir(path, create) for a path inside directory base, which must exist:
    only what is below base is made, walked from base's fd. A service dir removed
    while pyinit still writes into it (its supervise/, its log dir) is never made
    again, half-empty and root's, under the name the next scan reads
    (FileNotFoundError instead; renamed away meanwhile, what is made goes with it)."""
    rel = os.path.relpath(path, base)
    if rel == ".." or rel.startswith("../"):
        raise _fail(errno.EINVAL, "not below its base directory", path)
    base_fd = _walk(base, None, None)
    try:
        return _walk(rel, create, None, start=base_fd)
    finally:
        os.close(base_fd)


def _walk(path: str, create: Optional[int], file_flags: Optional[int],
          start: Optional[int] = None) -> int:
    """open_dir's and open_read's walk: with file_flags, the last component is a
    file, opened by open_file (a symlink there followed as one on the way). One
    budget of MAX_LINKS symlinks for the whole path. With start, path is relative
    to that dir and may not lead above it (a link's target may)."""
    trusted = trusted_uids()
    if start is None and not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    parts = _components(path)  # a stack: the next component last
    stack = [os.dup(start) if start is not None else os.open("/", DIR_FLAGS)]
    floor = start is not None  # stack[0] is start's dir, not /
    links = 0
    try:
        while parts:
            name = parts.pop()
            if name == "..":
                _up(stack, floor, links, path)
                continue
            here = stack[-1]
            st = _stat_or_make(here, name, create)
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
                if target.startswith("/"):  # from /, whatever the start
                    for fd in stack:
                        os.close(fd)
                    stack[:] = [os.open("/", DIR_FLAGS)]
                    floor = False
                parts.extend(_components(target))
                continue
            if file_flags is not None and not parts:
                return open_file(here, name, file_flags)
            if not stat.S_ISDIR(st.st_mode):
                raise _fail(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            fd = os.open(name, DIR_FLAGS, dir_fd=here)
            stack.append(fd)
            if not stat.S_ISDIR(os.fstat(fd).st_mode):  # replaced since the lstat
                raise _fail(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        if file_flags is not None:  # the path ends in `..` or is `/`
            raise _fail(errno.EISDIR, os.strerror(errno.EISDIR), path)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def _up(stack: list[int], floor: bool, links: int, path: str) -> None:
    """A `..` step: back along the walk; at / it stays; at a start dir it is refused,
    unless a link's target leads there (then the real parent)."""
    if len(stack) > 1:
        os.close(stack.pop())
    elif floor and not links:
        raise _fail(errno.EINVAL, "leads above its base directory", path)
    elif floor:
        up = os.open("..", DIR_FLAGS, dir_fd=stack[0])
        os.close(stack[0])
        stack[0] = up


def _stat_or_make(here: int, name: str, create: Optional[int]) -> os.stat_result:
    """lstat of name in dir here; with create, a missing name is made a dir first."""
    try:
        return os.stat(name, dir_fd=here, follow_symlinks=False)
    except FileNotFoundError:
        if create is None:
            raise
    try:
        os.mkdir(name, create, dir_fd=here)
    except FileExistsError:
        pass
    return os.stat(name, dir_fd=here, follow_symlinks=False)


def _components(path: str) -> list[str]:
    """path's components, last first (`` and `.` dropped: they name no step)."""
    return [part for part in reversed(path.split("/")) if part not in ("", ".")]


def shared(dir_fd: int) -> bool:
    """Can a user other than root or pyinit's write the directory open as dir_fd?"""
    return others_may_write(os.fstat(dir_fd), trusted_uids())


KIND_TEXT = {stat.S_IFREG: "is not a regular file", stat.S_IFIFO: "exists but is not a FIFO"}


def open_file(
    dir_fd: int,
    name: str,
    flags: int,
    mode: int = 0o644,
    single_link: Optional[bool] = None,
    kind: int = stat.S_IFREG,
) -> int:
    """Open name in the directory dir_fd: never through a symlink, only a file of
    kind (S_IFREG, or S_IFIFO for supervise/'s FIFOs; checked before the open, so a
    device is never opened, and again on the fd); single_link (default: when others
    may write the dir) refuses a file with other hard links. OSError with a
    one-phrase strerror otherwise."""
    if single_link is None:
        single_link = shared(dir_fd)
    try:  # look before opening: opening a device or FIFO can itself have an effect
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        before = None
    if before is not None and not stat.S_ISLNK(before.st_mode):
        _check_kind(before, name, kind)
    try:
        fd = os.open(name, flags | FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _fail(errno.ELOOP, f"{name} is a symlink: not followed", name) from None
        raise
    try:
        st = os.fstat(fd)
        _check_kind(st, name, kind)
        if single_link and st.st_nlink > 1:
            raise _fail(errno.EMLINK, f"{name} has other hard links: not used", name)
    except OSError:
        os.close(fd)
        raise
    return fd


def _check_kind(st: os.stat_result, name: str, kind: int) -> None:
    if stat.S_IFMT(st.st_mode) == kind:
        return
    if stat.S_ISDIR(st.st_mode):
        raise _fail(errno.EISDIR, os.strerror(errno.EISDIR), name)
    raise _fail(errno.EINVAL, f"{name} {KIND_TEXT[kind]}", name)


def listdir(dir_fd: int, limit: int) -> tuple[list[str], bool]:
    """At most limit names of the directory open (O_PATH) as dir_fd, in directory
    order, and whether it holds more: another user may have filled it, so it is
    read no further than that (one entry more)."""
    fd = _readable(dir_fd)
    names: list[str] = []
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if len(names) >= limit:
                    return names, True
                names.append(entry.name)
    finally:
        os.close(fd)
    return names, False


def _readable(dir_fd: int) -> int:
    """A readable fd of the directory open (O_PATH) as dir_fd: scandir needs one."""
    return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)


def set_mode(dir_fd: int, mode: int) -> None:
    """chmod the directory open (O_PATH) as dir_fd, through that fd (fchmodat on
    `.`: fchmod does not take an O_PATH fd), never by its path."""
    os.chmod(".", mode, dir_fd=dir_fd)


def open_read(path: str) -> int:
    """Open the file at path for reading (a service's service.yaml, env_file,
    notification-fd): walked as open_dir walks, a symlink as the last component
    followed likewise (one link budget for the whole path); the file opened by
    open_file (regular, one link where others may write the dir)."""
    return _walk(path, None, os.O_RDONLY)
