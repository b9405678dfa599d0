"""`svctl`: control and inspect pyinit's services, with runit's `sv` commands and output.

Exit codes as sv: 0 all good; one more per failed or timed-out service (at most
99); 100 for a usage error or when pyinit cannot be reached.
"""

from __future__ import annotations

import errno
import os
import sys
import time

from pyinit.cli.stdio import broken, guarded

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

USAGE = """usage: svctl [--run-dir DIR] [-v] [-w SECS] COMMAND [SERVICE...]

commands (runit sv):  status [-l] [--json]  up down once pause cont hup alarm interrupt
                      quit 1 2 term kill exit
LSB:                  start stop restart reload try-restart force-stop force-reload
                      force-restart force-shutdown shutdown check
pyinit:               list (status -l: a table)  tree  rescan  shutdown-container [--exit-code N]
                      logs [-f] [-n N] [SERVICE...]  scale SERVICE N  run SERVICE...
                      events [-f] [SERVICE...]
As sv, a command is matched by its first character when it is not one of the
names above (`s` or `stat` is status, `u` up, `t` term, `X` force-shutdown, ...);
such a short form needs a SERVICE. Options go before the command.
SERVICE is a name, name/log, or a path such as /etc/service/nginx; none means all.
A counted service's or a template's name means all its instances; `up T@NAME`
starts an instance of the template T@.
`reload` with no SERVICE rescans the service dirs; with SERVICEs it sends SIGHUP.
Documentation: `man svctl`, /usr/share/doc/pyinit-pid1/docs/svctl.md."""

USAGE_ERROR = 100


class Command:
    """What an svctl command sends: runit letters, whether it waits, whether it kills."""

    __slots__ = ("letters", "wait", "kill")

    def __init__(self, letters: str, wait: bool = False, kill: bool = False) -> None:
        self.letters = letters
        self.wait = wait  # LSB commands wait by default
        self.kill = kill  # send kill to services that time out


SIMPLE = {
    "up": "u",
    "down": "d",
    "once": "o",
    "pause": "p",
    "cont": "c",
    "hup": "h",
    "alarm": "a",
    "interrupt": "i",
    "quit": "q",
    "1": "1",
    "2": "2",
    "term": "t",
    "kill": "k",
    "exit": "x",
}
COMMANDS: dict[str, Command] = {name: Command(letters) for name, letters in SIMPLE.items()}
COMMANDS.update({letter: Command(letter) for letter in SIMPLE.values()})
COMMANDS.update(
    {
        "e": Command("x"),
        "start": Command("u", wait=True),
        "stop": Command("d", wait=True),
        "restart": Command("tcu", wait=True),
        "reload": Command("h", wait=True),
        "shutdown": Command("x", wait=True),
        "try-restart": Command("tc", wait=True),
        "force-stop": Command("d", wait=True, kill=True),
        "force-reload": Command("tc", wait=True, kill=True),
        "force-restart": Command("tcu", wait=True, kill=True),
        "force-shutdown": Command("x", wait=True, kill=True),
        "check": Command("C", wait=True),
    }
)


# sv's rule for the words that are not one of svctl's commands (runit 2.1.2's sv.c): the
# first character decides ('s' anything is status, 'u...' is up, 'cont' and 'cxyz' are
# cont, 'X'/'E' force an exit, ...). 'r' and 'f' match only whole words (restart, reload,
# force-*), which are svctl commands already. Exact svctl names win: `tree` is not `term`.
SV_FIRST_CHAR = {
    "u": "up",
    "d": "down",
    "o": "once",
    "p": "pause",
    "c": "cont",
    "h": "hup",
    "a": "alarm",
    "i": "interrupt",
    "q": "quit",
    "1": "1",
    "2": "2",
    "t": "term",
    "k": "kill",
    "x": "exit",
    "e": "exit",
    "s": "status",
    "X": "force-shutdown",
    "E": "force-shutdown",
    "D": "force-stop",
    "T": "force-reload",
}
SHORT_USAGE = USAGE.partition("\n")[0]
NO_SUCH_DIR = "unable to change to service directory: file does not exist"  # sv's words


