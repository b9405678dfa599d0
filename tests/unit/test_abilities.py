"""users' credentials: can this process switch to a user (root with or without
CAP_SETUID and CAP_SETGID, or a non-root uid)?"""

from __future__ import annotations

import os

from pyinit.core.model import Account
from pyinit.linux.users import (
    CAP_SETGID,
    CAP_SETUID,
    Creds,
    effective_caps,
    missing,
    why_not,
)

ALL = (1 << 41) - 1
NOBODY = Account(65534, 65534, (65534,), "nobody", "/nonexistent")
ROOT = Account(0, 0, (0,), "root", "/root")


def creds(uid: int, gid: int, groups: tuple = (), caps: int = 0) -> Creds:
    return Creds((uid,) * 3, (gid,) * 3, frozenset(groups), caps)


def test_effective_caps_from_proc_status() -> None:
    text = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t00000000000000c0\n"
    assert effective_caps(text) == 0xC0
    assert effective_caps("CapEff:\tzz\n") == 0 and effective_caps("") == 0
    me = Creds.current()
    assert me.uids == os.getresuid() and me.gids == os.getresgid()


def test_root_with_capabilities_can_become_anyone() -> None:
    assert missing(NOBODY, creds(0, 0, (0,), ALL)) == []
    assert why_not(NOBODY, creds(0, 0, (0,), ALL)) is None


def test_root_without_capabilities() -> None:
    none = creds(0, 0, (0,), 0)
    assert missing(NOBODY, none) == ["CAP_SETUID", "CAP_SETGID"]
    assert why_not(NOBODY, none) == (
        "pyinit has no CAP_SETUID or CAP_SETGID (capabilities dropped)"
    )
    only_uid = creds(0, 0, (0,), 1 << CAP_SETUID)
    assert missing(NOBODY, only_uid) == ["CAP_SETGID"]
    assert missing(NOBODY, creds(0, 0, (0,), 1 << CAP_SETUID | 1 << CAP_SETGID)) == []
    assert missing(ROOT, none) == []  # already root, same groups: nothing to switch
    assert missing(ROOT, creds(0, 0, (0, 10), 0)) == ["CAP_SETGID"]  # groups to shed


def test_non_root() -> None:
    me = creds(1000770000, 0, ())
    assert why_not(NOBODY, me) == "pyinit is not root"
    assert missing(Account(1000770000, 0, (0, 5), None, "/"), me) == []  # itself: fine
    assert missing(Account(1000770000, 1000770000, (1000770000,), None, "/"), me) == [
        "CAP_SETGID"
    ]  # another gid needs root
    assert why_not(NOBODY, creds(5, 5, (), 1 << CAP_SETUID | 1 << CAP_SETGID)) is None
