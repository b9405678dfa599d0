"""Which signals are forwarded, signal names (core.signames), the inherited signal state
and the signalfd (linux.signals)."""

from __future__ import annotations

import json
import signal
import textwrap

import pytest
from helpers import run_python, unmanaged_ignored_bits

from pyinit.core import signames
from pyinit.linux import signals

NEVER_FORWARDED = {
    signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGSEGV, signal.SIGBUS,
    signal.SIGILL, signal.SIGFPE, signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS,
}
MUST_FORWARD = [
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
    "SIGSTKFLT", "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ",
    "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR",
]
RTMIN, RTMAX = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
ALL = sorted(int(s) for s in signal.valid_signals())


def test_forwardable_is_everything_but_the_excluded() -> None:
    fwd = signames.forwardable()
    assert fwd == sorted(fwd)
    assert all(type(s) is int for s in fwd)
    assert set(fwd) == set(ALL) - {int(s) for s in NEVER_FORWARDED}
    assert not set(fwd) & {int(s) for s in NEVER_FORWARDED}


@pytest.mark.parametrize("sig_name", MUST_FORWARD)
def test_forwardable_includes(sig_name: str) -> None:
    if not hasattr(signal, sig_name):
        pytest.skip(f"{sig_name} does not exist on this platform")
    assert int(getattr(signal, sig_name)) in signames.forwardable()


def test_forwardable_includes_every_realtime_signal() -> None:
    fwd = set(signames.forwardable())
    assert set(range(RTMIN, RTMAX + 1)) <= fwd
    assert RTMAX - RTMIN >= 8


def test_handled_is_forwardable_plus_chld() -> None:
    assert signames.handled() == sorted(signames.forwardable() + [int(signal.SIGCHLD)])
    assert signal.SIGKILL not in signames.handled()
    assert signal.SIGSEGV not in signames.handled()


def test_shutdown_signals() -> None:
    expected = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}
    assert expected == signames.SHUTDOWN_SIGNALS
    assert set(signames.forwardable()) >= expected


# --- names -------------------------------------------------------------------


def test_name_parse_round_trip_for_every_signal() -> None:
    for signum in ALL:
        text = signames.name(signum)
        assert text.startswith("SIG"), signum
        assert signames.parse(text) == signum, text
        assert signames.parse(text[3:]) == signum
        assert signames.parse(text.lower()) == signum
        assert signames.parse(str(signum)) == signum


@pytest.mark.parametrize(
    ("signum", "text"),
    [
        (signal.SIGTERM, "SIGTERM"),
        (signal.SIGKILL, "SIGKILL"),
        (RTMIN, "SIGRTMIN"),
        (RTMIN + 1, "SIGRTMIN+1"),
        (RTMIN + 3, "SIGRTMIN+3"),
        (RTMAX, "SIGRTMAX"),
        (0, "0"),
        (200, "200"),
    ],
)
def test_name(signum: int, text: str) -> None:
    assert signames.name(signum) == text