def command_name(word: str) -> Optional[str]:
    """The svctl command `word` stands for: an exact svctl name first, then sv's
    first-character rule (SV_FIRST_CHAR); None for an unknown command."""
    if word in COMMANDS or word in HANDLERS:
        return word
    return SV_FIRST_CHAR.get(word[:1])


def _short(word: str) -> str:
    """A user's word, cut to fit in a one-line message."""
    from pyinit.core.bounds import render

    return render(word, 40)


class Usage(Exception):
    """A command line svctl cannot take. brief: print the message alone, no usage text."""

    def __init__(self, message: str, brief: bool = False) -> None:
        super().__init__(message)
        self.brief = brief


class Unreachable(Exception):
    pass


class Args:
    """svctl's parsed command line."""

    def __init__(
        self,
        command: str,
        services: list[str],
        run_dir: str,
        verbose: bool = False,
        wait: float = 7.0,
    ) -> None:
        self.command = command
        self.services = services
        self.run_dir = run_dir
        self.verbose = verbose
        self.wait = wait
        self.json = False
        self.long = False  # status -l, list: a table
        self.exit_code = 0
        self.follow = False
        self.lines = 10
        self.environ: Optional[dict[str, str]] = None  # set when run_dir was looked up
        self.count = 0
        self.labels: dict[str, list[str]] = {}  # a path sent to pyinit -> the words typed


def _service_word(args: Args, word: str) -> str:
    """What svctl sends for a SERVICE word. As sv, a word starting with '.' (`.`,
    `./web`, `../service/web`) is a path from svctl's cwd, not from PID 1's: sent
    absolute, and labelled in the output as typed (`sv down .` in a `finish`)."""
    if not word.startswith(".") or "\0" in word:
        return word
    try:
        path = os.path.abspath(word)
    except OSError:  # the cwd is gone: let pyinit say it does not know the word
        return word
    args.labels.setdefault(path, []).append(word)
    return path


def label(args: Args, sent: str) -> str:
    """The word the user typed for a name pyinit echoes back (in the order typed, as
    `.` and `../web` may be the same path)."""
    typed = args.labels.get(sent)
    if not typed:
        return sent
    return typed.pop(0) if len(typed) > 1 else typed[0]


def parse_args(argv: list[str], environ: dict[str, str]) -> Args:
    """svctl's command line: options, the command, then its operands."""
    rest = list(argv)
    run_dir, verbose, wait = _options(rest, environ)
    if not rest:
        raise Usage("no command given")
    found = not run_dir
    if found:
        from pyinit.runtime import rundir

        run_dir = rundir.find(environ)  # PYINIT_RUN_DIR, else where pyinit's socket is
    args = Args(_command(rest.pop(0), rest), [], run_dir, verbose, wait)
    args.environ = environ if found else None
    _operands(args, rest)
    return args


def _options(rest: list[str], environ: dict[str, str]) -> tuple[str, bool, float]:
    """The options before the command, taken off rest: (run dir, verbose, wait)."""
    run_dir = ""
    verbose = False
    wait = 7.0
    if environ.get("SVWAIT"):  # parsed only when set: the parser's imports cost svctl
        try:
            wait = _seconds(environ["SVWAIT"], "SVWAIT")
        except Usage as exc:  # like sv, a bad SVWAIT does not stop svctl
            sys.stderr.write(f"svctl: warning: {exc}; using 7\n")
    while rest and rest[0].startswith("-") and rest[0] != "-":
        opt = rest.pop(0)
        if opt in ("-h", "--help"):
            raise Usage("")
        if opt == "--version":
            from pyinit import __version__

            sys.stdout.write(f"svctl (pyinit) {__version__}\n")
            sys.exit(0)
        if opt == "-v":
            verbose = True
        elif opt in ("-w", "--run-dir"):
            if not rest:
                raise Usage(f"{opt} needs a value")
            value = rest.pop(0)
            if opt == "-w":
                wait, verbose = _seconds(value, "-w"), True
            else:
                run_dir = value
        elif opt.startswith("-w") and len(opt) > 2:
            wait, verbose = _seconds(opt[2:], "-w"), True
        elif opt.startswith("--run-dir="):
            run_dir = opt.split("=", 1)[1]
        else:
            raise Usage(f"unknown option {opt}")
    return run_dir, verbose, wait


