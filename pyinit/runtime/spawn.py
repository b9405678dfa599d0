"""fork/exec with everything a supervised process needs, and nothing inherited by accident.

The parent checks the program first (so "not found" is reported as 127 and
"not executable" as 126 without forking); the child sets up its session or
process group, the terminal, its fds and cwd, drops privileges (pre_exec),
restores the signal state pyinit inherited, then looks the program up on PATH
again, as the user it now is, with execvp's rules (exec_path). A child that
fails after fork writes one line and exits 126/127, like a shell.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import Callable, Mapping, NoReturn, Sequence

from pyinit.linux.signals import Inherited

NOT_FOUND = 127
NOT_EXECUTABLE = 126


class SpawnError(Exception):
    """The program cannot be started; exit_code is 127 (not found) or 126."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Spec:
    """What to run and how."""

    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    session: bool = False  # setsid(): a new session and process group
    pgroup: bool = False  # setpgid(0, 0): a new process group only
    foreground: bool = False  # make the new group the terminal's foreground group
    stdin: int | None = None  # fds to dup2 onto 0/1/2 (None: inherit)
    stdout: int | None = None
    stderr: int | None = None
    fds: dict[int, int] = field(default_factory=dict)  # more fds: child's fd -> pyinit's fd
    pre_exec: Callable[[], None] | None = None  # runs in the child last (privilege drop)


def resolve(program: str, env: Mapping[str, str] | None, cwd: str | None = None) -> str:
    """The path execve will run, or SpawnError with 127/126 and a clear message."""
    if "/" in program:
        path = program if cwd is None or os.path.isabs(program) else os.path.join(cwd, program)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise SpawnError(f"{program}: not found", NOT_FOUND) from None
        except OSError as exc:
            raise SpawnError(f"{program}: {exc.strerror}", NOT_EXECUTABLE) from None
        if stat.S_ISDIR(st.st_mode):
            raise SpawnError(f"{program}: is a directory", NOT_EXECUTABLE)
        if not os.access(path, os.X_OK):
            raise SpawnError(f"{program}: permission denied (not executable)", NOT_EXECUTABLE)
        return program
    import shutil  # only for a program looked up on PATH (bz2, lzma, zlib come with it)

    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(program, path=search)
    if found is None:
        raise SpawnError(f"{program}: command not found", NOT_FOUND)
    return found


# execvp(3) goes on to the next PATH entry after these errors (EACCES too, but it
# remembers that one and reports it if nothing else is found).
_SEARCH_ON = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ESTALE, errno.ENODEV, errno.ETIMEDOUT})


def exec_path(program: str, argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """execve program, looked up on env's PATH as execvp(3) does, by the caller's own
    rights: a PATH entry the caller may not search or run (EACCES) is skipped and the
    search goes on; EACCES is raised if nothing else was found, else ENOENT. A name
    holding a '/' is run as it is. Run it after dropping privileges, so a PATH entry
    only root can read cannot win (setuser, services with `user:`)."""
    if "/" in program:
        os.execve(program, list(argv), env)
    denied: OSError | None = None
    for directory in env.get("PATH", os.defpath).split(":"):
        try:
            os.execve(os.path.join(directory, program), list(argv), env)
        except OSError as exc:
            if exc.errno == errno.EACCES:
                denied = denied or exc
            elif exc.errno not in _SEARCH_ON:
                raise
    if denied is not None:
        raise denied
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def leave_cwd() -> str | None:
    """What starts in the original cwd has started: the init moves to "/" (as
    dumb-init does), so it never pins that directory (a volume stays unmountable).
    The reason it could not, or None."""
    try:
        os.chdir("/")
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def spawn(spec: Spec, inherited: Inherited) -> int:
    """Fork and exec spec; returns the child's pid. Raises SpawnError before forking."""
    env = dict(os.environ if spec.env is None else spec.env)
    resolve(spec.argv[0], env, spec.cwd)  # as pyinit: who cannot find it, cannot run it
    try:
        pid = os.fork()
    except OSError as exc:  # EAGAIN under a pids limit, ENOMEM
        raise SpawnError(f"{spec.argv[0]}: cannot fork: {exc.strerror}", NOT_EXECUTABLE) from None
    if pid == 0:  # pragma: no cover - runs in the child, checked by integration tests
        _child(spec, env, inherited)
    return pid


def _child(spec: Spec, env: dict[str, str], inherited: Inherited) -> None:
    code = NOT_EXECUTABLE
    try:
        if spec.session:
            os.setsid()
        elif spec.pgroup:
            os.setpgid(0, 0)
        if spec.foreground:
            _take_terminal()
        for target, fd in ((0, spec.stdin), (1, spec.stdout), (2, spec.stderr)):
            if fd is not None and fd != target:
                os.dup2(fd, target)
        for target, fd in spec.fds.items():
            if fd == target:
                os.set_inheritable(fd, True)
            else:
                os.dup2(fd, target)
        if spec.cwd is not None:
            os.chdir(spec.cwd)
        if spec.pre_exec is not None:
            spec.pre_exec()
        inherited.restore_in_child()
        exec_path(spec.argv[0], spec.argv, env)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            code = NOT_FOUND
        reason = "no interpreter (missing #! line?)" if exc.errno == errno.ENOEXEC else exc.strerror
        _say(f"pyinit: error: cannot run {spec.argv[0]}: {reason}\n")
    except BaseException as exc:  # noqa: BLE001 - the child must never return into pyinit
        _say(f"pyinit: error: cannot run {spec.argv[0]}: {exc}\n")
    os._exit(code)


def _take_terminal() -> None:
    """Become the foreground process group of the controlling terminal, if stdin is one."""
    try:
        if os.isatty(0):
            os.tcsetpgrp(0, os.getpgrp())  # SIGTTOU is still blocked here
    except OSError:
        pass


def _say(text: str) -> None:
    try:
        os.write(2, text.encode("utf-8", "backslashreplace"))
    except OSError:
        pass
