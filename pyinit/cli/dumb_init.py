"""pyinit as `dumb-init`: dumb-init 1.2.5's command line, environment, messages and exit codes.

Used when pyinit is run under the name `dumb-init`. In the default setsid mode
the child leads a new session with the controlling terminal, and every signal
goes to its whole process group; TSTP, TTOU and TTIN are passed on as SIGSTOP
and pyinit then stops itself, so job control works; SIGCONT resumes both.
When the child exits, SIGTERM (through the rewrite map) goes to its group and
pyinit exits at once with the child's code or 128+signal.
"""

from __future__ import annotations

import getopt
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Optional

if TYPE_CHECKING:
    from pyinit.core.exits import ExitStatus
    from pyinit.linux.signals import Inherited
    from pyinit.runtime.spawn import SpawnError

VERSION = "dumb-init v1.2.5\n"
HELP = """dumb-init v1.2.5
Usage: {prog} [option] command [[arg] ...]

dumb-init is a simple process supervisor that forwards signals to children.
It is designed to run as PID1 in minimal container environments.

Optional arguments:
   -c, --single-child   Run in single-child mode.
                        In this mode, signals are only proxied to the
                        direct child and not any of its descendants.
   -r, --rewrite s:r    Rewrite received signal s to new signal r before proxying.
                        To ignore (not proxy) a signal, rewrite it to 0.
                        This option can be specified multiple times.
   -v, --verbose        Print debugging information to stderr.
   -h, --help           Print this help message and exit.
   -V, --version        Print the current version and exit.

Full help is available online at https://github.com/Yelp/dumb-init
"""
# After the help: this is pyinit, and where its differences from dumb-init are written down.
NOTE = (
    "This is pyinit as dumb-init. How it differs from dumb-init: "
    "docs/migration.md#from-dumb-init\n"
    "(/usr/share/doc/pyinit-pid1/docs/ where pyinit's package is installed).\n"
)
SHORT_USAGE = "Usage: {prog} [option] program [args]\nTry {prog} --help for full usage.\n"
REWRITE_USAGE = (
    "Usage: -r option takes <signum>:<signum>, where <signum> is between 1 and 31.\n"
    "This option can be specified multiple times.\nUse --help for full usage.\n"
)
MAXSIG = 31
TTY_SIGNALS = (signal.SIGTSTP, signal.SIGTTOU, signal.SIGTTIN)


class Exit(Exception):
    def __init__(self, code: int, err: str = "") -> None:
        super().__init__(code)
        self.code, self.err = code, err


@dataclass
class DumbArgs:
    argv: list[str]
    setsid: bool = True
    debug: bool = False
    rewrite: dict[int, int] = field(default_factory=dict)


def parse(args: list[str], environ: Mapping[str, str], prog: str = "dumb-init") -> DumbArgs:
    """dumb-init's parse_command_line: options stop at the first non-option."""
    try:
        opts, rest = getopt.getopt(
            args, "+hvVcr:", ["help", "single-child", "rewrite=", "verbose", "version"]
        )
    except getopt.GetoptError as exc:
        opt = exc.opt if len(exc.opt) == 1 else "-"
        what = "option requires an argument" if "requires" in exc.msg else "invalid option"
        raise Exit(1, f"{prog}: {what} -- '{opt}'\n") from None
    out = DumbArgs(argv=rest)
    for opt, value in opts:
        if opt in ("-h", "--help"):
            raise Exit(0, HELP.format(prog=prog) + NOTE)
        if opt in ("-V", "--version"):
            raise Exit(0, VERSION)
        if opt in ("-v", "--verbose"):
            out.debug = True
        elif opt in ("-c", "--single-child"):
            out.setsid = False
        else:
            source, target = _rewrite(value)
            out.rewrite[source] = target
    if environ.get("DUMB_INIT_DEBUG") == "1":
        out.debug = True
    if environ.get("DUMB_INIT_SETSID") == "0":
        out.setsid = False
    if not out.argv:
        raise Exit(1, SHORT_USAGE.format(prog=prog))
    if out.setsid:
        for signum in TTY_SIGNALS:
            out.rewrite.setdefault(int(signum), int(signal.SIGSTOP))
    return out


def _rewrite(value: str) -> tuple[int, int]:
    from pyinit.core.bounds import small_number

    text, sep, to = value.partition(":")
    source, target = small_number(text, MAXSIG), small_number(to, MAXSIG)
    if not (sep and source is not None and target is not None and source >= 1):
        raise Exit(1, REWRITE_USAGE)
    return source, target