def _command(word: str, rest: list[str]) -> str:
    """The command a word names (svctl's, or sv's letters and words); rest: its operands."""
    name = command_name(word)
    if name is None:
        raise Usage(f"unknown command {_short(word)}{_nearest(word)}")
    if name != word and not [w for w in rest if not w.startswith("-") or w == "-"]:
        # sv always needs a SERVICE; svctl's "none means all" is for its own names only,
        # so `svctl help` or `svctl debug` never signal or stop every service
        raise Usage(
            f"unknown command {_short(word)} (sv's one-letter forms such as "
            f"{word[:1]!r} need a SERVICE){_nearest(word)}"
        )
    return name


def _nearest(word: str) -> str:
    """`; did you mean 'logs'?` for a typo of a command name, else ''."""
    import difflib  # only on this error path: svctl's imports stay small

    names = [n for n in (*COMMANDS, *HANDLERS) if len(n) > 1]
    close = difflib.get_close_matches(word[:40], names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _operands(args: Args, rest: list[str]) -> None:
    """What follows the command: an exit code, logs' options, a count, or services."""
    if args.command == "shutdown-container":
        args.exit_code = _exit_code(rest)
        return
    if args.command == "logs":
        _logs_args(args, rest)
        return
    if args.command == "events":
        cut = rest.index("--") if "--" in rest else len(rest)  # names only after `--`
        args.follow = bool({"-f", "--follow"} & set(rest[:cut]))
        for word in rest[:cut]:
            if word.startswith("-") and word not in ("-", "-f", "--follow"):
                raise Usage(f"unknown option {_short(word)} for events")
        rest = [w for w in rest[:cut] if w not in ("-f", "--follow")] + rest[cut:]
    if args.command == "run" and not rest:
        raise Usage("run takes one or more SERVICEs (scheduled jobs)", brief=True)
    if args.command == "scale":
        from pyinit.core.bounds import small_number

        count = small_number(rest[1], 1000) if len(rest) == 2 else None
        if count is None:
            raise Usage("scale takes a SERVICE and a count from 0 to 1000")
        args.services, args.count = [_service_word(args, rest[0])], count
        return
    names_only = False
    for word in rest:
        if names_only:
            args.services.append(_service_word(args, word))
        elif word == "--":
            names_only = True  # a service whose name starts with '-' follows
        elif word == "--json" and args.command in ("status", "s", "tree", "list"):
            args.json = True
        elif word in ("-l", "--long") and args.command in ("status", "s", "list"):
            args.long = True
        elif word.startswith("-") and word != "-":
            raise Usage(
                f"option {_short(word)} after the command {args.command!r}: options "
                f"go before it ({SHORT_USAGE})",
                brief=True,
            )
        else:
            args.services.append(_service_word(args, word))


def _logs_args(args: Args, words: list[str]) -> None:
    """`logs [-f] [-n N] [SERVICE...]` (also -nN, --follow, --lines N)."""
    from pyinit.core.bounds import render, small_number

    args.follow, args.lines = False, 10
    while words:
        word = words.pop(0)
        if word in ("-f", "--follow"):
            args.follow = True
        elif word in ("-n", "--lines") or word.startswith("-n"):
            value = (
                word[2:]
                if word.startswith("-n") and len(word) > 2
                else (words.pop(0) if words else "")
            )
            lines = small_number(value, 100000)
            if lines is None:
                raise Usage(f"-n needs a number of lines up to 100000, not {render(value)}")
            args.lines = lines
        elif word.startswith("-"):
            raise Usage(f"unknown option {word} for logs")
        else:
            args.services.append(_service_word(args, word))


def _exit_code(words: list[str]) -> int:
    """`shutdown-container [--exit-code N | --exit-code=N | N]`, default 0."""
    from pyinit.core.bounds import render, small_number

    if words and words[0].startswith("--exit-code="):
        words = [words[0].split("=", 1)[1], *words[1:]]
    elif words and words[0] == "--exit-code":
        if len(words) < 2:
            raise Usage("--exit-code needs a value")
        words = words[1:]
    if not words:
        return 0
    if len(words) > 1:
        raise Usage(f"shutdown-container takes one exit code, not {' '.join(words)!r}")
    code = small_number(words[0], 255)
    if code is None:
        raise Usage(f"the exit code must be 0..255, not {render(words[0])}")
    return code


def _seconds(text: str, what: str) -> float:
    from pyinit.core import bounds

    try:
        return bounds.seconds(text, 86400)
    except bounds.InputError as exc:
        raise Usage(f"{what}: {exc}") from None


# --- talking to pyinit -----------------------------------------------------------
MAX_ERROR = 4000  # characters of pyinit's error text shown (then "...")


def ask(
    args: Args, payload: dict[str, Any], timeout: Optional[float] = 10.0, patience: float = 0.0
) -> dict[str, Any]:
    """One request. With patience (a waiting command's -w), a socket that is not there
    yet (pyinit still booting, e.g. right after `podman start`) is retried until then."""
    from pyinit.control.protocol import request
    from pyinit.core.protocol import SOCKET_NAME

    deadline = time.monotonic() + patience
    while True:
        path = os.path.join(args.run_dir, SOCKET_NAME)
        try:
            reply = request(path, payload, timeout)
            break
        except (OSError, ConnectionError, ValueError) as exc:
            booting = isinstance(exc, (FileNotFoundError, ConnectionRefusedError))
            if booting and time.monotonic() < deadline:
                time.sleep(0.05)
                if args.environ is not None:  # pyinit may pick a fallback run dir yet
                    from pyinit.runtime import rundir

                    args.run_dir = rundir.find(args.environ)
                continue
            reason = getattr(exc, "strerror", None) or str(exc)
            raise Unreachable(f"cannot reach pyinit at {path}: {reason}") from None
    if not reply.get("ok"):
        raise Unreachable(refusal(reply))
    return reply


def refusal(reply: dict[str, Any]) -> str:
    """pyinit's error for a refused request, in bounded text (the socket may be fake)."""
    from pyinit.core.bounds import clip

    error = reply.get("error")
    text = clip(error, MAX_ERROR + 3) if isinstance(error, str) else "no reason given"
    return f"pyinit refused: {text}"


# --- commands ----------------------------------------------------------------------
def cmd_status(args: Args) -> int:
    from pyinit.core.svstatus import sv_status_line

    reply = ask(args, {"cmd": "status", "services": args.services})
    records = reply["services"]
    if args.json:
        import json

        from pyinit.cli.proctree_stats import add_usage

        for rec in records:
            add_usage(rec)
        print(json.dumps(records, indent=2, sort_keys=True))
        return sum(1 for r in records if r.get("missing"))
    if args.long or args.command == "list":
        return status_table(args, records)
    now = time.time()
    rc = 0
    typed = iter(args.services)
    for rec in records:  # a group's instances are `expanded`: labelled by their names
        name = rec["name"] if not args.services or rec.get("expanded") else label(args, next(typed))
        if rec.get("missing"):
            print(f"fail: {name}: {NO_SUCH_DIR}")
            rc += 1
        else:
            line = sv_status_line(name, rec, now)
            rc += line.startswith("fail: ")
            print(line)
    return rc


def status_table(args: Args, records: list[dict[str, Any]]) -> int:
    """`status -l`: the records as a table (core/statustable.py), colored on a terminal
    unless NO_COLOR is set (no-color.org) or TERM is dumb."""
    from pyinit.core.statustable import render, state

    typed = iter(args.services)
    for rec in records:
        if args.services and not rec.get("expanded"):
            rec["name"] = label(args, next(typed))
    env = os.environ
    color = sys.stdout.isatty() and not env.get("NO_COLOR") and env.get("TERM") != "dumb"
    sys.stdout.write(render(records, time.time(), color=color))
    return sum(1 for r in records if state(r) in ("missing", "failed"))


def cmd_lsb_status(args: Args) -> int:
    """An init script's `status`: sv's line; exit 0 running, 3 not running (LSB), 1 for
    a service that does not exist."""
    from pyinit.core.svstatus import sv_status_line

    reply = ask(args, {"cmd": "status", "services": args.services})
    name = args.services[0]
    rec = reply["services"][0] if reply["services"] else {"missing": True}
    if rec.get("missing"):
        print(f"fail: {name}: {NO_SUCH_DIR}")
        return 1
    line = sv_status_line(name, rec, time.time())
    print(line)
    return 0 if line.startswith("run: ") else 3


def cmd_control(args: Args) -> int:
    command = COMMANDS[args.command]
    if args.command == "reload" and not args.services:
        return cmd_rescan(args)
    waiting = command.wait or args.verbose
    payload: dict[str, Any] = {
        "cmd": "wait" if command.letters == "C" else "control",
        "action": command.letters,
        "services": args.services,
    }
    if waiting:
        payload["wait"] = args.wait
    reply = ask(
        args,
        payload,
        timeout=(args.wait + 10) if waiting else 10,
        patience=args.wait if waiting else 0.0,
    )
    rc = 0
    for res in reply["results"]:
        if not res.get("ok"):
            print(f"fail: {label(args, res['service'])}: {_explain(res.get('error', ''))}")
            rc += 1
    if waiting:
        rc += report_waits(args, command, reply)
    return rc


def _explain(error: str) -> str:
    if error == "no such service":
        return NO_SUCH_DIR
    return "; ".join(str(error).splitlines())  # several problems of one service.yaml


def report_waits(args: Args, command: Command, reply: dict[str, Any]) -> int:
    from pyinit.core.svstatus import job_part, sv_part

    deadline = time.monotonic() + args.wait
    rc = 0
    to_kill = []
    for res in reply["results"]:
        if not res.get("ok") or "status" not in res:  # e.g. hup NAME/log rotating a file log
            continue
        rec = res["status"]
        done = res["done"]
        name = label(args, res["service"])
        if done and ("u" in command.letters or "C" in command.letters) and rec.get("pid"):
            done = run_check(rec.get("path"), deadline, rec.get("user"), rec.get("instance"))
        now = time.time()
        problem = rec.get("error") or rec.get("failed")
        if not done and problem and not rec.get("pid"):
            print(f"fail: {name}: {_explain(problem)}")
            rc += 1
        elif done:
            print("ok: " + sv_part(name, rec, now) + job_part(rec))
        else:
            word = "kill: " if command.kill else "timeout: "
            print(word + sv_part(name, rec, now) + job_part(rec))
            rc += 1
            if command.kill:  # only force-* kill what timed out, as sv -k
                to_kill.append(res["service"])
    if to_kill:
        ask(args, {"cmd": "control", "action": "k", "services": to_kill})
    return rc


def run_check(
    path: Optional[str], deadline: float, user: Optional[str] = None, instance: Optional[str] = None
) -> bool:
    """Run the service's `check` until it exits 0 or the deadline passes (as sv does),
    as the service's user when service.yaml names one; an instance's name is $1."""
    if not path:
        return True
    import subprocess

    check = os.path.join(path, "check")
    if not (os.path.isfile(check) and os.access(check, os.X_OK)):
        return True
    env, drop = None, None
    if user and os.geteuid() == 0:
        from pyinit.linux import users as privileges

        try:
            identity = privileges.resolve(user)
        except privileges.PrivilegeError as exc:
            print(f"warning: cannot run check as {user}: {exc}", file=sys.stderr)
            return False
        env = privileges.environment(identity, dict(os.environ), clear=False)
        drop = lambda: privileges.drop(identity)  # noqa: E731
    argv = ["./check"]
    if instance:  # as pyinit runs an instance's check
        argv.append(instance)
        env = dict(env or os.environ, PYINIT_INSTANCE=instance)
    while True:
        left = deadline - time.monotonic()
        try:
            r = subprocess.run(
                argv,
                cwd=path,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=drop,
                timeout=max(left, 0.1),
            )
            if r.returncode == 0:
                return True
        except (OSError, subprocess.SubprocessError):
            pass
        if time.monotonic() + 0.25 > deadline:
            return False
        time.sleep(0.25)


def cmd_scale(args: Args) -> int:
    reply = ask(args, {"cmd": "scale", "services": args.services, "count": args.count})
    rc = 0
    for res in reply["results"]:
        if not res.get("ok"):
            print(f"fail: {label(args, res['service'])}: {_explain(res.get('error', ''))}")
            rc += 1
    return rc


def cmd_run(args: Args) -> int:
    """`svctl run NAME...`: a scheduled job's run now (its overlap rule decides)."""
    reply = ask(args, {"cmd": "run", "services": args.services})
    said = {
        "run": "started",
        "skipped": "still running, skipped (overlap: skip)",
        "queued": "still running, queued (overlap: queue)",
        "stop-and-run": "still running, stopping it first (overlap: replace)",
        "": "still running, a run is queued already",
    }
    rc = 0
    for res in reply["results"]:
        name = label(args, res["service"])
        if res.get("ok"):
            print(f"ok: run: {name}: {said.get(res.get('result'), 'done')}")
        else:
            print(f"fail: {name}: {_explain(res.get('error', ''))}")
            rc += 1
    return rc


def cmd_rescan(args: Args) -> int:
    ask(args, {"cmd": "reload"})
    return 0


def cmd_shutdown_container(args: Args) -> int:
    ask(args, {"cmd": "shutdown", "exit_code": args.exit_code})
    return 0


class _Lines:
    """Reply lines from the socket; with watch_stdout, a reader of our stdout that
    goes away while we wait (`svctl logs -f | head -1`) ends the wait with EPIPE,
    as `tail -f` does, instead of at the next line."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buf = bytearray()

    def next(self, watch_stdout: bool = False) -> bytes:
        """The next line (b"" at EOF), at most MAX_REPLY bytes (core/protocol.py) (a ReplyError,
        a ValueError, past that)."""
        from pyinit.control.protocol import read_line

        return read_line(self.sock, self.buf, self.watch if watch_stdout else None)

    def watch(self) -> None:
        """Wait until the socket is readable; EPIPE if our stdout's reader goes away."""
        import select

        if sys.stdout is None:  # fd 1 may be the socket
            return
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(1, 0)  # POLLERR: the pipe's reader is gone
        for fd, events in poller.poll():
            if fd == 1 and events & (select.POLLERR | select.POLLNVAL) == select.POLLERR:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def cmd_logs(args: Args) -> int:
    """Print a service's last lines; with -f, keep printing new ones until interrupted."""
    from pyinit.core.protocol import ReplyError, parse_reply

    prefix: Any = None  # several services: `NAME | line`

    def first(reply: dict[str, Any], out: Any) -> None:
        nonlocal prefix
        prefix = _LogPrefix(reply) if "entries" in reply else None
        if prefix is None and not isinstance(reply.get("lines"), list):
            raise ReplyError("the reply has no list of lines (is this pyinit's socket?)")
        for line in prefix.entries(reply) if prefix else reply["lines"]:
            if isinstance(line, str):
                out.write(line.encode("utf-8", "surrogateescape") + b"\n")

    def each(raw: bytes, out: Any) -> Optional[int]:
        if not raw:
            return 0  # pyinit went away (shutdown)
        msg = parse_reply(raw)
        line = prefix.line(msg) if prefix else msg.get("line")
        if isinstance(line, str):
            out.write(line.encode("utf-8", "surrogateescape") + b"\n")
            out.flush()
        return None

    payload = {"cmd": "logs", "services": args.services, "lines": args.lines,
               "follow": args.follow}  # fmt: skip
    return _stream(args, payload, first, each)


def cmd_events(args: Args) -> int:
    """Print the recent events as JSON lines; with -f, new ones until interrupted."""
    from pyinit.core.protocol import ReplyError, dumps, parse_reply

    last: Any = None

    def first(reply: dict[str, Any], out: Any) -> None:
        if not isinstance(reply.get("events"), list):
            raise ReplyError("the reply has no list of events (is this pyinit's socket?)")
        for event in reply["events"]:
            out.write(dumps(event).encode() + b"\n")

    def each(raw: bytes, out: Any) -> Optional[int]:
        nonlocal last
        if not raw and last == "shutdown.end":
            return 0  # pyinit shut down: the stream ends with it
        if not raw:
            sys.stderr.write("svctl: pyinit closed the event stream (shut down, or "
                             "this reader fell too far behind)\n")
            return 1
        msg = parse_reply(raw)
        if isinstance(msg.get("event"), dict):
            last = msg["event"].get("event")
            out.write(dumps(msg["event"]).encode() + b"\n")
            out.flush()
        return None

    payload = {"cmd": "events", "services": args.services, "follow": args.follow}
    return _stream(args, payload, first, each)


def _stream(args: Args, payload: dict[str, Any],
            first: Callable[[dict[str, Any], Any], None],
            each: Callable[[bytes, Any], Optional[int]]) -> int:
    """A streaming request (logs, events): first(reply, out) prints the first reply;
    with -f, each(line, out) every further line (b"" when pyinit closed the stream)
    until it returns an exit code. A closed stdout exits 141 (stdio.guarded)."""
    import socket

    from pyinit.core.protocol import SOCKET_NAME, VERSION, dumps, parse_reply

    path = os.path.join(args.run_dir, SOCKET_NAME)
    out = sys.stdout.buffer if sys.stdout is not None else open(os.devnull, "wb")  # noqa: SIM115
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            sock.sendall(dumps({"v": VERSION, **payload}).encode() + b"\n")
            lines = _Lines(sock)
            reply = parse_reply(lines.next() or b"{}")
            if not reply.get("ok"):
                raise Unreachable(refusal(reply))
            first(reply, out)
            out.flush()
            sock.settimeout(None)
            while args.follow:
                rc = each(lines.next(watch_stdout=True), out)
                if rc is not None:
                    return rc
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and broken(1):
            raise  # our reader went away: stdio.guarded exits 141
        reason = getattr(exc, "strerror", None) or str(exc)
        raise Unreachable(f"cannot reach pyinit at {path}: {reason}") from None
    except KeyboardInterrupt:
        return 0
    return 0


class _LogPrefix:
    """Lines of several services (a `logs` reply with `entries`), as `NAME | line` with
    the names padded to one width; a name is made safe for a terminal (it comes from
    a service dir), the line is the service's own output, as in prefix mode."""

    def __init__(self, first: dict[str, Any]) -> None:
        from pyinit.core.protocol import ReplyError
        from pyinit.core.statustable import safe

        if not isinstance(first.get("entries"), list):
            raise ReplyError("the reply has no list of entries (is this pyinit's socket?)")
        self.safe = safe
        names = first.get("services")
        names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
        self.width = max([len(safe(n, 40)) for n in names[:1000]] + [0])

    def label(self, name: Any) -> str:
        return self.safe(name if isinstance(name, str) else "?", 40).ljust(self.width)

    def entries(self, first: dict[str, Any]) -> list[Any]:
        return [self.line({"service": e[0], "line": e[1]}) if isinstance(e, list) and len(e) == 2
                else None for e in first["entries"]]  # fmt: skip

    def line(self, msg: dict[str, Any]) -> Optional[str]:
        text = msg.get("line")
        return f"{self.label(msg.get('service'))} | {text}" if isinstance(text, str) else None


def cmd_tree(args: Args) -> int:
    from pyinit.cli.proctree_stats import render_tree

    reply = ask(args, {"cmd": "status", "services": args.services})
    sys.stdout.write(render_tree(reply["services"], color=sys.stdout.isatty()))
    return sum(1 for r in reply["services"] if r.get("missing"))


def lsb_script(program: str) -> Optional[str]:
    """The service an init script link names (`/etc/init.d/NAME` -> NAME), as Debian's
    sv runs in LSB mode when it is called from an /etc/init.d/ directory; else None."""
    where, name = os.path.split(program)
    if ("/" + where).endswith("/etc/init.d") and name:
        return name
    return None


def lsb_argv(name: str, argv: list[str]) -> list[str]:
    """`/etc/init.d/NAME [-v] [-w SEC] COMMAND [ignored...]` as svctl's command line for
    service NAME; raises SystemExit(2) with sv's usage line for a command it refuses."""
    options = []
    rest = list(argv)
    while rest and rest[0].startswith("-") and rest[0] not in ("-", "--"):
        opt = rest.pop(0)
        options.append(opt)
        if opt == "-w" and rest:
            options.append(rest.pop(0))
    if rest[:1] == ["--"]:
        rest.pop(0)
    word = rest[0] if rest else ""
    # sv in LSB mode: sv's words only (svctl's own `tree` is sv's `t`, term), and one
    # starting with 's' must be exactly status, start, stop or shutdown
    if word in COMMANDS or word == "status":
        command = word
    elif word[:1] in SV_FIRST_CHAR and word[:1] != "s":
        command = SV_FIRST_CHAR[word[:1]]
    else:
        sys.stderr.write(f"usage: {name} [-w sec] command\n\n")  # sv ends it so
        sys.exit(2)
    return [*options, command, "--", name]


# svctl's own commands (not runit letters sent by cmd_control)
HANDLERS = {
    "status": cmd_status,
    "s": cmd_status,
    "list": cmd_status,
    "tree": cmd_tree,
    "rescan": cmd_rescan,
    "shutdown-container": cmd_shutdown_container,
    "logs": cmd_logs,
    "events": cmd_events,
    "scale": cmd_scale,
    "run": cmd_run,
}


@guarded("svctl")
def main(argv: Optional[list[str]] = None) -> None:
    lsb = lsb_script(sys.argv[0]) if argv is None else None
    if lsb is not None:
        argv = lsb_argv(lsb, sys.argv[1:])
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv, dict(os.environ))
    except Usage as exc:
        if str(exc):
            sys.stderr.write(f"svctl: error: {exc}\n")
        if not exc.brief:
            sys.stderr.write(USAGE + "\n")
        sys.exit(USAGE_ERROR)
    handler = HANDLERS.get(args.command, cmd_control)
    if lsb is not None and args.command == "status":
        handler = cmd_lsb_status
    try:
        rc = handler(args)
    except Unreachable as exc:
        sys.stderr.write(f"svctl: fatal: {exc}\n")
        sys.exit(USAGE_ERROR)
    except KeyboardInterrupt:
        sys.exit(USAGE_ERROR)
    sys.stdout.flush()
    sys.exit(min(rc, 99))
