"""Can this process switch to a user? Root is not enough: under `--cap-drop=ALL`
uid 0 has no CAP_SETUID or CAP_SETGID, and a non-root pyinit (OpenShift's
random uid) has neither.

`missing` is pure (the identity and this process's credentials in, the missing
capabilities out); `Creds.current` reads them (CapEff from /proc/self/status).
Used for service.yaml's `user:` (an error for that service only) and by
`setuser` (one line, exit 111).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from pyinit.core.model import Account

CAP_SETGID = 6
CAP_SETUID = 7


@dataclass(frozen=True)
class Creds:
    uids: tuple[int, int, int]  # real, effective, saved
    gids: tuple[int, int, int]
    groups: frozenset[int]
    caps: int  # the effective set, as a bit mask

    @classmethod
    def current(cls) -> Creds:
        return cls(
            os.getresuid(), os.getresgid(), frozenset(os.getgroups()), effective_caps(_status())
        )

    def has(self, cap: int) -> bool:
        return bool(self.caps >> cap & 1)


def effective_caps(status: str) -> int:
    """CapEff of a /proc/PID/status text (0 when absent)."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            try:
                return int(line.split(":", 1)[1].strip(), 16)
            except ValueError:
                return 0
    return 0


def _status() -> str:
    try:
        with open("/proc/self/status") as fh:
            return fh.read()
    except OSError:
        return ""


def is_already(identity: Account, creds: Creds) -> bool:
    """Nothing to switch: same uid and gid (a non-root process keeps its groups,
    which it could not change anyway)."""
    if creds.uids != (identity.uid,) * 3 or creds.gids != (identity.gid,) * 3:
        return False
    return creds.uids[1] != 0 or creds.groups == frozenset(identity.groups)


def missing(identity: Account, creds: Creds) -> list[str]:
    """The capabilities switching to identity needs and this process lacks."""
    if is_already(identity, creds):
        return []
    out = []
    if creds.uids != (identity.uid,) * 3 and not creds.has(CAP_SETUID):
        out.append("CAP_SETUID")
    if (
        creds.gids != (identity.gid,) * 3 or creds.groups != frozenset(identity.groups)
    ) and not creds.has(CAP_SETGID):
        out.append("CAP_SETGID")
    return out


def why_not(identity: Account, creds: Optional[Creds] = None) -> Optional[str]:
    """None when this process can become identity, else the reason as a phrase:
    `pyinit is not root` or `pyinit has no CAP_SETUID (capabilities dropped)`."""
    creds = creds or Creds.current()
    lacking = missing(identity, creds)
    if not lacking:
        return None
    if creds.uids[1] != 0:
        return "pyinit is not root"
    return f"pyinit has no {' or '.join(lacking)} (capabilities dropped)"