@pytest.mark.parametrize(
    ("text", "signum"),
    [
        ("TERM", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("sigterm", signal.SIGTERM),
        ("  term\n", signal.SIGTERM),
        ("15", signal.SIGTERM),
        ("9", signal.SIGKILL),
        ("HUP", signal.SIGHUP),
        ("RTMIN+3", RTMIN + 3),
        ("SIGRTMIN+3", RTMIN + 3),
        ("rtmin+0", RTMIN),
        ("RTMIN", RTMIN),
        ("RTMAX", RTMAX),
        (f"RTMIN+{RTMAX - RTMIN}", RTMAX),
        (str(RTMIN + 2), RTMIN + 2),
    ],
)
def test_parse(text: str, signum: int) -> None:
    assert signames.parse(text) == signum
    assert type(signames.parse(text)) is int


@pytest.mark.parametrize(
    "text",
    ["", " ", "FOO", "SIGFOO", "SIG", "TERM2", "0", "32", "65", "999", "-9", "9.0",
     f"RTMIN+{RTMAX - RTMIN + 1}", "RTMIN+99", "RTMIN+-1", "RTMIN+", "RTMAX+1", "RTMAX-1",
     "SIG_IGN", "SIG_DFL"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        signames.parse(text)


# --- inherited state and the signalfd (in a fresh interpreter) -------------------


def test_inherited_capture_and_restore_in_child() -> None:
    """Capture what a parent set up, then let pyinit-like handlers and blocks pile
    up; a child restored with restore_in_child has exactly the captured state."""
    code = textwrap.dedent(
        """
        import json, os, signal, subprocess
        from pyinit.core import signames
        from pyinit.linux import signals
        RT1 = signal.SIGRTMIN + 1
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, [RT1, signal.SIGUSR1])
        inh = signals.Inherited.capture()
        # now behave like pyinit: block everything handled, install handlers
        fd = signals.SignalFd(signames.handled())
        signal.signal(signal.SIGWINCH, lambda *a: None)
        signal.signal(signal.SIGUSR2, lambda *a: None)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.dup2(w, 1)
            inh.restore_in_child()
            os.execvp("cat", ["cat", "/proc/self/status"])
        os.close(w)
        out = os.read(r, 4096).decode()
        os.waitpid(pid, 0)
        status = dict(line.split(":\\t") for line in out.splitlines()
                      if line.startswith(("SigBlk", "SigIgn", "SigCgt")))
        print(json.dumps({
            "mask": sorted(inh.mask), "ignored": sorted(inh.ignored),
            "status": {k: int(v, 16) for k, v in status.items()},
        }))
        """
    )
    result = json.loads(run_python(code).stdout)
    rt1 = RTMIN + 1
    assert result["mask"] == sorted([rt1, int(signal.SIGUSR1)])
    assert result["ignored"] == sorted([int(signal.SIGUSR2), int(signal.SIGHUP)])
    bits = result["status"]
    assert bits["SigBlk"] == (1 << (rt1 - 1)) | (1 << (signal.SIGUSR1 - 1))
    assert bits["SigIgn"] == (
        (1 << (signal.SIGUSR2 - 1)) | (1 << (signal.SIGHUP - 1)) | unmanaged_ignored_bits()
    )
    assert bits["SigCgt"] == 0


def test_inherited_capture_never_claims_python_ignored_signals() -> None:
    """Python ignores SIGPIPE/SIGXFSZ itself, so they are not 'inherited' ignored."""
    code = (
        "import json\nfrom pyinit.linux import signals\n"
        "i = signals.Inherited.capture()\n"
        "print(json.dumps({'mask': sorted(i.mask), 'ignored': sorted(i.ignored)}))\n"
    )
    result = json.loads(run_python(code).stdout)
    assert result == {"mask": [], "ignored": []}


def test_signalfd_reads_who_sent_what() -> None:
    code = textwrap.dedent(
        """
        import json, os, select, signal
        from pyinit.linux import signals
        RT2 = signal.SIGRTMIN + 2
        sfd = signals.SignalFd([signal.SIGUSR1, signal.SIGCHLD, RT2])
        assert sfd.read() == []                       # never blocks
        me = os.getpid()
        os.kill(me, signal.SIGUSR1)
        os.kill(me, signal.SIGUSR1)                   # standard signals coalesce
        for _ in range(3):
            os.kill(me, RT2)                          # realtime signals queue
        got = sfd.read()
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        select.select([sfd.fd], [], [], 10)
        chld = sfd.read()
        os.waitpid(pid, 0)
        print(json.dumps({
            "me": me, "child": pid,
            "got": [[g.signum, g.code, g.pid] for g in got],
            "chld": [[g.signum, g.code, g.pid] for g in chld],
            "after": len(sfd.read()),
        }))
        sfd.close()
        """
    )
    result = json.loads(run_python(code).stdout)
    me = result["me"]
    usr1 = [int(signal.SIGUSR1), signals.SI_USER, me]
    rt2 = [RTMIN + 2, signals.SI_USER, me]
    assert sorted(result["got"]) == sorted([usr1, rt2, rt2, rt2])
    assert result["chld"] == [[int(signal.SIGCHLD), 1, result["child"]]]  # CLD_EXITED
    assert result["after"] == 0
