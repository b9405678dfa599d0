"""`setuser USER COMMAND [ARGS...]`: run COMMAND as USER, like phusion's setuser and chpst -u.

Exit codes as chpst: 111 for a failure before exec, 127 COMMAND not found,
126 COMMAND not executable; a usage error is 100.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, NoReturn

from pyinit.cli.stdio import guarded

if TYPE_CHECKING:
    from pyinit.linux.users import Identity

USAGE = """usage: setuser [--no-new-privs] [--drop-caps] [--clear-env]
               USER[:GROUP] COMMAND [ARGS...]

Runs COMMAND as USER (a name or uid; GROUP a name or gid): supplementary groups
from the group database, then gid, then uid; HOME, USER, LOGNAME and UID from
the passwd entry; then COMMAND, looked up on PATH as USER (execvp's rules).
--no-new-privs: setuid binaries cannot escalate. --drop-caps: clear every
capability set. --clear-env: keep only PATH, TERM, LANG (plus HOME, USER,
LOGNAME, UID). Documentation: `man setuser`."""

FAILURE = 111
USAGE_ERROR = 100


def fail(text: str, code: int = FAILURE) -> NoReturn:
    sys.stderr.write(f"setuser: error: {text}\n")
    sys.exit(code)


@guarded("setuser")
def main(argv: list[str] | None = None) -> None:
    """Parse, look USER up and check pyinit can become it, drop to it, exec COMMAND."""
    options, spec, command = parse(list(sys.argv[1:] if argv is None else argv))
    from pyinit.linux import signals
    from pyinit.linux import users as privileges
    from pyinit.runtime import spawn

    identity = lookup(spec)
    env = privileges.environment(identity, dict(os.environ), clear=options["--clear-env"])
    try:  # as root, who sees more than USER: not found here is not found for USER
        spawn.resolve(command[0], env)
    except spawn.SpawnError as exc:
        fail(str(exc), exc.exit_code)
    become(identity, spec, options)
    # Python's ignored SIGPIPE (and SIGXFSZ) must not pass exec: the dispositions
    # and mask this tool was started with, as every child of pyinit gets them
    signals.Inherited.capture().restore_in_child()
    try:  # looked up on PATH as USER, with execvp's rules (as phusion's setuser, chpst)
        spawn.exec_path(command[0], command, env)
    except OSError as exc:
        fail(
            f"cannot run {command[0]}: {exc.strerror}",
            spawn.NOT_FOUND if isinstance(exc, FileNotFoundError) else spawn.NOT_EXECUTABLE,
        )


def parse(args: list[str]) -> tuple[dict[str, bool], str, list[str]]:
    """The options, USER[:GROUP] and COMMAND; --help and usage errors exit here."""
    options = {
        "--no-new-privs": False,
        "--drop-caps": False,
        "--clear-env": False,
        "--keep-env": False,
    }
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--":
            break
        if opt in ("--help",):
            print(USAGE)
            sys.exit(0)
        if opt == "--version":
            from pyinit import __version__

            print(f"setuser (pyinit) {__version__}")
            sys.exit(0)
        if opt not in options:
            sys.stderr.write(f"setuser: error: unknown option {opt}\n{USAGE}\n")
            sys.exit(USAGE_ERROR)
        options[opt] = True
    if len(args) < 2:
        sys.stderr.write(f"{USAGE}\n")
        sys.exit(USAGE_ERROR)
    return options, args[0], args[1:]


def lookup(spec: str) -> Identity:
    """USER[:GROUP] as an identity this process can switch to, or fail (111)."""
    from pyinit.linux import users as privileges

    try:
        identity = privileges.resolve(spec)
    except privileges.PrivilegeError as exc:
        fail(str(exc))
    lacking = privileges.missing(identity, privileges.Creds.current())
    if lacking and os.geteuid() != 0:
        fail(f"must be run as root to become {spec} (running as uid {os.geteuid()})")
    if lacking:
        fail(f"needs {' and '.join(lacking)} to become {spec}, and has not (capabilities dropped)")
    return identity


def become(identity: Identity, spec: str, options: dict[str, bool]) -> None:
    """Drop to identity for good (capabilities and no_new_privs as asked), or fail."""
    from pyinit.linux import users as privileges

    try:
        if options["--drop-caps"]:
            from pyinit.linux import capabilities

            capabilities.drop_bounding_set()
            capabilities.clear_ambient()
        privileges.drop(identity)
        if options["--drop-caps"]:
            capabilities.clear_process_sets()
        if options["--no-new-privs"]:
            from pyinit.linux import prctl

            prctl.set_no_new_privs()
    except privileges.PrivilegeError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot become {spec}: {exc.strerror or exc}")
