"""The C library through ctypes, loaded once, for the calls Python's os module lacks
(prctl, capset, signalfd, inotify)."""

from __future__ import annotations

import ctypes
import os
from typing import Any

_libc: Any = None


def libc() -> Any:
    """The shared CDLL handle (errno kept for check())."""
    global _libc
    if _libc is None:
        try:  # glibc's soname; find_library("c") would fork ldconfig at every start
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:  # musl and others
            from ctypes.util import find_library

            _libc = ctypes.CDLL(find_library("c"), use_errno=True)
        _libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        _libc.prctl.restype = ctypes.c_int
    return _libc


def check(result: int, what: str) -> int:
    """Raise OSError with errno and `what` when a libc call returned < 0."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result
