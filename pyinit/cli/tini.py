"""pyinit as `tini`: tini 0.19's command line, environment, messages and exit codes.

Used when pyinit is run under the name `tini` (a symlink). Parsing is pure
(`parse`); the run is child_init's single-child loop.
"""

from __future__ import annotations

import getopt
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Optional

from pyinit.cli.stdio import guarded

if TYPE_CHECKING:
    from pyinit.core.exits import ExitStatus
    from pyinit.runtime.spawn import SpawnError

TINI_VERSION = "0.19.0"
PREFIXES = {0: "FATAL", 1: "WARN ", 2: "INFO ", 3: "DEBUG", 4: "TRACE"}
NOT_PASSED_ON = {int(signal.SIGTTIN): 0, int(signal.SIGTTOU): 0}  # tini ignores these
MAX_VERBOSITY = 99  # TINI_VERBOSITY: ASCII digits; above 4 (TRACE) is the same as 4
NOT_REAPING = (
    "Tini is not running as PID 1 and isn't registered as a child subreaper.\n"
    "Zombie processes will not be re-parented to Tini, so zombie reaping won't work.\n"
    "To fix the problem, use the -s option or set the environment variable TINI_SUBREAPER "
    "to register Tini as a child subreaper, or run Tini as PID 1."
)
USAGE = f"""{{name}} (tini version {TINI_VERSION})
Usage: {{name}} [OPTIONS] PROGRAM -- [ARGS] | --version

Execute a program under the supervision of a valid init process ({{name}})

Command line options:

  --version: Show version and exit.
  -h: Show this help message and exit.
  -s: Register as a process subreaper (requires Linux >= 3.4).
  -p SIGNAL: Trigger SIGNAL when parent dies, e.g. "-p SIGKILL".
  -v: Generate more verbose output. Repeat up to 3 times.
  -w: Print a warning when processes are getting reaped.
  -g: Send signals to the child's process group.
  -e EXIT_CODE: Remap EXIT_CODE (from 0 to 255) to 0.
  -l: Show license and exit.

Environment variables:

  TINI_SUBREAPER: Register as a process subreaper (requires Linux >= 3.4).
  TINI_VERBOSITY: Set the verbosity level (default: 1).
  TINI_KILL_PROCESS_GROUP: Send signals to the child's process group.

"""
LICENSE = "MIT License (tini's interface; implemented by pyinit, see its license)\n"
# After the usage: this is pyinit, and where its differences from tini are written down.
NOTE = (
    "This is pyinit as tini. How it differs from tini: docs/migration.md#from-tini\n"
    "(/usr/share/doc/pyinit-pid1/docs/ where pyinit's package is installed).\n"
)


class Exit(Exception):
    """Stop with this code after printing `out` to stdout and `err` to stderr."""

    def __init__(self, code: int, out: str = "", err: str = "") -> None:
        super().__init__(code)
        self.code, self.out, self.err = code, out, err


@dataclass
class TiniArgs:
    argv: list[str]
    subreaper: bool = False
    pdeathsig: Optional[int] = None
    verbosity: int = 1
    warn_reaped: bool = False
    group: bool = False
    expect: set[int] = field(default_factory=set)


def usage(prog: str) -> str:
    """tini's usage, named as tini names itself: by argv[0]'s basename."""
    return USAGE.format(name=os.path.basename(prog))


def fatal(text: str) -> str:
    return f"[FATAL tini ({os.getpid()})] {text}\n"


def _shown(value: str) -> str:
    """A flag's or variable's value in a fatal message, as tini shows it but cut."""
    from pyinit.core.bounds import MAX_MESSAGE_VALUE, clip

    return clip(value, MAX_MESSAGE_VALUE)


def parse(args: list[str], environ: Mapping[str, str], prog: str = "tini") -> TiniArgs:
    """tini's parse_args + parse_env; raises Exit for --version, -h, -l and errors.
    prog is argv[0], which getopt's messages start with."""
    if args == ["--version"]:
        raise Exit(0, out=f"tini version {TINI_VERSION}\n")
    scan = getopt.getopt if "POSIXLY_CORRECT" in environ else getopt.gnu_getopt
    try:
        opts, rest = scan(args, "p:hvwgle:s")
    except getopt.GetoptError as exc:
        opt = exc.opt if len(exc.opt) == 1 else "-"  # glibc: `--version x` is option '-'
        what = (
            f"option requires an argument -- '{opt}'"
            if "requires" in exc.msg
            else f"invalid option -- '{opt}'"
        )
        raise Exit(1, err=f"{prog}: {what}\n{usage(prog)}{NOTE}") from None
    out = TiniArgs(argv=rest)
    for opt, value in opts:
        if opt == "-h":
            raise Exit(0, out=usage(prog) + NOTE)
        if opt == "-l":
            raise Exit(0, out=LICENSE)
        if opt == "-s":
            out.subreaper = True
        elif opt == "-v":
            out.verbosity += 1
        elif opt == "-w":
            out.warn_reaped = True
        elif opt == "-g":
            out.group = True
        elif opt == "-p":
            out.pdeathsig = _pdeathsig(value)
        elif opt == "-e":
            from pyinit.core.bounds import small_number

            code = small_number(value, 255)
            if code is None:
                raise Exit(1, err=fatal(f"Not a valid option for -e: {_shown(value)}"))
            out.expect.add(code)
    if "TINI_SUBREAPER" in environ:
        out.subreaper = True
    if "TINI_KILL_PROCESS_GROUP" in environ:
        out.group = True
    if "TINI_VERBOSITY" in environ:
        from pyinit.core.bounds import small_number

        value = environ["TINI_VERBOSITY"]
        verbosity = small_number(value, MAX_VERBOSITY)
        if verbosity is None:
            raise Exit(1, err=fatal(f"Invalid TINI_VERBOSITY: {_shown(value)}"))
        out.verbosity = verbosity
    if not out.argv:
        raise Exit(1, err=usage(prog) + NOTE)
    return out


