"""pyinit as `my_init`: phusion baseimage's command line, with its exit code quirk kept.

Everything my_init does, pyinit does already under the same flags and
variables (--skip-startup-files, --skip-runit, --no-kill-all-on-exit, --quiet,
KILL_PROCESS_TIMEOUT, KILL_ALL_PROCESSES_TIMEOUT, /etc/my_init.d, /etc/rc.local,
/etc/my_init.pre_shutdown.d, /etc/my_init.post_shutdown.d,
/etc/container_environment*). As my_init it also takes --enable-insecure-key
(run /usr/sbin/enable_insecure_key before the startup scripts, as my_init does;
a one-line warning when there is none; repeats are accepted, as by my_init's
argparse), reads its startup scripts from $ENV_INIT_DIRECTORY when that is set
(my_init's variable; --init-dir and PYINIT_INIT_DIR win over it) and, like my_init, exits 2 when a
SIGTERM ends a run that has no main command. my_init's bugs are
not copied: a main command killed by a signal exits 128+N (my_init said 0) and
signals reach it (my_init did not forward them).
"""

from __future__ import annotations

import os
import sys
from typing import Optional

ABORTED = 2  # my_init's exit code for "Init system aborted."


def main(argv: Optional[list[str]] = None) -> None:
    """my_init's command line: pyinit's, plus --enable-insecure-key and my_init's
    --help (config.build_parser); ENV_INIT_DIRECTORY names the startup scripts dir."""
    from pyinit.cli import init_command
    from pyinit.cli.stdio import guarded

    args = list(sys.argv[1:] if argv is None else argv)
    init_dir = os.environ.get("ENV_INIT_DIRECTORY")
    if init_dir and not os.environ.get("PYINIT_INIT_DIR"):
        args = ["--init-dir", init_dir, *args]  # my_init's variable; a later --init-dir wins
    guarded("pyinit")(init_command.run)(args, ABORTED, help_text)  # as pyinit's main


def help_text() -> str:
    """my_init's own --help (its argparse parser, flags and wording), then a note."""
    import argparse

    p = argparse.ArgumentParser(
        prog="my_init", description="Initialize the system.", allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="This is pyinit as my_init: every pyinit flag is accepted too (pyinit --help).\n"
        "How it differs from my_init: docs/migration.md#from-phusion-baseimages-my_init-with"
        "-runit\n(/usr/share/doc/pyinit-pid1/docs/ where pyinit's package is installed).")
    p.add_argument("main_command", metavar="MAIN_COMMAND", type=str, nargs="*",
                   help="The main command to run. (default: runit)")
    p.add_argument("--enable-insecure-key", action="store_true",
                   help="Install the insecure SSH key")
    p.add_argument("--skip-startup-files", action="store_true",
                   help="Skip running /etc/my_init.d/* and /etc/rc.local")
    p.add_argument("--skip-runit", action="store_true", help="Do not run runit services")
    p.add_argument("--no-kill-all-on-exit", action="store_true",
                   help="Don't kill all processes on the system upon exiting")
    p.add_argument("--quiet", action="store_true", help="Only print warnings and errors")
    return p.format_help()
