"""Users and credentials: looking a user up the way phusion's setuser and chpst do,
telling whether this process can switch to it, and dropping to it for good.

`resolve` is pure lookup (passwd/group databases). Root is not enough to switch:
under `--cap-drop=ALL` uid 0 has no CAP_SETUID or CAP_SETGID, and a non-root
pyinit (OpenShift's random uid) has neither; `missing` is pure (the identity and
this process's credentials in, the missing capabilities out) and `Creds.current`
reads them (CapEff from /proc/self/status). Used for service.yaml's `user:` (an
error for that service only) and by `setuser` (one line, exit 111). `drop` makes
the system calls in the order that leaves no way back: supplementary groups, gid,
uid (real, effective and saved), then checks that root cannot be regained.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from typing import Optional

from pyinit.core.bounds import InputError, parse_ident, render
from pyinit.core.model import Account

CAP_SETGID = 6
CAP_SETUID = 7


class PrivilegeError(Exception):
    """A user or group that cannot be used; the message is one line for the user."""


def resolve(spec: str, accounts: Optional[Accounts] = None) -> Account:
    """`USER`, `UID`, `USER:GROUP` or `UID:GID` to an Account. A number is ASCII
    digits from 0 to 2**32-2 (bounds.parse_ident); anything else is a name. Looked
    up in this system's databases, or in `accounts` (an image's files)."""
    db = accounts or SYSTEM
    user, _, group = spec.partition(":")
    if not user:
        raise PrivilegeError(f"no user in {render(spec)}")
    uid = _number(user, "uid")
    entry = db.user(user, uid)
    if entry is None:
        if uid is None:
            raise PrivilegeError(f"unknown user {render(user)}")
        gid, name, home = uid, None, "/"
    else:
        uid, gid, name, home = entry
    if group:
        gid = _group_id(group, db)
    groups = tuple(sorted(set(db.grouplist(name, gid)))) if name else (gid,)
    if group:
        groups = tuple(sorted(set(groups) | {gid}))
    return Account(uid, gid, groups, name, home or "/")


def _number(text: str, what: str) -> int | None:
    """text as a uid/gid, None for a name; PrivilegeError (one line) for digits out
    of range or not 0-9, and for a name no passwd lookup could take."""
    try:
        return parse_ident(text, what)
    except InputError as exc:
        raise PrivilegeError(str(exc)) from None


def _group_id(group: str, db: Accounts) -> int:
    gid = _number(group, "gid")
    found = db.group(group)
    if found is not None:
        return found
    if gid is not None:
        return gid
    raise PrivilegeError(f"unknown group {render(group)}") from None


# (uid, gid, name, home) of a passwd entry
Entry = tuple[int, int, str, str]


class Accounts:
    """The passwd and group databases: this system's (NSS, through pwd and grp)."""

    def user(self, user: str, uid: int | None) -> Entry | None:
        """The entry named user, else the one of uid (when user is a number)."""
        try:
            e = pwd.getpwnam(user)
        except KeyError:
            if uid is None:
                return None
            try:
                e = pwd.getpwuid(uid)
            except KeyError:
                return None
        return e.pw_uid, e.pw_gid, e.pw_name, e.pw_dir

    def group(self, name: str) -> int | None:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return None

    def grouplist(self, name: str, gid: int) -> list[int]:
        return os.getgrouplist(name, gid)


SYSTEM = Accounts()
MAX_DATABASE = 4 * 1024 * 1024  # bytes of an image's /etc/passwd or /etc/group


class AccountFiles(Accounts):
    """An image's /etc/passwd and /etc/group, read as text (`pyinit check --root`):
    the files NSS would read inside the container."""

    def __init__(self, passwd: str, group: str) -> None:
        self.users: dict[str, Entry] = {}
        self.by_uid: dict[int, Entry] = {}
        for f in _records(passwd, 7):
            uid, gid = _id(f[2]), _id(f[3])
            if uid is not None and gid is not None and f[0] not in self.users:
                self.users[f[0]] = (uid, gid, f[0], f[5])
                self.by_uid.setdefault(uid, self.users[f[0]])
        self.groups: dict[str, int] = {}
        self.members: dict[int, set[str]] = {}
        for f in _records(group, 4):
            gid = _id(f[2])
            if gid is not None:
                self.groups.setdefault(f[0], gid)
                self.members.setdefault(gid, set()).update(m for m in f[3].split(",") if m)

    def user(self, user: str, uid: int | None) -> Entry | None:
        found = self.users.get(user)
        return found if found is not None or uid is None else self.by_uid.get(uid)

    def group(self, name: str) -> int | None:
        return self.groups.get(name)

    def grouplist(self, name: str, gid: int) -> list[int]:
        return [gid] + sorted(g for g, names in self.members.items() if name in names)


def _records(text: str, fields: int) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= fields and f[0] and not line.startswith(("#", "+", "-")):
            out.append(f)
    return out


def _id(text: str) -> int | None:
    try:
        return parse_ident(text, "id")
    except InputError:
        return None


def environment(identity: Account, base: dict[str, str], clear: bool) -> dict[str, str]:
    """HOME, USER, LOGNAME and UID from the passwd entry (phusion's setuser sets HOME,
    USER and UID; login sets LOGNAME), over base (or over a minimal env)."""
    env = {k: base[k] for k in ("PATH", "TERM", "LANG") if k in base} if clear else dict(base)
    env["HOME"] = identity.home
    name = identity.name if identity.name is not None else str(identity.uid)
    env["USER"] = env["LOGNAME"] = name
    env["UID"] = str(identity.uid)
    return env


# --- can this process switch? ------------------------------------------------


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


def drop(identity: Account) -> None:
    """setgroups, setresgid, setresuid, in that order; then prove root is gone.
    Nothing at all when the process already is that user (is_already)."""
    if is_already(identity, Creds.current()):
        return
    os.setgroups(list(identity.groups))
    os.setresgid(identity.gid, identity.gid, identity.gid)
    os.setresuid(identity.uid, identity.uid, identity.uid)
    if identity.uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise PrivilegeError("could regain root after dropping privileges; refusing to go on")
