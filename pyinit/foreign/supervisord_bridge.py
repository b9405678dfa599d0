"""A supervisord [eventlistener:x] under pyinit: the bridge its service's `run` execs.

`python -I -m pyinit.foreign.supervisord_bridge --pool NAME --events LIST
[--buffer-size N] [--server ID] [--user USER] [--exitcodes SERVICE=CODES]...
-- COMMAND...` starts COMMAND (the listener) as its child, follows pyinit's events
on the control socket (as `svctl events -f`) and speaks supervisord's protocol on
the listener's stdin and stdout; the rules are foreign/supervisord_events.py's.
The listener's stderr is the bridge's (the service's log). Not PID 1: it may
block. It forwards the stop signals to the listener and exits as the listener did.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from typing import Any, NoReturn, Optional

from pyinit.foreign import supervisord_events as sv

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)  # fmt: skip
MAX_LINE = 1024 * 1024  # bytes of one line from pyinit's socket
RETRY = 1.0  # seconds between tries to reach pyinit's socket
USAGE = ("usage: python -m pyinit.foreign.supervisord_bridge --pool NAME --events LIST "
         "[--buffer-size N] [--server ID] [--user USER] [--exitcodes SERVICE=CODES]... "
         "-- COMMAND...")  # fmt: skip


class Opts:
    def __init__(self) -> None:
        self.pool = ""
        self.events = ""
        self.buffer_size = 10
        self.server = "supervisor"
        self.user: Optional[str] = None
        self.exitcodes: dict[str, tuple[int, ...]] = {}
        self.command: list[str] = []


def parse(argv: list[str]) -> Opts:
    opts = Opts()
    args = list(argv)
    while args and args[0] != "--":
        opt = args.pop(0)
        if opt not in ("--pool", "--events", "--buffer-size", "--server", "--user",
                       "--exitcodes") or not args:  # fmt: skip
            fail(f"bad option {opt[:40]!r}\n{USAGE}")
        value = args.pop(0)
        if opt == "--buffer-size":
            opts.buffer_size = int(value) if value.isdigit() and 0 < int(value) <= 10**5 else 0
            if not opts.buffer_size:
                fail(f"--buffer-size: not from 1 to 100000: {value[:40]!r}")
        elif opt == "--exitcodes":
            name, _, codes = value.rpartition("=")
            try:
                opts.exitcodes[name] = tuple(int(c) for c in codes.split(",") if c)
            except ValueError:
                fail(f"--exitcodes: bad value {value[:60]!r}")
        else:
            setattr(opts, opt[2:], value)
    opts.command = args[1:]
    if not opts.command or not opts.pool:
        fail(USAGE)
    return opts


def say(level: str, pool: str, text: str) -> None:
    try:
        sys.stderr.write(f"pyinit: {level}: [eventlistener:{pool}] {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def fail(text: str, pool: str = "?") -> NoReturn:
    say("error", pool, text)
    sys.exit(2)


def spawn(opts: Opts) -> subprocess.Popen:
    """The listener, with pipes on stdin and stdout, as --user when given."""
    creds: dict[str, Any] = {}
    if opts.user:
        import pwd

        try:
            pw = pwd.getpwuid(int(opts.user)) if opts.user.isdigit() else pwd.getpwnam(opts.user)
        except (KeyError, OverflowError):
            fail(f"user {opts.user[:40]!r}: no such user", opts.pool)
        groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
        creds = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": groups}

    from pyinit.linux import prctl  # imported here: the child may not read pyinit's files

    def child() -> None:
        try:
            prctl.set_pdeathsig(signal.SIGKILL)  # the bridge killed: the listener too
        except OSError:
            pass

    try:
        return subprocess.Popen(opts.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                preexec_fn=child, **creds)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)[:200]
        fail(f"cannot run {opts.command[0][:80]!r}: {why}", opts.pool)


def connect() -> Optional[tuple[socket.socket, list[dict[str, Any]], bytes]]:
    """Follow pyinit's events: (the socket, the recent events, bytes read past them)."""
    from pyinit.core.protocol import SOCKET_NAME, VERSION, dumps, parse_reply
    from pyinit.runtime import rundir

    path = os.path.join(rundir.find(os.environ), SOCKET_NAME)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(dumps({"v": VERSION, "cmd": "events", "services": [], "follow": True})
                     .encode() + b"\n")  # fmt: skip
        data = b""
        while b"\n" not in data and len(data) < MAX_LINE:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            data += chunk
        line, _, rest = data.partition(b"\n")
        first = parse_reply(line)
        if not first.get("ok") or not isinstance(first.get("events"), list):
            raise OSError(str(first.get("error", "refused"))[:200])
        sock.settimeout(None)
        return sock, [e for e in first["events"] if isinstance(e, dict)], rest
    except (OSError, ValueError):
        sock.close()
        return None


