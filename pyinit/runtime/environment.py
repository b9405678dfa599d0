"""The container environment directory, my_init style.

`/etc/container_environment/NAME` holds one variable per file (its content
without one trailing newline). pyinit imports it without overriding what is
already set, then exports the whole environment back as files plus
`<dir>.sh` (shell `export` lines) and `<dir>.json`. Parsing and rendering are
pure (core/envdir.py); this is the reading and writing.
"""

from __future__ import annotations

import grp
import os
import stat
from typing import Mapping, MutableMapping, Optional

from pyinit.core import bounds
from pyinit.core.envdir import (
    SKIPPED,
    Parsed,
    exported,
    file_content,
    merge,
    parse_entries,
    render_json,
    render_sh,
    utf8,
    valid_name,
)
from pyinit.linux import safefs
from pyinit.runtime import log

MAX_FILES = 10_000  # files read from the env dir


def read_dir(path: str) -> Parsed:
    """Read every regular file in path (at most MAX_FILES names of it are listed);
    a missing dir is an empty result. Others may write the dir: it is walked to
    safely and each file opened relative to it, never through a symlink (safefs),
    so its content is the file's own."""
    entries: dict[str, bytes] = {}
    out = Parsed()
    try:
        dir_fd = safefs.open_dir(path)
    except FileNotFoundError:
        return out
    except OSError as exc:
        out.problems.append(f"cannot read {path}: {exc.strerror}")
        return out
    try:
        try:
            names, more = safefs.listdir(dir_fd, MAX_FILES)
        except OSError as exc:
            out.problems.append(f"cannot read {path}: {exc.strerror}")
            names, more = [], False
        if more:
            out.problems.append(f"more than {MAX_FILES} names: only the first {MAX_FILES} "
                                "listed are read")
        for fname in sorted(names):
            full = os.path.join(path, fname)
            try:
                st = os.stat(fname, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode) or not (stat.S_ISREG(st.st_mode) or
                                                    stat.S_ISLNK(st.st_mode)):
                    continue  # subdirectories, FIFOs, sockets: not variables
                fd = safefs.open_file(dir_fd, fname, os.O_RDONLY)
                entries[fname] = bounds.read_fd(fd, bounds.MAX_ARG_STRLEN, full)
            except bounds.InputError:
                out.problems.append(
                    f"skipping {bounds.clip(fname, 64)}: its value is larger than "
                    f"{bounds.MAX_ARG_STRLEN // 1024} KiB, more than the kernel passes "
                    "to a program in one variable")
            except OSError as exc:
                out.problems.append(f"cannot read {bounds.clip(full, 300)}: {exc.strerror}")
    finally:
        os.close(dir_fd)
    parsed = parse_entries(entries)
    parsed.problems[:0] = out.problems
    return parsed


def import_dir(path: str, override: bool) -> None:
    """Merge the directory into os.environ, reporting bad entries as warnings.

    The directory is re-imported after every startup script; a bad entry is
    reported once, not once per import."""
    parsed = read_dir(path)
    for problem in parsed.problems:
        log.once(log.WARNING, f"{path}: {problem}")
    merged = merge(os.environ, parsed.values, override)
    fits = bounds.exec_env(merged, keep=os.environ)  # what every execve can take
    for problem in fits.too_long:
        log.once(log.WARNING, f"{path}: {problem}")
    for problem in fits.too_much:
        log.once(log.ERROR, problem)
    for key in merged:
        if key not in fits.env and key in os.environ:
            del os.environ[key]
    for key, value in fits.env.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _modes() -> tuple[int, int, int, int]:
    """(dir, variable files, dumps, the dumps' gid), as phusion's image has them: the
    dir 0700 and its files private to pyinit's user; the dumps (.sh, .json) 0640
    for group docker_env when that group exists, else 0600. phusion's variable
    files are 0644, unreadable through the 0700 dir; pyinit's are 0600, so a
    widened dir still shows no secret (docs/security.md)."""
    try:
        gid = grp.getgrnam("docker_env").gr_gid
    except KeyError:
        return PRIVATE_MODES
    return 0o700, 0o600, 0o640, gid


PRIVATE_MODES = (0o700, 0o600, 0o600, -1)


