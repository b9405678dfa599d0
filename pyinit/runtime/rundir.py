"""Where pyinit keeps what it writes at run time, and how svctl finds it again.

The run dir holds the control and sd_notify sockets, the container environment
dump when the env dir is read-only, and runit's `supervise/` dirs of service
dirs that are read-only. Set by `--run-dir` or `PYINIT_RUN_DIR`, it is used as
given. Otherwise it is the first of these pyinit can write to:

1. `/run/pyinit`
2. `$XDG_RUNTIME_DIR/pyinit` (when that variable holds an absolute path)
3. `/tmp/pyinit-UID`: private, created mode 0700 and refused when another uid
   owns it (or it is not a real directory)

Whichever it is, it is reached without following a link another user could
have put there, and refused when another user owns it; group and other write
access is taken off. So only root (or pyinit's uid) can replace what is in it.
pyinit then holds it open (`hold`) and reaches its sockets through that fd
(`at`): whoever can write its parent may move it, but not redirect pyinit.

pyinit exports its choice as `PYINIT_RUN_DIR`, so services and scripts find it.
svctl started from elsewhere (`docker exec`) tries the same places, for its own
uid and then for PID 1's, and takes the first that holds a control socket.

`candidates`, `private_problem` and `choose` decide (testable without a file
system: `choose` takes the prepare step as an argument); `prepare` and `find`
are the thin I/O.
"""

from __future__ import annotations

import errno
import os
import stat

from pyinit.core.protocol import SOCKET_NAME
from pyinit.linux import safefs

TYPE_CHECKING = False  # svctl finds its run dir here: no typing, no dataclasses
if TYPE_CHECKING:
    from typing import Callable, Mapping, Optional

ENV_VAR = "PYINIT_RUN_DIR"
SHARED = "/run/pyinit"


class Candidate:
    """A place for the run dir (a plain class: dataclasses cost svctl's start)."""

    __slots__ = ("path", "private")

    def __init__(self, path: str, private: bool = False) -> None:
        self.path = path
        self.private = private  # under /tmp: must be ours alone

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candidate):
            return NotImplemented
        return (self.path, self.private) == (other.path, other.private)

    def __hash__(self) -> int:
        return hash((self.path, self.private))

    def __repr__(self) -> str:
        return f"Candidate(path={self.path!r}, private={self.private!r})"


class Choice:
    """The run dir chosen (path None: no place pyinit can write to), and the places
    refused before it as (path, why)."""

    def __init__(self, path: Optional[str], refused: Optional[list[tuple[str, str]]] = None):
        self.path = path
        self.refused = [] if refused is None else refused


def candidates(environ: Mapping[str, str], uid: int) -> list[Candidate]:
    """The places tried, in order, when no run dir is set."""
    out = [Candidate(SHARED)]
    xdg = environ.get("XDG_RUNTIME_DIR", "")
    if xdg.startswith("/"):
        out.append(Candidate(os.path.join(xdg, "pyinit")))
    out.append(Candidate(private_path(uid), private=True))
    return out


def private_path(uid: int) -> str:
    return f"/tmp/pyinit-{uid}"


def private_problem(mode: int, owner: int, uid: int) -> Optional[str]:
    """Why an existing /tmp/pyinit-UID (lstat's mode and owner) must not be used."""
    if stat.S_ISLNK(mode):
        return "is a symlink"
    if not stat.S_ISDIR(mode):
        return "is not a directory"
    if owner != uid:
        return f"is owned by uid {owner}, not {uid}"
    return None


def choose(
    explicit: Optional[str],
    environ: Mapping[str, str],
    uid: int,
    prep: Callable[[Candidate, int], Optional[str]],
) -> Choice:
    """The explicit dir (tried alone), else the first candidate prep accepts."""
    tried = [Candidate(explicit)] if explicit else candidates(environ, uid)
    choice = Choice(None)
    for cand in tried:
        problem = prep(cand, uid)
        if problem is None:
            choice.path = cand.path
            return choice
        choice.refused.append((cand.path, problem))
    return choice


def describe(refused: list[tuple[str, str]]) -> str:
    """`/run/pyinit: Permission denied; /tmp/pyinit-5: is owned by uid 0, not 5`
    (each path cut to 300 characters: $XDG_RUNTIME_DIR may be 128 KiB long)."""
    from pyinit.core.bounds import clip

    return "; ".join(f"{clip(path, 300)}: {why}" for path, why in refused)


