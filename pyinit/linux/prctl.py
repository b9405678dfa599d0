"""The prctl(2) calls pyinit needs, through python-prctl when installed, else ctypes.

python-prctl is an optional extra (it needs libcap headers and a compiler).
Set PYINIT_PRCTL=ctypes to force the ctypes path (the tests run both).
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

from pyinit.linux.libc import libc

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37


def _load_python_prctl() -> Any:
    if os.environ.get("PYINIT_PRCTL") == "ctypes":
        return None
    try:
        import prctl as python_prctl  # type: ignore[import-not-found]
    except ImportError:
        return None
    return python_prctl


_py = _load_python_prctl()


def backend() -> str:
    """Which implementation is in use: 'python-prctl' or 'ctypes'."""
    return "python-prctl" if _py is not None else "ctypes"


def _call(option: int, arg2: int = 0) -> int:
    result = libc().prctl(option, arg2, 0, 0, 0)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


def set_child_subreaper(enabled: bool = True) -> None:
    if _py is not None:
        _py.set_child_subreaper(enabled)
    else:
        _call(PR_SET_CHILD_SUBREAPER, int(enabled))


def get_child_subreaper() -> bool:
    if _py is not None:
        return bool(_py.get_child_subreaper())
    value = ctypes.c_int(0)
    _call(PR_GET_CHILD_SUBREAPER, ctypes.addressof(value))
    return bool(value.value)


def set_pdeathsig(signum: int) -> None:
    if _py is not None:
        try:
            _py.set_pdeathsig(signum)
        except ValueError:  # python-prctl's own check; the same error as ctypes gives
            raise OSError(errno.EINVAL, f"invalid signal {signum}") from None
    else:
        _call(PR_SET_PDEATHSIG, signum)


def set_no_new_privs() -> None:
    if _py is not None:
        _py.set_no_new_privs(True)
    else:
        _call(PR_SET_NO_NEW_PRIVS, 1)


def get_no_new_privs() -> bool:
    return bool(_call(PR_GET_NO_NEW_PRIVS))


def set_name(name: str) -> None:
    """Set this thread's comm name (at most 15 bytes are kept)."""
    if _py is not None:
        _py.set_name(name)
        return
    buf = ctypes.create_string_buffer(name.encode()[:15])
    _call(PR_SET_NAME, ctypes.addressof(buf))