def _write_atomic(dir_fd: int, name: str, text: str, mode: int, gid: int) -> None:
    """Write name in the directory dir_fd through a new temporary file (O_EXCL,
    never a link), given its group and mode on its own fd, then renamed over name.
    When the group is refused, keep it private (mode's owner bits), with one warning."""
    tmp = f".pyinit-{os.urandom(6).hex()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if gid >= 0:
                try:
                    os.fchown(fh.fileno(), -1, gid)
                except PermissionError as exc:
                    log.once(log.WARNING, "cannot give the environment files to group "
                             f"docker_env ({exc.strerror}; needs CAP_CHOWN): they are readable "
                             f"by uid {os.geteuid()} only")
                    mode &= 0o700
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


def write_dump(path: str, env: Mapping[str, str]) -> None:
    """Write env to path/NAME, path.sh and path.json; OSError if it cannot.

    Both directories are walked to safely (safefs: no symlink another user could
    have put there), and the env dir's mode changed on its own fd. When the dumps
    cannot be given to group docker_env (no CAP_CHOWN, or not a member), they are
    written for pyinit's user only, with one warning."""
    dmode, fmode, dump_mode, gid = _modes()
    base = path.rstrip("/") or "/"
    dir_fd = safefs.open_dir(path, create=0o700)
    try:
        _set_dir_mode(dir_fd, dmode)
        values = exported(env)
        for key, value in values.items():
            _write_atomic(dir_fd, key, file_content(value), fmode, -1)
    finally:
        os.close(dir_fd)
    parent_fd = safefs.open_dir(os.path.dirname(base) or ".")
    try:
        name = os.path.basename(base)
        _write_atomic(parent_fd, name + ".sh", render_sh(values), dump_mode, gid)
        _write_atomic(parent_fd, name + ".json", render_json(values), dump_mode, gid)
    finally:
        os.close(parent_fd)


def _set_dir_mode(dir_fd: int, dmode: int) -> None:
    """Give the env dir its mode (through its fd); a dir someone else owns is left alone."""
    try:
        safefs.set_mode(dir_fd, dmode)
    except PermissionError:
        if os.fstat(dir_fd).st_uid == os.geteuid():
            raise
        # a shared dir someone else owns (OpenShift: group 0 may write): files stay 0600


def _warn_bad_values(env: Mapping[str, str]) -> None:
    for key in sorted(env):
        if key not in SKIPPED and valid_name(key) and not utf8(env[key]):
            log.once(log.WARNING, f"not exporting {key}: its value is not valid UTF-8")


def export_dir(path: str, env: Mapping[str, str]) -> bool:
    """Write env to path/NAME, path.sh and path.json; warn and return False on failure."""
    _warn_bad_values(env)
    try:
        write_dump(path, env)
    except OSError as exc:
        where = exc.filename or path
        log.warning(f"cannot export the environment to {where}: {exc.strerror}; carrying on")
        return False
    return True


ENV_DIR_VAR = "PYINIT_ENV_DIR"


class Exporter:
    """Where pyinit's environment dump goes: the env dir, else (read-only, not
    pyinit's) the run dir's `container_environment`. Each switch or failure is
    one warning for the whole run. `PYINIT_ENV_DIR` is set to the dir in use, so
    startup scripts write their variables where pyinit reads them back."""

    def __init__(self, env_dir: str, fallback: Optional[str]) -> None:
        self.env_dir = env_dir
        self.places = [env_dir] + ([fallback] if fallback else [])
        self.failures: list[str] = []  # "PATH (why)" of places given up on
        self.written: Optional[str] = None  # where the last export went

    @property
    def current(self) -> str:
        """Where imports read the dump back from: where it was written last, else
        the env dir."""
        return self.written or self.env_dir

    def export(self, env: MutableMapping[str, str]) -> Optional[str]:
        """Write the dump to the first place that takes it; that place, or None."""
        _warn_bad_values(env)
        while self.places:
            place = self.places[0]
            env[ENV_DIR_VAR] = place
            try:
                write_dump(place, env)
            except OSError as exc:
                why = f"{place} ({exc.strerror or exc})"
                if len(self.places) == 1:  # the last place: warn, try it again next time
                    log.once(log.WARNING, "cannot export the environment to "
                             f"{' or '.join(self.failures + [why])}; carrying on")
                    self.written = None
                    env[ENV_DIR_VAR] = self.env_dir
                    return None
                self.failures.append(why)
                self.places.pop(0)
                continue
            if self.failures:
                log.once(log.WARNING, "cannot write the container environment to "
                         f"{self.failures[0]}: writing it to {place} instead")
            self.written = place
            return place
        return None
