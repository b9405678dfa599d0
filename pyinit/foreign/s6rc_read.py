"""Reading an s6-rc.d source tree into s6rc.Source records: every path walked with
safefs (no symlink another user could plant is followed), every file and listing
bounded; a problem is an s6rc.SourceError naming the file."""

from __future__ import annotations

import os
import stat
from typing import Optional

from pyinit.core import bounds
from pyinit.foreign.s6rc import (
    MAX_SCRIPT,
    MAX_SERVICES,
    MAX_SMALL,
    SMALL_FILES,
    Source,
    SourceError,
    check_name,
)
from pyinit.linux import safefs

MAX_ENTRIES = 64  # entries of one service directory


def read_tree(root: str, extra: Optional[str] = None) -> Optional[dict[str, Source]]:
    """The services of root (None when root does not exist). extra, s6-overlay
    3.2's user-bundles.d, adds names to the `user` and `user2` bundles."""
    root_fd = _open_dir(root)
    if root_fd is None:
        return None
    try:
        names = _names(root_fd, root, MAX_SERVICES)
    finally:
        os.close(root_fd)
    out = {}
    for name in sorted(names):
        check_name(name, f"{root}/{name}")
        out[name] = read_service(os.path.join(root, name), name)
    if extra is not None:
        _add_user_bundles(out, extra)
    return out


def _add_user_bundles(out: dict[str, Source], extra: str) -> None:
    for bundle in ("user", "user2"):
        listed = _list_dir(os.path.join(extra, bundle, "contents.d"))
        if listed:
            src = out.setdefault(bundle, Source(bundle))
            src.contents = (src.contents or []) + [
                n for n in listed if n not in (src.contents or [])
            ]


def _open_dir(path: str) -> Optional[int]:
    """safefs.open_dir(path), None when it does not exist; SourceError otherwise."""
    try:
        return safefs.open_dir(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from None


def _names(dir_fd: int, path: str, limit: int) -> list[str]:
    try:
        names, more = safefs.listdir(dir_fd, limit)
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from None
    if more:
        raise SourceError(f"{path}: more than {limit} entries")
    return [n for n in names if not n.startswith(".")]


def _list_dir(path: str) -> Optional[list[str]]:
    """The names in a dependencies.d or contents.d (None: no such directory)."""
    fd = _open_dir(path)
    if fd is None:
        return None
    try:
        names = sorted(_names(fd, path, MAX_SERVICES))
    finally:
        os.close(fd)
    for name in names:
        check_name(name, f"{path}/{name}")
    return names


def _read(dir_fd: int, path: str, name: str, limit: int) -> Optional[str]:
    """A file's text (None when absent); a symlink is followed only as safefs
    allows (open_read)."""
    where = os.path.join(path, name)
    try:
        fd = safefs.open_read(where)
        data = bounds.read_fd(fd, limit, where)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceError(f"{where}: {exc.strerror or exc}") from None
    except bounds.InputError as exc:
        raise SourceError(str(exc)) from None
    return data.decode("utf-8", "surrogateescape")


def _is_file(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def read_service(path: str, name: str) -> Source:
    """One service directory (checked for bad names)."""
    try:
        fd = safefs.open_dir(path)
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from None
    try:
        if safefs.shared(fd):  # its run would be swapped under pyinit's feet
            raise SourceError(f"{path}: another user may write it: refused (root would run "
                              "what they write)")  # fmt: skip
        entries = set(_names(fd, path, MAX_ENTRIES))
        src = Source(name, has_run=_is_file(fd, "run"), has_finish=_is_file(fd, "finish"))
        for key in SMALL_FILES:
            if key in entries:
                text = _read(fd, path, key, MAX_SMALL)
                if text is not None:
                    src.files[key] = text
        src.up = _read(fd, path, "up", MAX_SCRIPT) if "up" in entries else None
        src.down = _read(fd, path, "down", MAX_SCRIPT) if "down" in entries else None
    finally:
        os.close(fd)
    src.dependencies = _listing(path, "dependencies", entries)
    src.contents = _listing(path, "contents", entries)
    known = {
        *SMALL_FILES,
        "run",
        "finish",
        "up",
        "down",
        "dependencies",
        "dependencies.d",
        "contents",
        "contents.d",
        "data",
    }
    src.others = sorted(entries - known)
    return src


def _listing(path: str, key: str, entries: set[str]) -> Optional[list[str]]:
    """`KEY.d/` (one empty file per name), else the older `KEY` file (a name a line)."""
    names = _list_dir(os.path.join(path, key + ".d")) if key + ".d" in entries else None
    if key in entries:
        text = _read(-1, path, key, MAX_SMALL * 64) or ""
        names = (names or []) + [
            n.strip() for n in text.splitlines() if n.strip() and not n.strip().startswith("#")
        ]
        for n in names:
            check_name(n, os.path.join(path, key))
    return names


LEGACY_FILES = ("run", "finish", "log", "notification-fd")  # what services-up copies


def read_legacy(path: str) -> tuple[list[str], dict[str, str]]:
    """The service dirs of /etc/services.d, as s6-overlay's services-up takes them
    (each dir; in name order), and those pyinit reads as they are (not ordered after
    the `user` bundle), with why: another user may write it, or it has a service.yaml."""
    try:
        fd = safefs.open_dir(path)
    except FileNotFoundError:
        return [], {}
    except OSError as exc:
        raise SourceError(f"{path}: {exc.strerror or exc}") from None
    try:
        names = sorted(_names(fd, path, MAX_SERVICES))
        dirs = [n for n in names if _is_dir(fd, n)]
        if safefs.shared(fd):
            return dirs, {n: f"another user may write {path}" for n in dirs}
    finally:
        os.close(fd)
    as_is: dict[str, str] = {}
    for name in dirs:
        check_name(name, f"{path}/{name}")
        try:
            sub = safefs.open_dir(os.path.join(path, name))
        except OSError as exc:
            raise SourceError(f"{path}/{name}: {exc.strerror or exc}") from None
        try:
            if safefs.shared(sub):
                as_is[name] = "another user may write it"
            elif os.path.lexists(os.path.join(path, name, "service.yaml")):
                as_is[name] = "it has a service.yaml"
        finally:
            os.close(sub)
    return dirs, as_is


def _is_dir(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False
