"""The C library through ctypes, loaded once, for the calls Python's os module lacks
(prctl, capset, signalfd, inotify)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

_libc: Any = None


def libc() -> Any:
    """The shared CDLL handle (errno kept for check())."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        _libc.prctl.restype = ctypes.c_int
    return _libc


def check(result: int, what: str) -> int:
    """Raise OSError with errno and `what` when a libc call returned < 0."""
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result
