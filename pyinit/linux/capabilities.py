"""Dropping Linux capabilities: bounding set, ambient set, and the process's own sets.

Uses python-prctl when installed (its capbset/cap_* objects), ctypes otherwise;
the ambient set always goes through ctypes (python-prctl has no call for it).
Set PYINIT_PRCTL=ctypes to force ctypes.
"""

from __future__ import annotations

import ctypes
import struct

from pyinit.linux import prctl
from pyinit.linux.libc import check, libc

PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_V3 = 0x20080522


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 40


def drop_bounding_set() -> None:
    """Clear the bounding set (needs CAP_SETPCAP, so call it before dropping root)."""
    py = prctl._py
    if py is not None:
        py.capbset.limit()
        return
    for cap in range(last_cap() + 1):
        check(libc().prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"PR_CAPBSET_DROP {cap}")


def clear_ambient() -> None:
    result = libc().prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if result < 0 and ctypes.get_errno() != 22:  # EINVAL: kernel without ambient caps
        check(result, "PR_CAP_AMBIENT_CLEAR_ALL")


def clear_process_sets() -> None:
    """Empty the effective, permitted and inheritable sets (capset)."""
    py = prctl._py
    if py is not None:
        py.cap_effective.limit()
        py.cap_inheritable.limit()
        py.cap_permitted.limit()
        return
    header = ctypes.create_string_buffer(struct.pack("Ii", _CAP_V3, 0))
    data = ctypes.create_string_buffer(24)  # two zeroed {effective, permitted, inheritable}
    check(libc().capset(header, data), "capset")


def drop_all() -> None:
    """Bounding and ambient sets first (while still privileged), then the rest."""
    drop_bounding_set()
    clear_ambient()
    clear_process_sets()
