"""`pyinit-env COMMAND [ARGS...]`: run COMMAND with the container environment.

s6-overlay's `with-contenv`: the variables saved in the env dir (by pyinit at
boot and by startup scripts since) are laid over the current environment, then
COMMAND is exec'd. Useful in `run` scripts and `svctl`-started shells.
"""

from __future__ import annotations

import os
import sys

from pyinit.cli.stdio import guarded

USAGE = "usage: pyinit-env [--env-dir DIR] COMMAND [ARGS...]"
DEFAULT_ENV_DIR = "/etc/container_environment"
S6_ENV_DIR = "/run/s6/container_environment"  # as `with-contenv`, when /init made it
CANNOT_READ = 111  # as s6's tools when a system call fails


def _unreadable(path: str) -> bool:
    """A dir that exists but this user may not read (missing: False, no variables)."""
    try:
        os.stat(path)
    except PermissionError:
        return True
    except OSError:
        return False
    return os.path.isdir(path) and not os.access(path, os.R_OK | os.X_OK)


@guarded("pyinit-env")
def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    env_dir = os.environ.get("PYINIT_ENV_DIR") or DEFAULT_ENV_DIR
    if os.path.basename(sys.argv[0]) == "with-contenv" and not os.environ.get("PYINIT_ENV_DIR"):
        env_dir = S6_ENV_DIR if os.path.isdir(S6_ENV_DIR) else DEFAULT_ENV_DIR
    if args[:1] == ["--version"]:
        from pyinit import __version__

        print(f"pyinit-env (pyinit) {__version__}")
        sys.exit(0)
    if args[:1] == ["--env-dir"]:
        if len(args) < 2:
            print(f"pyinit-env: --env-dir needs a DIR\n{USAGE}", file=sys.stderr)
            sys.exit(2)
        env_dir, args = args[1], args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        more = (
            ""
            if not args
            else (
                "\nRuns COMMAND with the container environment dir's "
                "variables. Documentation: /usr/share/doc/pyinit-pid1/"
                "docs/pyinit.md (docs/pyinit.md in the source)."
            )
        )
        print(USAGE + more, file=sys.stderr if not args else sys.stdout)
        sys.exit(2 if not args else 0)
    from pyinit.core import bounds, envdir
    from pyinit.linux import signals
    from pyinit.runtime import environment, spawn

    if _unreadable(env_dir):
        # pyinit keeps it root's (0700: variables may be secrets): another user's
        # with-contenv stops here rather than run without what the dir holds
        print(f"pyinit-env: error: cannot read {bounds.render(env_dir)}: permission denied "
              f"(uid {os.getuid()}; it is root's alone: read it before dropping privileges)",
              file=sys.stderr)  # fmt: skip
        sys.exit(CANNOT_READ)
    parsed = environment.read_dir(env_dir)
    for problem in parsed.problems:
        print(f"pyinit-env: warning: {env_dir}: {problem}", file=sys.stderr)
    fits = bounds.exec_env(envdir.merge(os.environ, parsed.values, True))
    for problem in fits.too_long + fits.too_much:
        print(f"pyinit-env: warning: {problem}", file=sys.stderr)
    env = fits.env
    try:
        program = spawn.resolve(args[0], env)
    except spawn.SpawnError as exc:
        print(f"pyinit-env: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    # Python's ignored SIGPIPE (and SIGXFSZ) must not pass exec: the dispositions
    # and mask this tool was started with, as every child of pyinit gets them
    signals.Inherited.capture().restore_in_child()
    try:
        os.execve(program, args, env)
    except OSError as exc:
        print(f"pyinit-env: cannot run {args[0]}: {exc.strerror}", file=sys.stderr)
        sys.exit(spawn.NOT_EXECUTABLE)


if __name__ == "__main__":
    main()
