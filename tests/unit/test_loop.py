"""The event loop: timers, cancellation, deadlines, guarded callbacks, fds."""

from __future__ import annotations

import os
import socket
import time

import pytest

from pyinit.runtime.loop import EventLoop


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeSelector:
    """Stands in for the selector: 'waiting' just moves the fake clock forward."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float | None] = []

    def select(self, timeout: float | None):
        assert timeout is not None, "the loop would block forever"
        self.waits.append(timeout)
        self.clock.now += timeout
        return []


@pytest.fixture
def fake() -> tuple[EventLoop, FakeClock, FakeSelector]:
    clock = FakeClock()
    loop = EventLoop(clock=clock)
    sel = FakeSelector(clock)
    loop._selector = sel  # type: ignore[assignment]
    return loop, clock, sel


def test_timers_fire_in_time_order(fake) -> None:
    loop, clock, _ = fake
    fired: list[tuple[str, float]] = []
    loop.call_later(3, lambda: fired.append(("c", clock.now)))
    loop.call_later(1, lambda: fired.append(("a", clock.now)))
    loop.call_later(2, lambda: fired.append(("b", clock.now)))
    loop.call_at(1001.0, lambda: fired.append(("a2", clock.now)))  # same time: FIFO
    assert loop.run_until(lambda: len(fired) == 4, timeout=10) is True
    assert [n for n, _ in fired] == ["a", "a2", "b", "c"]
    assert [t for _, t in fired] == [1001.0, 1001.0, 1002.0, 1003.0]


def test_timer_never_fires_early(fake) -> None:
    loop, clock, sel = fake
    fired: list[float] = []
    loop.call_later(5, lambda: fired.append(clock.now))
    loop.run_once()
    assert fired == [1005.0]
    assert sel.waits == [5.0]


def test_cancelled_timer_does_not_fire(fake) -> None:
    loop, clock, _ = fake
    fired: list[str] = []
    t1 = loop.call_later(1, lambda: fired.append("cancelled"))
    loop.call_later(2, lambda: fired.append("kept"))
    t1.cancel()
    assert loop.run_until(lambda: bool(fired), timeout=10)
    assert fired == ["kept"]
    assert clock.now == 1002.0  # no wake-up at the cancelled timer's time


def test_cancel_from_another_callback(fake) -> None:
    loop, _, _ = fake
    fired: list[str] = []
    later = loop.call_later(2, lambda: fired.append("later"))
    loop.call_later(1, later.cancel)
    loop.call_later(3, lambda: fired.append("end"))
    loop.run_until(lambda: "end" in fired, timeout=10)
    assert fired == ["end"]


def test_timer_scheduled_by_a_timer(fake) -> None:
    loop, clock, _ = fake
    fired: list[float] = []
    loop.call_later(1, lambda: loop.call_later(1, lambda: fired.append(clock.now)))
    assert loop.run_until(lambda: bool(fired), timeout=10)
    assert fired == [1002.0]


def test_run_until_timeout_returns_false_at_the_deadline(fake) -> None:
    loop, clock, sel = fake
    fired: list[str] = []
    loop.call_later(10, lambda: fired.append("too late"))
    assert loop.run_until(lambda: False, timeout=2.5) is False
    assert clock.now == 1002.5
    assert fired == []
    assert sel.waits == [2.5]  # one wait, straight to the deadline: no polling


def test_run_until_already_done_does_not_wait(fake) -> None:
    loop, clock, sel = fake
    assert loop.run_until(lambda: True, timeout=5) is True
    assert loop.run_until(lambda: True) is True
    assert sel.waits == [] and clock.now == 1000.0 and loop.wakeups == 0


def test_run_until_zero_timeout(fake) -> None:
    loop, _, sel = fake
    assert loop.run_until(lambda: False, timeout=0) is False
    assert sel.waits == []


def test_next_timeout_without_timers_is_forever() -> None:
    loop = EventLoop()
    assert loop._next_timeout(None) is None
    t = loop.call_later(100, lambda: None)
    t.cancel()
    assert loop._next_timeout(None) is None  # cancelled timers do not wake the loop


def test_raising_callback_is_logged_and_the_loop_continues(
    fake, capfd: pytest.CaptureFixture[str]
) -> None:
    loop, _, _ = fake
    fired: list[str] = []

    def broken() -> None:
        raise ZeroDivisionError("boom")

    loop.call_later(1, broken)
    loop.call_later(1, lambda: fired.append("same tick"))
    loop.call_later(2, lambda: fired.append("next tick"))
    assert loop.run_until(lambda: len(fired) == 2, timeout=10)
    assert fired == ["same tick", "next tick"]
    err = capfd.readouterr().err
    assert "pyinit: error: internal error in " in err
    assert "broken" in err
    assert "Traceback" in err and "ZeroDivisionError: boom" in err


# --- fds, with the real selector and clock -------------------------------------


@pytest.fixture
def pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def test_add_reader_on_a_pipe(pipe) -> None:
    r, w = pipe
    loop = EventLoop()
    got: list[bytes] = []

    def on_read() -> None:
        got.append(os.read(r, 100))

    loop.add_reader(r, on_read)
    assert loop.run_until(lambda: bool(got), timeout=0.05) is False  # nothing yet
    os.write(w, b"hello")
    start = time.monotonic()
    assert loop.run_until(lambda: bool(got), timeout=5) is True
    assert time.monotonic() - start < 1
    assert got == [b"hello"]


def test_reader_and_timer_interleave(pipe) -> None:
    r, w = pipe
    loop = EventLoop()
    events: list[str] = []
    loop.add_reader(r, lambda: events.append(os.read(r, 100).decode()))
    loop.call_later(0.01, lambda: os.write(w, b"from-timer"))
    assert loop.run_until(lambda: bool(events), timeout=5)
    assert events == ["from-timer"]


def test_remove_reader(pipe) -> None:
    r, w = pipe
    loop = EventLoop()
    got: list[bytes] = []
    loop.add_reader(r, lambda: got.append(os.read(r, 100)))
    loop.remove(r)
    loop.remove(r)  # twice is harmless
    os.write(w, b"x")
    assert loop.run_until(lambda: bool(got), timeout=0.05) is False
    assert got == []


def test_raising_reader_does_not_stop_the_loop(pipe, capfd: pytest.CaptureFixture[str]) -> None:
    r, w = pipe
    loop = EventLoop()
    calls: list[bytes] = []

    def reader() -> None:
        data = os.read(r, 1)
        calls.append(data)
        if data == b"1":
            raise RuntimeError("bad reader")

    loop.add_reader(r, reader)
    os.write(w, b"12")
    assert loop.run_until(lambda: len(calls) == 2, timeout=5)
    assert calls == [b"1", b"2"]
    assert "RuntimeError: bad reader" in capfd.readouterr().err


def test_writer_added_and_removed_next_to_a_reader(pipe) -> None:
    r, w = pipe
    loop = EventLoop()
    writes: list[int] = []
    reads: list[bytes] = []

    def on_writable() -> None:
        writes.append(os.write(w, b"x"))
        loop.remove_writer(w)

    loop.add_reader(r, lambda: reads.append(os.read(r, 100)))
    loop.add_writer(w, on_writable)
    assert loop.run_until(lambda: bool(reads), timeout=5)
    assert writes == [1] and reads == [b"x"]
    # removing the writer left the reader in place
    os.write(w, b"y")
    assert loop.run_until(lambda: len(reads) == 2, timeout=5)
    assert reads[1] == b"y"


def test_writer_on_the_same_fd_as_a_reader() -> None:
    a, b = socket.socketpair()
    try:
        loop = EventLoop()
        events: list[str] = []
        loop.add_reader(a.fileno(), lambda: events.append("read:" + a.recv(10).decode()))

        def on_writable() -> None:
            events.append("write")
            loop.remove_writer(a.fileno())

        loop.add_writer(a.fileno(), on_writable)
        assert loop.run_until(lambda: "write" in events, timeout=5)
        b.send(b"hi")
        assert loop.run_until(lambda: "read:hi" in events, timeout=5)
        assert events.count("write") == 1
    finally:
        a.close()
        b.close()


def test_a_reader_removed_by_an_earlier_callback_of_the_batch_is_not_called() -> None:
    """Two fds ready in one select(): the first callback removes the second's reader
    (a service exit closing its notification pipe), which must then not run."""
    loop = EventLoop()
    a, b = os.pipe(), os.pipe()
    calls: list[str] = []
    try:
        def first() -> None:
            calls.append("first")
            os.read(a[0], 10)
            loop.remove(b[0])

        def second() -> None:
            calls.append("second")
            os.read(b[0], 10)
            loop.remove(a[0])

        loop.add_reader(a[0], first)
        loop.add_reader(b[0], second)
        os.write(a[1], b"x")
        os.write(b[1], b"x")
        loop.run_once(loop.clock() + 1)
        assert len(calls) == 1  # whichever the selector listed first removed the other
    finally:
        for fd in (*a, *b):
            os.close(fd)


def test_a_timer_beyond_epolls_limit_is_waited_for_in_turns() -> None:
    """A timer 40 days away (a services-ready timeout of 40 days): epoll_wait takes at
    most 2**31-1 ms, and a longer timeout raised OverflowError out of PID 1's loop."""
    loop = EventLoop()
    r, w = os.pipe()
    try:
        os.write(w, b"x")  # ready at once: the real select returns without waiting
        seen: list[bytes] = []
        loop.add_reader(r, lambda: seen.append(os.read(r, 1)))
        fired: list[bool] = []
        loop.call_later(40 * 86400, lambda: fired.append(True))
        loop.run_once()  # the real selector, asked to wait for the far timer
        assert seen == [b"x"] and fired == []
    finally:
        loop.remove(r)
        os.close(r)
        os.close(w)


def test_a_far_timer_fires_after_several_turns(fake) -> None:
    loop, clock, sel = fake
    fired: list[float] = []
    loop.call_later(60 * 86400, lambda: fired.append(clock.now))
    while not fired:
        loop.run_once()
    assert len(sel.waits) == 3 and max(sel.waits) < 2**31 / 1000
    assert fired[0] >= 1000.0 + 60 * 86400
