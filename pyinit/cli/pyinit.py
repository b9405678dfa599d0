"""The `pyinit` command: parse flags, run the boot sequence, exit with its code."""

from __future__ import annotations

import os
import sys
from typing import Callable

from pyinit.cli import init_command
from pyinit.cli.stdio import guarded

# argv[0]'s basename -> the module that takes that tool's command line
PERSONALITIES = {"tini": "pyinit.cli.tini", "dumb-init": "pyinit.cli.dumb_init",
                 "my_init": "pyinit.cli.my_init", "supervisord": "pyinit.cli.supervisord",
                 "s6-init": "pyinit.cli.s6_init"}
# The names the same tools are installed under: Docker's `--init` binary, tini's release
# assets (tini-ARCH, tini-static, tini-static-ARCH, muslc builds; ci/run_build.sh) and
# Debian's tini-static; dumb-init's release assets (dumb-init_VERSION_ARCH).
TINI_ARCHES = frozenset({"amd64", "arm64", "armel", "armhf", "i386", "mips64el", "ppc64el",
                         "ppc64le", "s390x", "riscv64"})
ALIASES = {"docker-init": "tini", "tini-static": "tini"}
def personality(name: str) -> str | None:
    """The personality a program name (argv[0]'s basename) asks for, or None."""
    name = ALIASES.get(name, name)
    if name in PERSONALITIES:
        return name
    for prefix in ("tini-static-", "tini-"):
        if name.startswith(prefix):
            arch = name[len(prefix):]
            arch = arch[len("muslc-"):] if arch.startswith("muslc-") else arch
            return "tini" if arch in TINI_ARCHES else None
    if name.startswith("dumb-init_"):  # dumb-init_1.2.5_x86_64
        version, _, arch = name[len("dumb-init_"):].partition("_")
        if version.replace(".", "").isdigit() and arch and arch.replace("_", "").isalnum():
            return "dumb-init"
    return None


@guarded("pyinit")  # --help, --version and usage errors on a broken or full stdout
def main(argv: list[str] | None = None, signalled_exit_code: int | None = None,
         my_init_help: Callable[[], str] | None = None) -> None:
    """Run pyinit (or, by argv[0]'s name, a personality); never returns. A link under
    another command's name never gets here (pyinit.entry runs that command)."""
    if argv is None:
        # s6-overlay's entrypoint is /init exactly: another `init` (/sbin/init) is pyinit
        chosen = "s6-init" if sys.argv[0] == "/init" else personality(os.path.basename(sys.argv[0]))
        if chosen is not None:
            import importlib

            importlib.import_module(PERSONALITIES[chosen]).main()
            return
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["check"] and my_init_help is None:  # `pyinit -- check` runs ./check
        sys.exit(check(args[1:]))
    init_command.run(args, signalled_exit_code, my_init_help)


def check(args: list[str]) -> int:
    """`pyinit check`: a command, not an init: the signal mask it was started with
    comes back first (pyinit.entry blocked the handled signals)."""
    import signal

    from pyinit.cli import check as command
    from pyinit.linux import signals

    if signals.started_with is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, signals.started_with)
    return command.main(args)