# --- I/O ---------------------------------------------------------------------


def shared_problem(dir_st: os.stat_result, uid: int) -> Optional[str]:
    """Why a run dir (its fstat record) would let another user replace what pyinit
    keeps there (sockets, the env dump, supervise/ dirs); None if not. (Whoever can
    write its parent may move it away: pyinit holds it by fd, see `hold`.)"""
    trusted = (0, uid)
    if not stat.S_ISDIR(dir_st.st_mode):
        return "is not a directory"
    if dir_st.st_uid not in trusted:
        return f"is owned by uid {dir_st.st_uid}"
    return None


def prepare(cand: Candidate, uid: int) -> Optional[str]:
    """Create cand if missing; None when pyinit can use it, else why not (one phrase).

    Walked to without following a link another user could have put there
    (safefs); refused when another user owns it; write access for group and
    others is taken off (through its fd: safefs.set_mode)."""
    try:
        if cand.private:
            os.mkdir(cand.path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        if cand.private:
            st = os.lstat(cand.path)
            problem = private_problem(st.st_mode, st.st_uid, uid)
            if problem is not None:
                return problem
        fd = safefs.open_dir(cand.path, create=None if cand.private else 0o755)
    except OSError as exc:
        if exc.errno == errno.ENOTDIR and os.path.lexists(cand.path):
            return "is not a directory"
        return exc.strerror or str(exc)
    try:
        st = os.fstat(fd)
        problem = shared_problem(st, uid)
        if problem is not None:
            return problem
        tighten = 0o077 if cand.private else 0o022
        if stat.S_IMODE(st.st_mode) & tighten:
            try:
                safefs.set_mode(fd, stat.S_IMODE(st.st_mode) & ~tighten)
            except OSError as exc:
                return f"is writable by other users ({exc.strerror or exc})"
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(fd)
    if not os.access(cand.path, os.W_OK | os.X_OK):
        return "Read-only file system" if _read_only(cand.path) else "Permission denied"
    return None


def hold(path: str, uid: int) -> int:
    """An fd (O_PATH) of the chosen run dir, checked again once open. pyinit binds,
    chmods and removes its sockets through it (`at`), so a run dir moved away by
    whoever can write its parent takes pyinit's names with it."""
    fd = safefs.open_dir(path)
    st = os.fstat(fd)
    if st.st_uid not in (0, uid) or safefs.others_may_write(st, (0, uid)):
        os.close(fd)
        raise OSError(errno.EPERM, "was replaced while pyinit checked it", path)
    return fd


def at(dir_fd: Optional[int], directory: str, name: str) -> str:
    """A path to name in the run dir that does not go through the run dir's path
    (/proc/self/fd/N/NAME, when /proc is mounted), else directory/name."""
    if dir_fd is not None and os.path.isdir(f"/proc/self/fd/{dir_fd}"):
        return f"/proc/self/fd/{dir_fd}/{name}"
    return os.path.join(directory, name)


def remove_stale(path: str) -> None:
    """Remove a socket left at path (by an earlier run) before binding there; refuse
    anything else (OSError EEXIST): a file in a socket's place is not pyinit's to
    remove. unlink never follows a link."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, "exists and is not a socket")
    os.unlink(path)


def _read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def pid1_uid() -> Optional[int]:
    """The uid PID 1 runs as (in a container: pyinit's), if /proc tells."""
    try:
        return os.stat("/proc/1").st_uid
    except OSError:
        return None


def find(environ: Mapping[str, str]) -> str:
    """svctl's run dir: PYINIT_RUN_DIR, else the first candidate (for svctl's uid,
    then PID 1's) holding a control socket, else /run/pyinit."""
    if environ.get(ENV_VAR):
        return environ[ENV_VAR]
    uids = [os.geteuid()]
    other = pid1_uid()
    if other is not None and other not in uids:
        uids.append(other)
    seen: set[str] = set()
    for uid in uids:
        for cand in candidates(environ, uid):
            if cand.path in seen:
                continue
            seen.add(cand.path)
            if cand.private:
                try:
                    st = os.lstat(cand.path)
                except OSError:
                    continue
                if private_problem(st.st_mode, st.st_uid, uid) is not None:
                    continue
            try:
                if stat.S_ISSOCK(os.stat(os.path.join(cand.path, SOCKET_NAME)).st_mode):
                    return cand.path
            except OSError:
                continue
    return SHARED