def main(argv: Optional[list[str]] = None) -> None:
    from pyinit.core import signames
    from pyinit.linux import signals

    inherited = signals.Inherited.capture()
    every = [s for s in range(1, MAXSIG + 1) if s not in (signal.SIGKILL, signal.SIGSTOP)]
    signals.block(every)
    # pyinit.entry blocked the real-time signals too: dumb-init leaves them alone
    others = set(signames.handled()) - set(every) - inherited.mask
    signal.pthread_sigmask(signal.SIG_UNBLOCK, others)
    try:
        args = parse(sys.argv[1:] if argv is None else argv, os.environ, sys.argv[0])
    except Exit as stop:
        sys.stderr.write(stop.err)
        sys.stderr.flush()
        os._exit(stop.code)
    os._exit(run(args, inherited, every) & 0xFF)


def run(args: DumbArgs, inherited: Inherited, every: list[int]) -> int:
    """dumb-init's main after the parse: give up the terminal (setsid mode), then
    child_init's single-child loop with dumb-init's rewrites and messages."""
    from pyinit.runtime import child_init, spawn

    voice = DumbVoice(args.debug)
    if os.environ.get("DUMB_INIT_DEBUG") == "1":
        voice.debug("Running in debug mode.")
    if os.environ.get("DUMB_INIT_SETSID") == "0":
        voice.debug("Not running in setsid mode.")  # for the variable only, as dumb-init
    ignore_once = detach_from_terminal(voice) if args.setsid else set()
    in_child = (lambda: attach_to_terminal(voice)) if args.setsid else None
    opts = child_init.Options(
        spec=spawn.Spec(args.argv, session=args.setsid, pre_exec=in_child),
        signals=every,
        group=args.setsid,
        rewrite=args.rewrite,
        ignore_once=ignore_once,
        suspend_on=frozenset(TTY_SIGNALS),
        term_on_exit=True,
    )
    return child_init.run(opts, voice, inherited)


def detach_from_terminal(voice: DumbVoice) -> set[int]:
    """Give up the controlling terminal (the child takes it); as its session leader
    pyinit then gets SIGHUP and SIGCONT from the kernel: the signals to ignore once."""
    import fcntl
    import termios

    try:
        fcntl.ioctl(0, termios.TIOCNOTTY)
    except OSError as exc:
        voice.debug(f"Unable to detach from controlling tty (errno={exc.errno} {exc.strerror}).")
        return set()
    if os.getsid(0) != os.getpid():
        voice.debug("Detached from controlling tty, but was not session leader.")
        return set()
    voice.debug("Detached from controlling tty, ignoring the first SIGHUP and SIGCONT we receive.")
    return {int(signal.SIGHUP), int(signal.SIGCONT)}


def attach_to_terminal(voice: DumbVoice) -> None:
    """In the child, a new session's leader: take the terminal as controlling tty."""
    import fcntl
    import termios

    try:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    except OSError as exc:
        voice.debug(f"Unable to attach to controlling tty (errno={exc.errno} {exc.strerror}).")
    voice.debug("setsid complete.")


class DumbVoice:
    """dumb-init's messages (`[dumb-init] text` on stderr, with -v or DUMB_INIT_DEBUG)
    and its exit code: the child's, or 128+signal."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def debug(self, text: str) -> None:
        if self.verbose:
            _say(f"[dumb-init] {text}")

    def spawn_failed(self, argv0: str, exc: SpawnError) -> int:
        from pyinit.runtime.child_init import why

        _say(f"[dumb-init] {argv0}: {why(exc)}")
        return 2

    def spawned(self, argv0: str, pid: int) -> None:
        self.debug(f"Child spawned with PID {pid}.")

    def received(self, signum: int) -> None:
        self.debug(f"Received signal {signum}.")

    def ignored(self, signum: int) -> None:
        self.debug(f"Ignoring tty hand-off signal {signum}.")

    def dropped(self, signum: int) -> None:
        self.debug(f"Not forwarding signal {signum} to children (ignored).")

    def passing(self, signum: int, target: int) -> None:
        self.debug(f"Forwarded signal {target} to children.")

    def suspending(self) -> None:
        self.debug("Suspending self due to TTY signal.")

    def reaped(self, pid: int, status: ExitStatus, child: bool) -> None:
        if status.signal is None:
            self.debug(f"A child with PID {pid} exited with exit status {status.code}.")
        else:
            self.debug(f"A child with PID {pid} was terminated by signal {status.signal}.")

    def child_ended(self, status: ExitStatus) -> None:
        self.debug(f"Child exited with status {status.shell_code}. Goodbye.")

    def exit_code(self, status: ExitStatus) -> int:
        return status.shell_code


def _say(line: str) -> None:
    try:
        os.write(2, (line + "\n").encode("utf-8", "backslashreplace"))
    except OSError:
        pass
