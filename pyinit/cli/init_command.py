"""pyinit's own run: parse flags, run the boot sequence, exit with its code.

What the `pyinit` command (cli/pyinit.py, which first picks a personality by
argv[0]) and the my_init personality (cli/my_init.py) both run; a module of its
own so neither of those imports the other.
"""

from __future__ import annotations

import os
import sys
from typing import Callable

from pyinit.config import Config, UsageError, build_parser, parse, read_config_file
from pyinit.runtime import log

SOFTWARE_ERROR = 70  # EX_SOFTWARE: pyinit itself failed


def run(
    args: list[str],
    signalled_exit_code: int | None = None,
    my_init_help: Callable[[], str] | None = None,
    adjust: Callable[[Config], None] | None = None,
) -> None:
    """Parse args, boot, shut down, exit; never returns (the caller guards stdout)."""
    try:
        config = read_config_file(parse(args, os.environ, my_init_help))
    except UsageError as exc:
        build_parser(my_init_help).print_usage(sys.stderr)
        for line in str(exc).splitlines():  # pyinit.yaml: each of its problems
            sys.stderr.write(f"pyinit: error: {line}\n")
        sys.exit(2)
    # Block the signals pyinit handles (pyinit.entry did before any import: this is
    # for callers of main()), so one that arrives waits in the queue. After the
    # parse: --help and a usage error leave the caller's mask as it was.
    from pyinit.core import signames
    from pyinit.linux import signals

    inherited = signals.Inherited.capture()
    signals.block(signames.handled())
    log.configure(config.verbosity, nonblocking=True, fmt=config.log_format)
    config.signalled_exit_code = signalled_exit_code
    if adjust is not None:  # a personality's settings no flag gives (cli/s6_init.py)
        adjust(config)

    from pyinit.boot import Init

    init = Init(config, inherited)
    try:
        code = init.run()
    except Exception:
        log.bug("the boot sequence")
        try:
            code = init.shutdown(SOFTWARE_ERROR)
        except Exception:
            log.bug("the shutdown sequence")
            code = SOFTWARE_ERROR
    _exit(code)


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code & 0xFF)
