"""The `supervisord` personality: `supervisord [-c FILE] [-n]` reads supervisord's
configuration, writes its programs as service dirs (foreign/supervisord_*.py) and
boots pyinit on them, so they are supervised as pyinit supervises services."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from pyinit.cli import init_command

USAGE = "usage: supervisord [-c FILE] [-n] [-e LEVEL]"
QUIET = ("critical", "error", "warn")
VERBOSE = ("debug", "trace", "blather")


class Usage(Exception):
    pass


def parse(argv: list[str]) -> dict[str, str]:
    """supervisord's options that pyinit takes: -c/--configuration, -n/--nodaemon,
    -e/--loglevel, -h/--help; any other is refused by name (it would change what
    supervisord does)."""
    import getopt

    try:
        opts, rest = getopt.getopt(argv, "c:ne:hv", ["configuration=", "nodaemon", "loglevel=",
                                                    "help", "version"])  # fmt: skip
    except getopt.GetoptError as exc:
        raise Usage(f"{exc.msg} (pyinit's supervisord takes -c, -n, -e and -h)") from None
    if rest:
        raise Usage(f"unexpected argument {rest[0][:80]!r}")
    out: dict[str, str] = {}
    for opt, value in opts:
        key = {"-c": "conf", "--configuration": "conf", "-n": "nodaemon", "--nodaemon": "nodaemon",
               "-e": "loglevel", "--loglevel": "loglevel"}.get(opt, opt)  # fmt: skip
        out[key] = value
    return out


def main() -> None:
    """Read the configuration, write the services, boot pyinit on them; never returns."""
    try:
        opts = parse(sys.argv[1:])
    except Usage as exc:
        _fail(str(exc))
    if "-h" in opts or "--help" in opts:
        print(f"{USAGE}\npyinit's supervisord personality: see docs/migration.md#from-supervisord")
        sys.exit(0)
    if "-v" in opts or "--version" in opts:
        from pyinit import __version__

        print(f"pyinit {__version__} (supervisord personality)")
        sys.exit(0)
    from pyinit.foreign import supervisord_files as files
    from pyinit.foreign.supervisord_conf import ConfError, load
    from pyinit.foreign.supervisord_services import translate

    try:
        path = os.path.abspath(opts["conf"]) if "conf" in opts else files.find(sys.argv[0])
        conf = load(path, files.read, files.matches, dict(os.environ), os.uname().nodename)
        services, notes = translate(conf, os.getcwd(), python=sys.executable)
    except ConfError as exc:
        _fail(str(exc), usage=False)
    for note in notes:
        _say("warning", note)
    nodaemon = conf.supervisord.get("nodaemon", "").strip().lower() in ("1", "true", "yes", "on")
    if "nodaemon" not in opts and not nodaemon:
        _say("info", "staying in the foreground (as -n): pyinit does not daemonize")
    level = opts.get("loglevel") or conf.supervisord.get("loglevel", "info")
    flags = ["--skip-startup-files", "--service-dir", write(services)]
    if level.strip().lower() in QUIET:
        flags.append("--quiet")
    elif level.strip().lower() in VERBOSE:
        flags.append("-v")
    init_command.run(flags)


def write(services: list) -> str:
    """The service dirs, in a fresh dir under pyinit's run dir (as pyinit picks it)."""
    from pyinit.foreign import supervisord_files as files
    from pyinit.runtime import rundir

    choice = rundir.choose(os.environ.get("PYINIT_RUN_DIR"), os.environ, os.getuid(),
                           rundir.prepare)  # fmt: skip
    if choice.path is None:
        _fail(f"no usable run dir for the services: {rundir.describe(choice.refused)}", False)
    try:
        return files.write(services, choice.path)
    except OSError as exc:
        _fail(f"cannot write the services under {choice.path}: {exc.strerror or exc}", False)


def _say(level: str, text: str) -> None:
    try:
        sys.stderr.write(f"pyinit: {level}: [supervisord] {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _fail(text: str, usage: bool = True) -> NoReturn:
    if usage:
        sys.stderr.write(USAGE + "\n")
    _say("error", text)
    sys.exit(2)
