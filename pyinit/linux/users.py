"""Looking up a user the way phusion's setuser and chpst do, and dropping to it for good.

`resolve` is pure lookup (passwd/group databases); `drop` makes the system calls
in the order that leaves no way back: supplementary groups, gid, uid (real,
effective and saved), then checks that root cannot be regained.
"""

from __future__ import annotations

import grp
import os
import pwd

from pyinit.core.bounds import InputError, parse_ident, render
from pyinit.core.model import Account


class PrivilegeError(Exception):
    """A user or group that cannot be used; the message is one line for the user."""


def resolve(spec: str) -> Account:
    """`USER`, `UID`, `USER:GROUP` or `UID:GID` to an Account. A number is ASCII
    digits from 0 to 2**32-2 (bounds.parse_ident); anything else is a name."""
    user, _, group = spec.partition(":")
    if not user:
        raise PrivilegeError(f"no user in {render(spec)}")
    uid = _number(user, "uid")
    entry = _passwd(user, uid)
    if entry is None:
        if uid is None:
            raise PrivilegeError(f"unknown user {render(user)}")
        gid, name, home = uid, None, "/"
    else:
        uid, gid, name, home = entry.pw_uid, entry.pw_gid, entry.pw_name, entry.pw_dir
    if group:
        gid = _group_id(group)
    groups = tuple(sorted(set(os.getgrouplist(name, gid)))) if name else (gid,)
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


def _passwd(user: str, uid: int | None) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        pass
    if uid is not None:
        try:
            return pwd.getpwuid(uid)
        except KeyError:
            return None
    return None


def _group_id(group: str) -> int:
    gid = _number(group, "gid")
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if gid is not None:
            return gid
        raise PrivilegeError(f"unknown group {render(group)}") from None


def environment(identity: Account, base: dict[str, str], clear: bool) -> dict[str, str]:
    """HOME, USER, LOGNAME and UID from the passwd entry (phusion's setuser sets HOME,
    USER and UID; login sets LOGNAME), over base (or over a minimal env)."""
    env = {k: base[k] for k in ("PATH", "TERM", "LANG") if k in base} if clear else dict(base)
    env["HOME"] = identity.home
    name = identity.name if identity.name is not None else str(identity.uid)
    env["USER"] = env["LOGNAME"] = name
    env["UID"] = str(identity.uid)
    return env


def drop(identity: Account) -> None:
    """setgroups, setresgid, setresuid, in that order; then prove root is gone.
    Nothing at all when the process already is that user (abilities.is_already)."""
    from pyinit.linux import abilities

    if abilities.is_already(identity, abilities.Creds.current()):
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