class Bridge:
    """The loop: pyinit's events and ticks in, the listener's protocol out."""

    def __init__(self, opts: Opts, proc: subprocess.Popen) -> None:
        self.opts, self.proc = opts, proc
        self.wanted, _ = sv.subscription(opts.events)
        self.states = sv.States(exitcodes=opts.exitcodes)
        self.listener = sv.Listener()
        self.buffer = sv.Buffer(opts.buffer_size)
        self.ticks = sv.Ticks({n: p for n, p in sv.TICKS.items() if n in self.wanted})
        self.ticks.start(time.time())
        self.serial = -1
        self.current: Optional[tuple[str, str, int]] = None
        self.sock: Optional[socket.socket] = None
        self.inbuf = b""
        self.retry_at = 0.0
        self.ended = False  # pyinit said shutdown.end: do not follow again
        self.said_unreachable = False

    def accept(self, name: str, payload: str) -> None:
        if name not in self.wanted or self.listener.state == "UNKNOWN":
            return
        self.serial += 1
        warning = self.buffer.push((name, payload, self.serial))
        if warning:
            say("warning", self.opts.pool, warning)

    def pyinit_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "shutdown.end":
            self.ended = True
        change = self.states.apply(event)
        if change:
            self.accept(*change)

    def follow(self) -> None:
        got = connect()
        if got is None:
            if not self.said_unreachable:
                say("warning", self.opts.pool, "cannot follow pyinit's events yet: trying again")
                self.said_unreachable = True
            self.retry_at = time.monotonic() + RETRY
            return
        self.sock, recent, self.inbuf = got
        self.said_unreachable = False
        for event in recent:  # the states so far: from_state of what comes next
            self.states.apply(event)
        self.read_lines()

    def read_lines(self) -> None:
        while b"\n" in self.inbuf:
            line, _, self.inbuf = self.inbuf.partition(b"\n")
            try:
                from pyinit.core.protocol import parse_reply

                msg = parse_reply(line)
            except ValueError:
                continue
            if isinstance(msg.get("event"), dict):
                self.pyinit_event(msg["event"])
        if len(self.inbuf) > MAX_LINE:
            self.drop_socket()

    def drop_socket(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.inbuf = None, b""
        if not self.ended:
            say("warning", self.opts.pool, "pyinit closed the event stream: following again")
            self.retry_at = time.monotonic() + RETRY

    def dispatch(self) -> None:
        if self.listener.state != "READY" or self.current is not None:
            return
        item, note = self.buffer.pop()
        if note:
            say("info", self.opts.pool, note)
        if item is None:
            return
        name, payload, serial = item
        data = sv.envelope(name, payload, serial, self.opts.pool, serial, self.opts.server)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except OSError:  # EPIPE: the listener is going; its exit ends the bridge
            self.buffer.push(item, head=True)
            return
        self.current = item
        self.listener.sent()

    def from_listener(self, data: bytes) -> None:
        try:
            results = self.listener.feed(data)
        except sv.ProtocolError as exc:
            say("warning", self.opts.pool, f"{exc}: it has entered the UNKNOWN state and will "
                "no longer receive events (it violated the eventlistener protocol)")  # fmt: skip
            self.current = None
            self.buffer.items.clear()
            return
        for body in results:
            if self.current is not None and not sv.accepted(body):
                self.buffer.push(self.current, head=True)  # rejected: sent again
            self.current = None

    def timeout(self) -> Optional[float]:
        waits = []
        at = self.ticks.next_at()
        if at is not None:
            waits.append(at - time.time())
        if self.sock is None and not self.ended:
            waits.append(self.retry_at - time.monotonic())
        return max(0.0, min(waits)) if waits else None

    def run(self) -> int:
        assert self.proc.stdout is not None
        out = self.proc.stdout.fileno()
        self.follow()
        while True:
            self.dispatch()
            fds = [out] + ([self.sock.fileno()] if self.sock is not None else [])
            readable, _, _ = select.select(fds, [], [], self.timeout())
            if out in readable:
                data = os.read(out, 65536)
                if not data:
                    return self.proc.wait()
                self.from_listener(data)
            if self.sock is not None and self.sock.fileno() in readable:
                try:
                    chunk = self.sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    self.drop_socket()
                else:
                    self.inbuf += chunk
                    self.read_lines()
            for name, payload in self.ticks.due(time.time()):
                self.accept(name, payload)
            if self.sock is None and not self.ended and time.monotonic() >= self.retry_at:
                self.follow()


def main(argv: Optional[list[str]] = None) -> None:
    opts = parse(sys.argv[1:] if argv is None else argv)
    try:
        sv.subscription(opts.events)
    except sv.EventsError as exc:
        fail(f"events: {exc}", opts.pool)
    proc = spawn(opts)
    for signum in FORWARDED:
        signal.signal(signum, lambda n, _f: proc.send_signal(n))
    code = Bridge(opts, proc).run()
    if code < 0:  # killed by a signal: die of it too, as pyinit then reports it
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code & 0xFF)


if __name__ == "__main__":
    main()
