"""A minimal inotify through ctypes: enough to learn that a service dir changed."""

from __future__ import annotations

import ctypes
import os
import struct
from typing import NamedTuple

from pyinit.linux.libc import libc

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_IGNORED = 0x8000
IN_Q_OVERFLOW = 0x4000
IN_ONLYDIR = 0x01000000
DIR_CHANGES = (
    IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
    | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_ONLYDIR
)


class Inotify:
    def __init__(self) -> None:
        self._libc = libc()
        fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd

    def watch(self, path: str, mask: int = DIR_CHANGES) -> int:
        """Watch path; returns the watch descriptor, or -1 when it cannot be watched."""
        return int(self._libc.inotify_add_watch(self.fd, os.fsencode(path), mask))

    def read(self) -> list[Event]:
        """Every pending event; never blocks."""
        events: list[Event] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            if not data:
                return events
            events.extend(parse(data))


class Event(NamedTuple):
    wd: int
    mask: int
    name: str


_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


def parse(data: bytes) -> list[Event]:
    """Decode a buffer of struct inotify_event records."""
    out = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        raw = data[offset : offset + length].split(b"\0", 1)[0]
        offset += length
        out.append(Event(wd, mask, os.fsdecode(raw)))
    return out
