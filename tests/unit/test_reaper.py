"""ExitStatus decoding and the Reaper's routing, with real wait statuses."""

from __future__ import annotations

import os
import signal

import pytest

from pyinit.core.exits import ExitStatus
from pyinit.runtime.reaper import Reaper


def _fork(body) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            body()
        finally:
            os._exit(99)
    return pid


def _status_of(body) -> int:
    pid = _fork(body)
    _, status = os.waitpid(pid, 0)
    return status


def _die_of(signum: int):
    def body() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core files
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
        signal.pause()

    return body


def test_every_exit_code_from_real_children() -> None:
    for code in range(256):
        status = _status_of(lambda code=code: os._exit(code))
        decoded = ExitStatus.decode(status)
        assert decoded == ExitStatus(code=code), code
        assert decoded.shell_code == code
        assert decoded.signal is None
        assert decoded.describe() == f"exit code {code}"


@pytest.mark.parametrize(
    "signum",
    [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGSEGV,
     signal.SIGABRT, signal.SIGUSR1, signal.SIGPIPE, signal.SIGRTMIN, signal.SIGRTMIN + 3,
     signal.SIGRTMAX],
)
def test_signal_deaths_from_real_children(signum: int) -> None:
    decoded = ExitStatus.decode(_status_of(_die_of(signum)))
    assert decoded.signal == signum
    assert decoded.code is None
    assert decoded.shell_code == 128 + signum
    assert decoded.shell_code != 0
    assert not decoded.core  # RLIMIT_CORE is 0
    assert decoded.describe().startswith("signal SIG")


def test_oom_style_sigkill_is_137_not_0() -> None:
    decoded = ExitStatus.decode(_status_of(_die_of(signal.SIGKILL)))
    assert decoded.shell_code == 137
    assert decoded.describe() == "signal SIGKILL"


@pytest.mark.parametrize("code", [0, 1, 2, 126, 127, 128, 200, 255])
def test_constructed_exit_statuses(code: int) -> None:
    status = code << 8
    assert ExitStatus.decode(status) == ExitStatus(code=code)
    assert ExitStatus.decode(status).shell_code == code


def test_constructed_signal_statuses_for_every_signal() -> None:
    for signum in sorted(int(s) for s in signal.valid_signals()):
        decoded = ExitStatus.decode(signum)
        assert decoded == ExitStatus(signal=signum, core=False)
        assert decoded.shell_code == 128 + signum
        cored = ExitStatus.decode(signum | 0x80)
        assert cored == ExitStatus(signal=signum, core=True)
        assert cored.describe().endswith(" (core dumped)")
        assert cored.shell_code == 128 + signum


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (ExitStatus(code=0), "exit code 0"),
        (ExitStatus(code=3), "exit code 3"),
        (ExitStatus(signal=signal.SIGKILL), "signal SIGKILL"),
        (ExitStatus(signal=signal.SIGTERM), "signal SIGTERM"),
        (ExitStatus(signal=signal.SIGSEGV, core=True), "signal SIGSEGV (core dumped)"),
        (ExitStatus(signal=int(signal.SIGRTMIN) + 2), "signal SIGRTMIN+2"),
        (ExitStatus(signal=int(signal.SIGRTMAX)), "signal SIGRTMAX"),
    ],
)
def test_describe(status: ExitStatus, text: str) -> None:
    assert status.describe() == text


def test_core_dump_is_reported_when_the_kernel_says_so() -> None:
    """A real SIGQUIT with a core limit: if the kernel wrote a core, say so."""
    status = _status_of(_die_of(signal.SIGQUIT))
    decoded = ExitStatus.decode(status)
    assert decoded.signal == signal.SIGQUIT
    assert decoded.core == os.WCOREDUMP(status)


# --- the Reaper -------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_stray_children() -> None:
    """The Reaper waits for any child: collect exited leftovers (e.g. orphans
    adopted by this process if it is a subreaper) so they are not counted."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _reap_all(reaper: Reaper, expected: int) -> int:
    total = 0
    # each child is already waited-for-able or about to be: block in waitid
    # without reaping (WNOWAIT) so reap() finds them without a sleep loop
    while total < expected:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        total += reaper.reap()
    return total


def test_reaper_routes_owned_statuses_and_counts_strays() -> None:
    reaper = Reaper()
    got: list[tuple[int, ExitStatus]] = []
    owned_a = _fork(lambda: os._exit(3))
    owned_b = _fork(_die_of(signal.SIGTERM))
    strays = [_fork(lambda: os._exit(0)) for _ in range(5)]
    reaper.watch(owned_a, lambda pid, st: got.append((pid, st)))
    reaper.watch(owned_b, lambda pid, st: got.append((pid, st)))
    assert reaper.owned() == {owned_a, owned_b}
    assert _reap_all(reaper, 7) == 7
    assert sorted(got) == sorted(
        [(owned_a, ExitStatus(code=3)), (owned_b, ExitStatus(signal=signal.SIGTERM))]
    )
    assert reaper.strays == len(strays)
    assert reaper.owned() == set()
    # nothing left: reap() notices there are no children at all
    assert reaper.reap() == 0
    assert reaper.has_children is False


def test_reaper_reap_never_blocks_with_a_running_child() -> None:
    reaper = Reaper()
    r, w = os.pipe()
    pid = _fork(lambda: (os.close(w), os.read(r, 1), os._exit(0)))
    os.close(r)
    try:
        assert reaper.reap() == 0
        assert reaper.has_children is True
    finally:
        os.close(w)  # child reads EOF and exits
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)


def test_reaper_survives_a_raising_owner(capfd: pytest.CaptureFixture[str]) -> None:
    reaper = Reaper()
    got: list[int] = []

    def broken(pid: int, status: ExitStatus) -> None:
        raise RuntimeError("handler bug")

    a = _fork(lambda: os._exit(1))
    b = _fork(lambda: os._exit(2))
    reaper.watch(a, broken)
    reaper.watch(b, lambda pid, st: got.append(st.code or 0))
    assert _reap_all(reaper, 2) == 2
    assert got == [2]
    err = capfd.readouterr().err
    assert f"internal error in exit handler for pid {a}" in err
    assert "RuntimeError: handler bug" in err


def test_watch_sets_has_children() -> None:
    reaper = Reaper()
    reaper.has_children = False
    reaper.watch(12345678, lambda pid, st: None)
    assert reaper.has_children is True
