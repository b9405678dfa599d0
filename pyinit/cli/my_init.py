"""pyinit as `my_init`: phusion baseimage's command line, with its exit code quirk kept.

Everything my_init does, pyinit does already under the same flags and
variables (--skip-startup-files, --skip-runit, --no-kill-all-on-exit, --quiet,
KILL_PROCESS_TIMEOUT, KILL_ALL_PROCESSES_TIMEOUT, /etc/my_init.d, /etc/rc.local,
/etc/my_init.pre_shutdown.d, /etc/my_init.post_shutdown.d,
/etc/container_environment*). As my_init it also takes --enable-insecure-key
(run /usr/sbin/enable_insecure_key before the startup scripts, as my_init does;
a one-line warning when there is none) and, like my_init, exits 2 when a
SIGTERM ends a run that has no main command. my_init's bugs are
not copied: a main command killed by a signal exits 128+N (my_init said 0) and
signals reach it (my_init did not forward them).
"""

from __future__ import annotations

import sys
from typing import Optional

ABORTED = 2  # my_init's exit code for "Init system aborted."


def main(argv: Optional[list[str]] = None) -> None:
    from pyinit.cli import pyinit

    args = list(sys.argv[1:] if argv is None else argv)
    command_at = args.index("--") if "--" in args else len(args)
    insecure = "--enable-insecure-key" in args[:command_at]
    if insecure:
        args.remove("--enable-insecure-key")
    pyinit.main(args, signalled_exit_code=ABORTED, enable_insecure_key=insecure)