def _pdeathsig(name: str) -> int:
    """tini accepts exact names SIGHUP..SIGSYS only."""
    allowed = {
        s.name: int(s)
        for s in signal.Signals
        if s.name.startswith("SIG")
        and not s.name.startswith("SIG_")
        and int(s) < int(signal.SIGRTMIN)
    }
    if name not in allowed:
        raise Exit(1, err=fatal(f"Not a valid option for -p: {_shown(name)}"))
    return allowed[name]


FATAL, WARN, INFO, DEBUG, TRACE = 0, 1, 2, 3, 4


class TiniVoice:
    """tini's messages (`[LEVEL tini (PID)] text`, up to the verbosity: fatal and
    warnings on stderr, the rest on stdout) and its exit code (`-e` codes are 0)."""

    def __init__(self, args: TiniArgs) -> None:
        self.args = args
        self.pid = os.getpid()

    def say(self, level: int, text: str) -> None:
        if level <= self.args.verbosity:
            line = f"[{PREFIXES[level]} tini ({self.pid})] {text}\n"
            try:
                os.write(2 if level <= WARN else 1, line.encode("utf-8", "backslashreplace"))
            except OSError:
                pass

    def spawn_failed(self, argv0: str, exc: SpawnError) -> int:
        from pyinit.runtime.child_init import why

        self.say(FATAL, f"exec {argv0} failed: {why(exc)}")
        return exc.exit_code

    def spawned(self, argv0: str, pid: int) -> None:
        self.say(INFO, f"Spawned child process '{argv0}' with pid '{pid}'")

    def received(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            self.say(DEBUG, "Received SIGCHLD")

    def ignored(self, signum: int) -> None:
        pass

    def dropped(self, signum: int) -> None:
        pass

    def passing(self, signum: int, target: int) -> None:
        self.say(DEBUG, f"Passing signal: '{signal.strsignal(signum)}'")

    def suspending(self) -> None:
        pass

    def reaped(self, pid: int, status: ExitStatus, child: bool) -> None:
        if not child and self.args.warn_reaped:
            self.say(WARN, f"Reaped zombie process with pid={pid}")
        else:
            self.say(DEBUG, f"Reaped child with pid: '{pid}'")

    def child_ended(self, status: ExitStatus) -> None:
        how = (
            f"normally (with status '{status.code}')"
            if status.signal is None
            else f"with signal '{status.signal}'"
        )
        self.say(INFO, f"Main child exited {how}")

    def exit_code(self, status: ExitStatus) -> int:
        self.say(TRACE, "Exiting: child has exited")
        return 0 if status.shell_code in self.args.expect else status.shell_code


def become_reaper(args: TiniArgs, voice: TiniVoice) -> None:
    """-s: register as a child subreaper; warn when reaping cannot work (not PID 1 and
    no subreaper bit, set or inherited)."""
    from pyinit.linux import prctl

    if os.getpid() == 1:
        return
    if args.subreaper:
        try:
            prctl.set_child_subreaper(True)
            voice.say(TRACE, "Registered as child subreaper")
            return
        except OSError as exc:
            voice.say(WARN, f"Failed to register as child subreaper: {exc.strerror}")
    try:
        inherited_bit = prctl.get_child_subreaper()
    except OSError:
        inherited_bit = False
    if not inherited_bit:
        voice.say(WARN, NOT_REAPING)


@guarded("tini")
def main(argv: Optional[list[str]] = None) -> None:
    from pyinit.core import signames
    from pyinit.linux import prctl, signals
    from pyinit.runtime import child_init, spawn

    inherited = signals.Inherited.capture()
    signals.block(signames.handled())
    try:
        args = parse(sys.argv[1:] if argv is None else argv, os.environ, sys.argv[0])
    except Exit as stop:
        sys.stdout.write(stop.out)
        sys.stderr.write(stop.err)
        sys.stdout.flush()
        os._exit(stop.code)
    voice = TiniVoice(args)
    become_reaper(args, voice)
    if args.pdeathsig is not None:
        prctl.set_pdeathsig(args.pdeathsig)
    opts = child_init.Options(
        spec=spawn.Spec(args.argv, pgroup=True, foreground=True),
        signals=signames.handled(),
        group=args.group,
        rewrite=NOT_PASSED_ON,
        drain_at_exit=True,
    )
    os._exit(child_init.run(opts, voice, inherited) & 0xFF)
