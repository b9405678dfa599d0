"""A minimal inotify through ctypes: enough to learn that a service dir changed."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_ONLYDIR = 0x01000000
DIR_CHANGES = (
    IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_ONLYDIR
)


class Inotify:
    def __init__(self) -> None:
        self._libc: Any = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd

    def watch(self, path: str, mask: int = DIR_CHANGES) -> bool:
        """Watch path; False when it cannot be watched (missing, not a dir)."""
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        return wd >= 0

    def drain(self) -> int:
        """Discard pending events; returns how many bytes were read."""
        total = 0
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return total
            if not data:
                return total
            total += len(data)
