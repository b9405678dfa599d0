"""The `pyinit` command: parse flags, run the boot sequence, exit with its code."""

from __future__ import annotations

import os
import sys

from pyinit import log
from pyinit.config import UsageError, build_parser, parse, read_config_file

SOFTWARE_ERROR = 70  # EX_SOFTWARE: pyinit itself failed


# argv[0]'s basename -> the module that takes that tool's command line
PERSONALITIES = {"tini": "pyinit.cli.tini", "dumb-init": "pyinit.cli.dumb_init",
                 "my_init": "pyinit.cli.my_init"}


def main(argv: list[str] | None = None, signalled_exit_code: int | None = None,
         notes: list[str] | None = None) -> None:
    """Run pyinit (or, by argv[0]'s name, a personality); never returns."""
    if argv is None and os.path.basename(sys.argv[0]) in PERSONALITIES:
        import importlib

        importlib.import_module(PERSONALITIES[os.path.basename(sys.argv[0])]).main()
        return
    # Block the signals pyinit handles (pyinit.entry did already, before any import:
    # this is for callers of main()), so one that arrives waits in the queue.
    from pyinit import signals

    inherited = signals.Inherited.capture()
    signals.block(signals.handled())
    args = sys.argv[1:] if argv is None else argv
    try:
        config = read_config_file(parse(args, os.environ))
    except UsageError as exc:
        build_parser().print_usage(sys.stderr)
        sys.stderr.write(f"pyinit: error: {exc}\n")
        sys.exit(2)
    log.configure(config.verbosity, nonblocking=True, fmt=config.log_format)
    config.signalled_exit_code = signalled_exit_code
    for note in notes or []:
        log.warning(note)

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
