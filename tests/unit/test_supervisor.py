"""core/machine.py's Machine, the pure state machine of one process slot: events in, actions out.

No processes here: a test plays the I/O shell, calling spawned()/exited()/tick()
with explicit times and checking the actions that come back.
"""

from __future__ import annotations

import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyinit.core.exits import ExitStatus
from pyinit.core.machine import (
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    DOWN,
    FINISH,
    FROZEN,
    LETTER_SIGNALS,
    LETTERS,
    LIVE,
    RUN,
    SETUP,
    STOPPING,
    ClosePipe,
    Machine,
    Policy,
    Signal,
    Start,
    finish_args,
)

EXIT0 = ExitStatus(code=0)
EXIT1 = ExitStatus(code=1)
TERMED = ExitStatus(signal=signal.SIGTERM)
KILLED = ExitStatus(signal=signal.SIGKILL)
STOP = [Signal(signal.SIGTERM, group=False), Signal(signal.SIGCONT, group=False)]


def machine(**policy) -> Machine:
    return Machine(Policy(**policy))


def running(pid: int = 100, now: float = 0.0, **policy) -> Machine:
    """A machine that booted at `now` and whose run got `pid`."""
    m = machine(**policy)
    assert m.boot(now, normally_up=True) == [Start()]
    m.spawned(pid, now)
    return m


def crash(m: Machine, at: float, pid: int, status: ExitStatus = EXIT1) -> list:
    """The run (started at some earlier time) exits at `at`."""
    assert m.state == RUN and m.pid == pid
    return m.exited(status, at)


# --- boot ------------------------------------------------------------------------------
def test_boot_normally_up_starts_run() -> None:
    m = machine()
    assert m.boot(5.0, normally_up=True) == [Start()]
    assert (m.state, m.want, m.pid, m.since) == (RUN, "u", None, 5.0)
    m.spawned(42, 5.5)
    assert (m.pid, m.since, m.started_at) == (42, 5.5, 5.5)
    assert not m.is_down()
    assert m.deadline() is None


def test_boot_with_down_file_does_not_start() -> None:
    m = machine()
    assert m.boot(5.0, normally_up=False) == []
    assert (m.state, m.want, m.pid, m.since) == (DOWN, "d", None, 5.0)
    assert m.is_down()
    assert m.deadline() is None
    # nothing happens with time
    assert m.tick(1000.0) == []
    assert m.is_down()


def test_up_starts_a_normally_down_service() -> None:
    m = machine()
    m.boot(0.0, normally_up=False)
    assert m.command("u", 3.0) == [Start()]
    assert (m.state, m.want) == (RUN, "u")
    m.spawned(7, 3.0)
    assert m.pid == 7
    # u again while running: nothing
    assert m.command("u", 4.0) == []


# --- restarts and backoff ------------------------------------------------------------
def test_exit_after_short_run_restarts_after_backoff() -> None:
    m = running(pid=1, now=0.0)
    assert crash(m, 0.5, 1) == []
    assert (m.state, m.pid, m.since) == (DOWN, None, 0.5)
    assert m.start_at == pytest.approx(0.5 + BACKOFF_INITIAL)
    assert m.deadline() == m.start_at
    assert m.last_exit == EXIT1
    assert m.restarts == 1
    assert not m.is_down()  # a restart is pending
    assert m.tick(0.55) == []  # too early
    assert m.tick(0.6) == [Start()]
    assert m.start_at is None and m.state == RUN


def test_backoff_doubles_to_ten_second_cap() -> None:
    m = running(pid=1, now=0.0)
    now, pid = 0.0, 1
    delays = []
    for _ in range(12):
        now += 0.01  # lives 10 ms
        assert crash(m, now, pid) == []
        delays.append(round(m.start_at - now, 6))
        now = m.start_at
        assert m.tick(now) == [Start()]
        pid += 1
        m.spawned(pid, now)
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0, 10.0, 10.0]
    assert m.restarts == 12


def test_uptime_between_1_and_10_seconds_restarts_at_once_without_reset() -> None:
    m = running(pid=1, now=0.0)
    for pid, t in ((1, 0.1), (2, 0.3)):  # two quick crashes: backoff now 0.4
        crash(m, t, pid)
        assert m.tick(m.start_at) == [Start()]
        m.spawned(pid + 1, m.since)
    start = m.since
    assert crash(m, start + 5.0, 3) == [Start()]  # lived 5 s: restarted at once
    assert m.start_at is None and m.state == RUN
    m.spawned(4, start + 5.0)
    crash(m, start + 5.2, 4)  # quick crash again: the backoff was not reset
    assert m.start_at - (start + 5.2) == pytest.approx(0.4)


def test_ten_seconds_of_uptime_resets_backoff() -> None:
    m = running(pid=1, now=0.0)
    now, pid = 0.0, 1
    for _ in range(5):
        now += 0.1
        crash(m, now, pid)
        now = m.start_at
        m.tick(now)
        pid += 1
        m.spawned(pid, now)
    assert m.backoff == pytest.approx(3.2)
    assert crash(m, now + 10.0, pid) == [Start()]
    pid += 1
    m.spawned(pid, now + 10.0)
    crash(m, now + 10.05, pid)
    assert m.start_at - (now + 10.05) == pytest.approx(BACKOFF_INITIAL)


def test_exactly_one_second_is_not_a_short_run() -> None:
    m = running(pid=1, now=0.0)
    assert crash(m, 1.0, 1) == [Start()]
    m.spawned(2, 1.0)
    assert crash(m, 1.999, 2) == []  # 0.999 s: short
    assert m.start_at == pytest.approx(1.999 + BACKOFF_INITIAL)


def test_uptime_is_measured_from_spawn_not_from_start_request() -> None:
    m = machine()
    m.boot(0.0, True)
    m.spawned(1, 5.0)  # the shell took a while
    assert crash(m, 5.5, 1) == []  # lived 0.5 s
    assert m.start_at is not None


# --- finish ----------------------------------------------------------------------------
def test_finish_args() -> None:
    assert finish_args(ExitStatus(code=0)) == ("0", "0")
    assert finish_args(ExitStatus(code=3)) == ("3", "0")
    assert finish_args(ExitStatus(code=255)) == ("255", "0")
    assert finish_args(ExitStatus(signal=9)) == ("-1", "9")
    assert finish_args(ExitStatus(signal=15, core=True)) == ("-1", "15")


@pytest.mark.parametrize(
    "status,args",
    [(ExitStatus(code=3), ("3", "0")), (ExitStatus(signal=signal.SIGKILL), ("-1", "9"))],
)
def test_finish_runs_after_run_then_restart(status: ExitStatus, args) -> None:
    m = running(pid=1, now=0.0, has_finish=True, finish_timeout=5.0)
    assert m.exited(status, 2.0) == [Start(finish_args=args)]
    assert (m.state, m.pid, m.since) == (FINISH, None, 2.0)
    assert m.kill_at == 7.0 and m.deadline() == 7.0
    assert not m.is_down()
    m.spawned(2, 2.0)
    assert m.pid == 2 and m.started_at is None
    # finish exits: lived 2 s so restart at once
    assert m.exited(EXIT0, 2.5) == [Start()]
    assert (m.state, m.kill_at, m.last_exit) == (RUN, None, status)
    assert m.restarts == 1


def test_finish_after_quick_exit_then_backoff_from_finish_end() -> None:
    m = running(pid=1, now=0.0, has_finish=True)
    assert m.exited(EXIT1, 0.2) == [Start(finish_args=("1", "0"))]
    m.spawned(2, 0.2)
    assert m.exited(EXIT0, 0.3) == []
    assert m.state == DOWN and m.start_at == pytest.approx(0.4)
    assert m.tick(0.4) == [Start()]


def test_finish_timeout_sigkills_finish_and_supervision_continues() -> None:
    m = running(pid=1, now=0.0, has_finish=True, finish_timeout=2.0)
    m.exited(EXIT0, 3.0)
    m.spawned(2, 3.0)
    assert m.tick(4.9) == []
    assert m.tick(5.0) == [Signal(signal.SIGKILL, group=False)]
    assert m.kill_at is None and m.deadline() is None
    assert m.state == FINISH
    assert m.exited(KILLED, 5.01) == [Start()]
    assert m.state == RUN
    # the finish's own death is not the run's last exit
    assert m.last_exit == EXIT0


def test_down_during_finish_prevents_restart() -> None:
    m = running(pid=1, now=0.0, has_finish=True)
    m.exited(EXIT1, 3.0)
    m.spawned(2, 3.0)
    assert m.command("d", 3.1) == []  # finish is not signalled
    assert m.want == "d" and m.state == FINISH
    assert m.exited(EXIT0, 3.2) == []
    assert m.is_down() and m.deadline() is None


def test_spawn_failed_finish_goes_on() -> None:
    m = running(pid=1, now=0.0, has_finish=True)
    m.exited(EXIT0, 5.0)
    assert m.spawn_failed(5.0, ExitStatus(code=127)) == [Start()]
    assert m.state == RUN and m.last_exit == EXIT0


# --- stopping --------------------------------------------------------------------------
def test_down_sends_stop_signal_and_cont_then_kill() -> None:
    m = running(pid=10, now=0.0, kill_timeout=3.0)
    assert m.command("d", 1.0) == STOP  # to the process, as runit does
    assert (m.want, m.got_term, m.kill_at) == ("d", True, 4.0)
    assert m.deadline() == 4.0
    assert m.command("d", 1.5) == []  # already stopping
    assert m.tick(3.9) == []
    assert m.tick(4.0) == [Signal(signal.SIGKILL, group=True)]
    assert m.deadline() is None
    assert m.exited(KILLED, 4.01) == []
    assert m.is_down() and m.last_exit == KILLED and not m.got_term
    assert m.restarts == 0


def test_down_exit_before_kill_timeout_disarms_kill() -> None:
    m = running(pid=10, now=0.0, kill_timeout=3.0)
    m.command("d", 1.0)
    assert m.exited(TERMED, 1.2) == []
    assert m.kill_at is None and m.deadline() is None
    assert m.tick(10.0) == []


def test_custom_stop_signal() -> None:
    m = running(pid=10, stop_signal=signal.SIGINT)
    assert m.command("d", 1.0) == [Signal(signal.SIGINT, False), Signal(signal.SIGCONT, False)]


def test_down_runs_finish_but_no_restart() -> None:
    m = running(pid=10, has_finish=True)
    m.command("d", 1.0)
    assert m.exited(TERMED, 1.1) == [Start(finish_args=("-1", "15"))]
    m.spawned(11, 1.1)
    assert m.exited(EXIT0, 1.2) == []
    assert m.is_down()


def test_down_during_backoff_cancels_the_restart() -> None:
    m = running(pid=1, now=0.0)
    crash(m, 0.1, 1)
    assert m.start_at is not None
    assert m.command("d", 0.15) == []
    assert m.start_at is None and m.deadline() is None and m.is_down()
    assert m.tick(100.0) == []
    assert m.state == DOWN


def test_up_during_backoff_starts_now() -> None:
    m = running(pid=1, now=0.0)
    crash(m, 0.1, 1)
    for _ in range(3):  # build up some backoff
        m.tick(m.start_at)
        m.spawned(2, m.since)
        crash(m, m.since + 0.1, 2)
    assert m.start_at - m.since > 0.5
    assert m.command("u", m.since + 0.01) == [Start()]
    assert m.start_at is None and m.state == RUN


def test_down_on_a_down_service_is_a_no_op() -> None:
    m = machine()
    m.boot(0.0, False)
    assert m.command("d", 1.0) == []
    assert m.is_down() and m.deadline() is None


def test_paused_service_is_continued_when_stopped() -> None:
    m = running(pid=10)
    assert m.command("p", 1.0) == [Signal(signal.SIGSTOP, group=False)]
    assert m.paused
    assert m.command("d", 2.0) == STOP
    assert not m.paused


def test_down_after_term_still_arms_the_kill() -> None:
    """`svctl term` then `svctl down` (or shutdown): the stop must still escalate to
    SIGKILL after kill_timeout, as runsv re-sends TERM on every `d`."""
    m = running(pid=10, kill_timeout=2.0)
    assert m.command("t", 1.0) == [Signal(signal.SIGTERM, group=False)]
    assert m.got_term and m.kill_at is None
    assert m.command("d", 1.5) == STOP
    assert m.kill_at == 3.5
    assert m.tick(3.5) == [Signal(signal.SIGKILL, group=True)]


# --- once ------------------------------------------------------------------------------
def test_once_starts_a_down_service_and_never_restarts() -> None:
    m = machine()
    m.boot(0.0, False)
    assert m.command("o", 1.0) == [Start()]
    assert (m.state, m.want) == (RUN, "d")
    m.spawned(5, 1.0)
    assert m.exited(EXIT1, 1.1) == []
    assert m.is_down() and m.deadline() is None and m.restarts == 0


def test_once_on_a_running_service_only_drops_the_restart() -> None:
    m = running(pid=5)
    assert m.command("o", 1.0) == []
    assert (m.state, m.pid, m.want, m.got_term) == (RUN, 5, "d", False)
    assert m.exited(EXIT0, 20.0) == []
    assert m.is_down()


def test_once_during_backoff_starts_it_once() -> None:
    m = running(pid=1, now=0.0)
    crash(m, 0.1, 1)
    assert m.start_at is not None
    assert m.command("o", 0.12) == [Start()]
    assert (m.state, m.want, m.start_at) == (RUN, "d", None)
    m.spawned(2, 0.12)
    assert m.exited(EXIT1, 0.2) == []
    assert m.is_down()


# --- signals, pause, got_term ----------------------------------------------------------
@pytest.mark.parametrize("letter", sorted(LETTER_SIGNALS))
def test_signal_letters_go_to_the_pid_only(letter: str) -> None:
    m = running(pid=10)
    assert m.command(letter, 1.0) == [Signal(LETTER_SIGNALS[letter], group=False)]
    assert m.state == RUN and m.want == "u"


@pytest.mark.parametrize("letter", sorted(LETTER_SIGNALS))
def test_signal_letters_are_ignored_when_down(letter: str) -> None:
    m = machine()
    m.boot(0.0, False)
    assert m.command(letter, 1.0) == []
    assert not m.paused and not m.got_term


def test_pause_and_cont_flags() -> None:
    m = running(pid=10)
    m.command("p", 1.0)
    assert m.paused
    m.command("c", 2.0)
    assert not m.paused
    m.command("p", 3.0)
    m.exited(KILLED, 4.0)  # a paused process dies: the flag goes with it
    assert not m.paused


def test_term_sets_got_term_until_the_process_exits() -> None:
    m = running(pid=10)
    m.command("t", 1.0)
    assert m.got_term and m.want == "u"
    assert m.exited(TERMED, 3.0) == [Start()]  # lived 3 s: restarted at once
    assert not m.got_term


def test_letters_cover_runit() -> None:
    assert set("udoxpchaiq12tk") == LETTERS


# --- exit / removal --------------------------------------------------------------------
def test_x_stops_and_marks_removed() -> None:
    m = running(pid=10, kill_timeout=1.0)
    assert m.command("x", 1.0) == STOP
    assert m.removed and m.want == "d"
    assert m.exited(TERMED, 1.1) == []
    assert m.is_down() and m.removed


def test_x_on_down_service_just_marks_it() -> None:
    m = machine()
    m.boot(0.0, False)
    assert m.command("x", 1.0) == []
    assert m.removed and m.is_down()


def test_removed_service_is_not_restarted_after_finish() -> None:
    m = running(pid=10, has_finish=True)
    m.command("x", 1.0)
    assert m.exited(TERMED, 1.1) == [Start(finish_args=("-1", "15"))]
    m.spawned(11, 1.1)
    assert m.exited(EXIT0, 1.2) == []
    assert m.is_down()


def test_up_revives_a_removed_service() -> None:
    m = machine()
    m.boot(0.0, False)
    m.command("x", 1.0)
    assert m.command("u", 2.0) == [Start()]
    assert not m.removed


# --- logger ----------------------------------------------------------------------------
def test_logger_stop_closes_pipe_first_then_signals_after_grace() -> None:
    m = running(pid=20, kill_timeout=3.0)
    m.policy.term_grace = 1.0
    assert m.command("d", 10.0) == [ClosePipe()]
    assert m.got_term and m.term_at == 11.0 and m.kill_at is None
    assert m.deadline() == 11.0
    assert m.tick(10.9) == []
    assert m.tick(11.0) == STOP
    assert m.term_at is None and m.kill_at == 14.0
    assert m.tick(14.0) == [Signal(signal.SIGKILL, group=True)]


def test_logger_that_drains_and_exits_on_eof_is_never_signalled() -> None:
    m = running(pid=20)
    m.policy.term_grace = 1.0
    m.command("d", 10.0)
    assert m.exited(EXIT0, 10.2) == []
    assert m.term_at is None and m.kill_at is None and m.deadline() is None
    assert m.is_down()
    assert m.tick(11.0) == []


def test_dead_logger_is_restarted_like_any_service() -> None:
    m = running(pid=20, term_grace=0.0)
    assert m.exited(KILLED, 0.3) == []
    assert m.tick(m.start_at) == [Start()]


# --- spawn failures --------------------------------------------------------------------
def test_spawn_failed_is_like_an_instant_exit() -> None:
    m = machine()
    assert m.boot(0.0, True) == [Start()]
    assert m.spawn_failed(0.0, ExitStatus(code=127)) == []
    assert m.state == DOWN and m.pid is None
    assert m.last_exit == ExitStatus(code=127)
    assert m.start_at == pytest.approx(0.1)
    assert m.tick(0.1) == [Start()]
    assert m.spawn_failed(0.1, ExitStatus(code=127)) == []
    assert m.start_at == pytest.approx(0.3)


def test_spawn_failures_back_off_to_the_cap() -> None:
    m = machine()
    m.boot(0.0, True)
    now = 0.0
    for _ in range(20):
        assert m.spawn_failed(now, ExitStatus(code=126)) == []
        gap = m.start_at - now
        now = m.start_at
        assert m.tick(now) == [Start()]
    assert gap == BACKOFF_MAX
    assert now < 20 * BACKOFF_MAX  # at most one attempt per 10 s once capped


def test_spawn_failed_with_finish_runs_finish_with_the_code() -> None:
    m = machine(has_finish=True)
    m.boot(0.0, True)
    assert m.spawn_failed(0.0, ExitStatus(code=127)) == [Start(finish_args=("127", "0"))]


# --- misc ----------------------------------------------------------------------------
def test_uptime_and_exit_in_down_state() -> None:
    m = running(pid=1, now=2.0)
    assert m.uptime(5.5) == 3.5
    assert m.uptime(1.0) == 0.0
    m2 = machine()
    m2.boot(0.0, False)
    assert m2.exited(EXIT0, 1.0) == []  # a stray exit while down changes nothing
    assert m2.is_down()


def test_deadline_is_the_earliest_pending_time() -> None:
    m = running(pid=1, kill_timeout=5.0)
    m.policy.term_grace = 2.0
    m.command("d", 0.0)
    assert m.deadline() == 2.0
    m.tick(2.0)
    assert m.deadline() == 7.0
    m.exited(TERMED, 3.0)
    assert m.deadline() is None


# --- property test ---------------------------------------------------------------------
TIMEOUT = st.floats(min_value=0.01, max_value=10.0)
POLICY = st.builds(
    Policy, kill_timeout=TIMEOUT, finish_timeout=TIMEOUT, setup_timeout=TIMEOUT,
    restart=st.sampled_from(["always", "on-failure", "never"]),
    success_codes=st.sampled_from([(0,), (0, 1), (2,)]), oneshot=st.booleans(),
    max_restarts=st.integers(min_value=0, max_value=3), stop_group=st.booleans(),
    kill_group=st.booleans(), has_setup=st.booleans(),
    stop_signal=st.sampled_from([signal.SIGTERM, signal.SIGINT]),
)
EVENT = st.one_of(
    st.tuples(st.just("cmd"), st.sampled_from(sorted(LETTERS))),
    st.tuples(st.just("exit"), st.sampled_from([EXIT0, EXIT1, TERMED, KILLED])),
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=15.0)),
    st.tuples(st.just("logger_stop"), st.none()),
    st.tuples(st.just("unhealthy"), st.none()),
    st.tuples(st.just("configure"), POLICY),
    st.tuples(st.just("gate"), st.booleans()),
    st.tuples(st.just("retire"), st.sampled_from([None, 0.5])),
    st.tuples(st.just("has_finish"), st.booleans()),
    st.tuples(st.just("hold"), st.none()),
    st.tuples(st.just("fail"), st.none()),
    st.tuples(st.just("ready"), st.none()),
)
STAGE_AT = st.one_of(st.none(), st.integers(min_value=0, max_value=60))  # event index


@settings(max_examples=400, deadline=None)
@given(
    normally_up=st.booleans(),
    has_finish=st.booleans(),
    kill_timeout=TIMEOUT,
    finish_timeout=TIMEOUT,
    fail_spawns=st.lists(st.booleans(), max_size=8),
    events=st.lists(EVENT, max_size=60),
    has_setup=st.booleans(),
    setup_timeout=TIMEOUT,
    stopping_at=STAGE_AT,
    limit=st.one_of(st.none(), st.floats(min_value=0.01, max_value=10.0)),
    kill_all_at=STAGE_AT,
)
def test_random_event_sequences_keep_the_invariants(
    normally_up, has_finish, kill_timeout, finish_timeout, fail_spawns, events, has_setup,
    setup_timeout, stopping_at, limit, kill_all_at,
) -> None:
    """Any events (the shell's commands, exits, timers, new settings, gates, retiring),
    with the shutdown stages (stopping, then or instead kill-all) at any point: after
    `stopping` the only start is a `finish` and no timeout exceeds its limit, after
    kill-all nothing starts."""
    policy = Policy(kill_timeout=kill_timeout, finish_timeout=finish_timeout,
                    has_finish=has_finish, has_setup=has_setup, setup_timeout=setup_timeout)
    m = Machine(policy)
    now = 0.0
    next_pid = [100]
    failures = list(fail_spawns)
    longest = max(10.0, BACKOFF_MAX, 1.0)  # every timeout drawn is at most 10 s

    def shell(actions: list) -> None:
        """Play the I/O shell: start what is asked, feed spawn failures back."""
        for action in actions:
            if isinstance(action, Start):
                assert m.stage != FROZEN, "a start after kill-all"
                if m.stage == STOPPING:
                    assert action.finish_args is not None, "a start other than finish"
                assert not m.gated or action.finish_args is not None or m.state == RUN, \
                    "a start through a closed gate"
                if failures and failures.pop(0):
                    shell(m.spawn_failed(now, ExitStatus(code=127)))
                else:
                    next_pid[0] += 1
                    m.spawned(next_pid[0], now)
            elif isinstance(action, Signal):
                assert m.pid is not None and m.pid > 0, "signal with no process"
                assert m.state in (RUN, FINISH, SETUP)
                if action.group and m.state != SETUP:
                    assert m.state == RUN and (action.signum == signal.SIGKILL
                                               or m.policy.stop_group)
            elif isinstance(action, ClosePipe):
                assert m.policy.term_grace > 0

    def check() -> None:
        if m.start_at is not None:
            assert m.state == DOWN
            assert m.want == "u" and not m.removed
            assert now < m.start_at <= now + BACKOFF_MAX + 1e-9
        if m.waiting:
            assert m.gated and m.state == DOWN and m.start_at is None  # up, or a `once`
        assert m.is_down() == (m.state == DOWN and m.start_at is None and not m.waiting)
        if m.state == DOWN:
            assert m.pid is None
            assert m.kill_at is None and m.term_at is None
            assert not m.paused and not m.got_term
        else:
            assert m.pid is not None and m.pid > 0
        if m.state == DOWN and m.want == "u" and not m.removed and m.stage == LIVE:
            assert m.start_at is not None or m.waiting, "wanted up, down, and nothing pending"
        if m.stage != LIVE:
            assert m.start_at is None and not m.run_after_setup and not m.may_probe()
            assert not m.waiting
        if m.limit is not None:
            assert m.policy.kill_timeout <= m.limit and m.policy.finish_timeout <= m.limit
        if m.stage == FROZEN:
            assert m.state == DOWN and m.is_down() and m.deadline() is None
        if m.term_at is not None:
            assert m.state == RUN
        if m.paused:
            assert m.state == RUN
        if m.got_term:
            assert m.state in (RUN, SETUP)
        if m.state == SETUP:
            assert m.kill_at is not None or m.unhealthy or m.got_term, "setup has no limit"
        assert m.state != RUN or not m.run_after_setup
        d = m.deadline()
        if d is not None:
            assert now < d <= now + longest + 1e-9
        assert m.want in ("u", "d")
        assert BACKOFF_INITIAL <= m.backoff <= BACKOFF_MAX

    def advance(to: float) -> None:
        """Move the clock, firing the machine's timer each time it is due."""
        nonlocal now
        while (d := m.deadline()) is not None and d <= to:
            now = max(now, d)
            shell(m.tick(now))
            check()
        now = to

    shell(m.boot(now, normally_up))
    check()
    for i, (kind, arg) in enumerate(events):
        if i == stopping_at:
            m.stopping(limit)
            check()
        if i == kill_all_at:
            m.abandon(now)
            check()
        if kind == "wait":
            advance(now + arg)
        elif kind == "cmd":
            shell(m.command(arg, now))
            if arg in "dx" and m.state in (RUN, SETUP):
                assert m.kill_at is not None or m.term_at is not None, "stop never escalates"
        elif kind == "exit":
            if m.state == DOWN:
                continue  # no process to exit
            shell(m.exited(arg, now))
        elif kind == "logger_stop":
            shell(m.retire(now, grace=1.0))
            assert m.removed and m.want == "d"
        elif kind == "retire":
            shell(m.retire(now, grace=arg))
            assert m.removed and m.want == "d" and m.start_at is None
        elif kind == "unhealthy":
            shell(m.set_unhealthy("probe failed", now))
        elif kind == "configure":
            grace, finish = m.policy.term_grace, m.policy.has_finish
            m.configure(arg)
            assert (m.policy.term_grace, m.policy.has_finish) == (grace, finish)
            assert m.policy.restart == arg.restart and m.policy.oneshot == arg.oneshot
        elif kind == "gate":
            m.set_gate(arg)
            if not arg:
                shell(m.release(now))
        elif kind == "has_finish":
            m.set_has_finish(arg)
        elif kind == "hold":
            m.hold()
            assert m.want == "d" and m.start_at is None and not m.waiting
        elif kind == "fail":
            shell(m.fail("a requirement failed", now))
            assert m.outcome == "failed" and m.want == "d"
        elif kind == "ready":
            m.became_ready()
        check()
        advance(now + 1e-3)
        check()


def test_a_stop_that_was_asked_for_restarts_at_once_without_backoff() -> None:
    """`svctl restart` (t, c, u) of a young service is not a crash: no delay, no doubling."""
    m = running(pid=100, now=0.0)
    m.command("t", 0.2)
    assert m.got_term
    actions = m.exited(ExitStatus(signal=signal.SIGTERM), 0.3)
    assert actions == [Start()] and m.state == RUN and m.start_at is None
    assert m.backoff == BACKOFF_INITIAL


# --- restart policy ----------------------------------------------------------------------
SEGV = ExitStatus(signal=signal.SIGSEGV)


@pytest.mark.parametrize("restart, status, outcome, failed", [
    ("never", EXIT0, "exited", None),
    ("never", EXIT1, "failed", "exited with exit code 1"),
    ("never", SEGV, "failed", "exited with signal SIGSEGV"),
    ("on-failure", EXIT0, "exited", None),
])
def test_policies_that_leave_it_down(restart: str, status: ExitStatus, outcome: str,
                                     failed) -> None:
    m = running(pid=1, now=0.0, restart=restart)
    assert m.exited(status, 5.0) == []
    assert (m.outcome, m.failed, m.want) == (outcome, failed, "d")
    assert m.is_down() and m.deadline() is None and m.restarts == 0
    assert m.tick(100.0) == []


@pytest.mark.parametrize("restart, status", [
    ("always", EXIT0), ("always", EXIT1), ("always", SEGV),
    ("on-failure", EXIT1), ("on-failure", SEGV), ("on-failure", ExitStatus(code=255)),
])
def test_policies_that_restart(restart: str, status: ExitStatus) -> None:
    m = running(pid=1, now=0.0, restart=restart)
    assert m.exited(status, 5.0) == [Start()]  # lived 5 s: at once
    assert (m.outcome, m.failed, m.want, m.state) == (None, None, "u", RUN)
    m.spawned(2, 5.0)
    assert m.exited(status, 5.1) == []  # quick: after the backoff
    assert m.start_at == pytest.approx(5.1 + BACKOFF_INITIAL) and m.outcome is None


def test_success_exit_codes() -> None:
    m = running(pid=1, now=0.0, restart="on-failure", success_codes=(0, 3))
    assert m.exited(ExitStatus(code=3), 5.0) == []
    assert (m.outcome, m.failed, m.want) == ("exited", None, "d")
    m = running(pid=1, now=0.0, restart="on-failure", success_codes=(3,))
    assert m.exited(EXIT0, 5.0) == [Start()]  # 0 is not a success here
    m = running(pid=1, now=0.0, restart="never", success_codes=(3,))
    m.exited(EXIT0, 5.0)
    assert (m.outcome, m.failed) == ("failed", "exited with exit code 0")


@pytest.mark.parametrize("status", [TERMED, KILLED, ExitStatus(signal=signal.SIGABRT, core=True)])
def test_a_signal_exit_is_a_failure_even_with_code_zero_listed(status: ExitStatus) -> None:
    policy = Policy(success_codes=(0,))
    assert not policy.succeeded(status)
    assert policy.succeeded(EXIT0) and not policy.succeeded(EXIT1)
    m = running(pid=1, now=0.0, restart="never")
    m.exited(status, 5.0)
    assert m.outcome == "failed" and m.failed.startswith("exited with signal SIG")


def test_a_stop_that_was_asked_for_is_no_failure_whatever_the_policy() -> None:
    m = running(pid=1, now=0.0, restart="never")
    assert m.command("d", 1.0) == STOP
    assert m.exited(TERMED, 1.1) == []
    assert (m.outcome, m.failed) == (None, None) and m.is_down()


# --- max_restarts / restart_window -----------------------------------------------------------
def crash_loop(m: Machine, times: list[float], pid: int = 1) -> int:
    """The run crashes at each time (after living 5 s, so no backoff); returns the last pid."""
    for t in times:
        assert m.state == RUN
        m.spawned(pid, t - 5.0)
        actions = m.exited(EXIT1, t)
        if m.want == "u":
            assert actions == [Start()]
        pid += 1
    return pid


def test_max_restarts_within_the_window_fails_then_up_resets() -> None:
    m = running(pid=1, now=0.0, max_restarts=2, restart_window=60.0)
    pid = crash_loop(m, [10.0, 20.0])
    assert m.restarts == 2 and m.outcome is None and m.want == "u"
    m.spawned(pid, 25.0)
    assert m.exited(EXIT1, 30.0) == []  # the third within 60 s
    assert (m.want, m.outcome) == ("d", "failed")
    assert m.failed == "2 restarts within 60s; svctl up to retry"
    assert m.is_down() and m.restarts == 2
    assert m.tick(1000.0) == []
    assert m.command("u", 31.0) == [Start()]
    assert (m.outcome, m.failed, m.restart_times, m.want) == (None, None, [], "u")
    crash_loop(m, [40.0, 50.0], pid=10)  # a fresh allowance
    assert m.outcome is None and m.state == RUN


def test_restarts_outside_the_window_do_not_count() -> None:
    m = running(pid=1, now=0.0, max_restarts=2, restart_window=10.0)
    crash_loop(m, [10.0, 20.0, 30.0, 40.0, 50.0, 60.0])  # 10 s apart: never 2 in 10 s
    assert m.outcome is None and m.state == RUN and m.restarts == 6
    m.spawned(99, 62.0)
    m.exited(EXIT1, 65.0)  # 60 and 65: two within 10 s
    assert m.outcome is None and m.state == RUN  # two within 10 s are allowed
    m.spawned(100, 66.0)
    m.exited(EXIT1, 67.0)
    assert m.outcome == "failed" and m.failed == "2 restarts within 10s; svctl up to retry"


def test_no_limit_when_max_restarts_is_zero() -> None:
    m = running(pid=1, now=0.0, max_restarts=0, restart_window=1000.0)
    crash_loop(m, [float(t) for t in range(10, 510, 10)])
    assert m.outcome is None and m.restarts == 50


def test_once_clears_a_failed_service_too() -> None:
    m = running(pid=1, now=0.0, restart="never")
    m.exited(EXIT1, 2.0)
    assert m.outcome == "failed"
    assert m.command("o", 3.0) == [Start()]
    assert (m.outcome, m.failed, m.want) == (None, None, "d")


# --- backoff from the policy -----------------------------------------------------------------
def test_backoff_initial_factor_and_max_from_the_policy() -> None:
    m = running(pid=1, now=0.0, backoff_initial=0.5, backoff_factor=3.0, backoff_max=5.0)
    assert m.backoff == 0.5
    now, pid, delays = 0.0, 1, []
    for _ in range(5):
        now += 0.1
        assert m.exited(EXIT1, now) == []
        delays.append(round(m.start_at - now, 6))
        now = m.start_at
        assert m.tick(now) == [Start()]
        pid += 1
        m.spawned(pid, now)
    assert delays == [0.5, 1.5, 4.5, 5.0, 5.0]
    assert m.exited(EXIT1, now + 10.0) == [Start()]  # a long run resets to backoff_initial
    m.spawned(pid + 1, now + 10.0)
    m.exited(EXIT1, now + 10.1)
    assert m.start_at - (now + 10.1) == pytest.approx(0.5)


def test_backoff_factor_one_keeps_a_constant_delay() -> None:
    m = running(pid=1, now=0.0, backoff_initial=2.0, backoff_factor=1.0)
    for pid in range(1, 5):
        m.exited(EXIT1, m.since + 0.1)
        assert m.start_at - m.since == pytest.approx(2.0)
        m.tick(m.start_at)
        m.spawned(pid + 1, m.since)


# --- oneshot ---------------------------------------------------------------------------------
def test_oneshot_success_is_done_ready_and_stays_down() -> None:
    m = running(pid=1, now=0.0, oneshot=True)
    assert not m.ready
    assert m.exited(EXIT0, 0.2) == []
    assert (m.outcome, m.ready, m.ever_ready, m.want) == ("done", True, True, "d")
    assert m.failed is None and m.is_down() and m.deadline() is None
    assert m.tick(100.0) == []


def test_oneshot_with_finish_is_done_after_finish() -> None:
    m = running(pid=1, now=0.0, oneshot=True, has_finish=True)
    assert m.exited(EXIT0, 0.2) == [Start(finish_args=("0", "0"))]
    assert m.outcome == "done"
    m.spawned(2, 0.2)
    assert m.exited(EXIT0, 0.3) == []
    assert m.is_down() and m.ready


@pytest.mark.parametrize("status", [EXIT1, KILLED])
def test_oneshot_failure_restarts_with_backoff(status: ExitStatus) -> None:
    m = running(pid=1, now=0.0, oneshot=True)
    assert m.exited(status, 0.2) == []
    assert (m.outcome, m.ready, m.want) == (None, False, "u")
    assert m.start_at == pytest.approx(0.2 + BACKOFF_INITIAL)
    assert m.tick(m.start_at) == [Start()]
    m.spawned(2, m.since)
    assert m.exited(EXIT0, m.since + 0.1) == []
    assert m.outcome == "done" and m.ready


def test_oneshot_failure_with_restart_never_fails() -> None:
    m = running(pid=1, now=0.0, oneshot=True, restart="never")
    m.exited(EXIT1, 0.2)
    assert (m.outcome, m.failed, m.ready) == ("failed", "exited with exit code 1", False)


def test_up_reruns_a_done_oneshot() -> None:
    m = running(pid=1, now=0.0, oneshot=True)
    m.exited(EXIT0, 0.2)
    assert m.command("u", 5.0) == [Start()]
    assert (m.outcome, m.ready, m.ever_ready, m.want) == (None, False, True, "u")
    m.spawned(2, 5.0)
    assert m.exited(EXIT0, 5.5) == []
    assert (m.outcome, m.ready, m.want) == ("done", True, "d")


def test_once_reruns_a_done_oneshot() -> None:
    m = running(pid=1, now=0.0, oneshot=True)
    m.exited(EXIT0, 0.2)
    assert m.command("o", 5.0) == [Start()]
    assert (m.outcome, m.ready, m.want, m.state) == (None, False, "d", RUN)
    m.spawned(2, 5.0)
    assert m.exited(EXIT1, 5.5) == []  # once: no restart
    assert m.is_down()


def test_once_run_of_a_oneshot_that_succeeds_is_done_and_ready() -> None:
    m = running(pid=1, now=0.0, oneshot=True)
    m.exited(EXIT0, 0.2)
    m.command("o", 5.0)
    m.spawned(2, 5.0)
    m.exited(EXIT0, 5.5)
    assert (m.outcome, m.ready) == ("done", True)


# --- unhealthy -----------------------------------------------------------------------------
def test_unhealthy_stops_and_the_exit_is_a_failure() -> None:
    m = running(pid=1, now=0.0, kill_timeout=3.0)
    assert m.set_unhealthy("readiness timed out", 0.5) == STOP
    assert m.unhealthy == "readiness timed out" and m.kill_at == 3.5
    assert m.set_unhealthy("again", 0.6) == []  # once per process
    assert m.exited(TERMED, 0.7) == []  # lived 0.7 s: a failure, with backoff
    assert m.unhealthy is None and m.want == "u"
    assert m.start_at == pytest.approx(0.7 + BACKOFF_INITIAL)
    assert m.backoff == pytest.approx(BACKOFF_INITIAL * 2)


def test_unhealthy_exit_with_code_zero_is_still_a_failure() -> None:
    m = running(pid=1, now=0.0, restart="on-failure")
    m.set_unhealthy("liveness failed", 20.0)
    assert m.exited(EXIT0, 20.1) == [Start()]  # restarted: not a success
    m = running(pid=1, now=0.0, restart="never")
    m.set_unhealthy("liveness failed", 20.0)
    m.exited(EXIT0, 20.1)
    assert m.outcome == "failed" and m.failed == "exited with exit code 0"
    m = running(pid=1, now=0.0, oneshot=True)
    m.set_unhealthy("liveness failed", 20.0)
    m.exited(EXIT0, 20.1)
    assert m.outcome is None and not m.ready


def test_unhealthy_exits_count_toward_max_restarts() -> None:
    m = running(pid=1, now=0.0, max_restarts=1, restart_window=60.0)
    m.set_unhealthy("liveness failed", 5.0)
    assert m.exited(TERMED, 5.1) == [Start()]
    m.spawned(2, 5.1)
    m.set_unhealthy("liveness failed", 10.0)
    assert m.exited(TERMED, 10.1) == []
    assert m.outcome == "failed" and m.failed == "1 restart within 60s; svctl up to retry"


def test_unhealthy_needs_a_running_process() -> None:
    m = machine()
    m.boot(0.0, normally_up=False)
    assert m.set_unhealthy("x", 1.0) == [] and m.unhealthy is None
    m = machine()
    m.boot(0.0, normally_up=True)  # Start asked for, not spawned yet
    assert m.set_unhealthy("x", 0.0) == [] and m.unhealthy is None


def test_unhealthy_uses_the_stop_signal_and_group() -> None:
    m = running(pid=1, stop_signal=signal.SIGINT, stop_group=True)
    assert m.set_unhealthy("x", 1.0) == [Signal(signal.SIGINT, group=True),
                                        Signal(signal.SIGCONT, group=True)]


def test_unhealthy_during_an_asked_for_stop_is_no_failure() -> None:
    m = running(pid=1, now=0.0, restart="never")
    m.command("d", 1.0)
    m.set_unhealthy("liveness failed", 1.1)
    m.exited(TERMED, 1.2)
    assert (m.outcome, m.failed) == (None, None)


# --- readiness ---------------------------------------------------------------------------
def test_became_ready_only_while_running() -> None:
    m = machine(has_finish=True)
    m.boot(0.0, normally_up=True)
    m.became_ready()  # Start asked for, no pid yet
    assert not m.ready and not m.ever_ready
    m.spawned(1, 0.0)
    m.became_ready()
    assert m.ready and m.ever_ready
    m.exited(EXIT1, 5.0)  # now in finish
    assert m.state == FINISH and not m.ready
    m.spawned(2, 5.0)
    m.became_ready()
    assert not m.ready and m.ever_ready
    m.command("d", 5.1)
    m.exited(EXIT0, 5.2)
    m.became_ready()
    assert m.is_down() and not m.ready


def test_ready_is_cleared_on_exit_and_on_start() -> None:
    m = running(pid=1)
    m.became_ready()
    assert m.exited(EXIT1, 5.0) == [Start()]
    assert not m.ready and m.ever_ready
    m.spawned(2, 5.0)
    m.became_ready()
    m.command("d", 6.0)
    m.exited(TERMED, 6.1)
    assert not m.ready


# --- dependency gate ----------------------------------------------------------------------
def test_gated_start_waits_then_release_starts_it() -> None:
    m = machine()
    m.set_gate(True)
    assert m.boot(0.0, normally_up=True) == []
    assert m.waiting and m.state == DOWN and not m.is_down()
    assert m.release(1.0) == []  # still gated
    assert m.waiting
    m.set_gate(False)
    assert m.release(2.0) == [Start()]
    assert not m.waiting and m.state == RUN
    assert m.release(3.0) == []  # nothing waits any more


def test_gated_restart_waits_too() -> None:
    m = running(pid=1, now=0.0)
    m.set_gate(True)
    assert m.exited(EXIT1, 5.0) == []
    assert m.waiting and not m.is_down()
    m.set_gate(False)
    assert m.release(6.0) == [Start()]


def test_gated_backoff_restart_waits_at_the_timer() -> None:
    m = running(pid=1, now=0.0)
    m.exited(EXIT1, 0.1)
    m.set_gate(True)
    assert m.tick(m.start_at) == []
    assert m.waiting and m.start_at is None and not m.is_down()


def test_down_clears_waiting() -> None:
    m = machine()
    m.set_gate(True)
    m.boot(0.0, normally_up=True)
    assert m.command("d", 1.0) == []
    assert not m.waiting and m.is_down() and m.want == "d"
    m.set_gate(False)
    assert m.release(2.0) == []


def test_release_does_not_start_a_service_wanted_down() -> None:
    m = machine()
    m.set_gate(True)
    m.boot(0.0, normally_up=True)
    m.hold()
    assert not m.waiting and m.is_down()
    m.set_gate(False)
    assert m.release(1.0) == [] and m.state == DOWN


def test_up_on_a_gated_service_waits() -> None:
    m = machine()
    m.boot(0.0, normally_up=False)
    m.set_gate(True)
    assert m.command("u", 1.0) == []
    assert m.waiting and m.want == "u"


# --- stop_group / kill_group ------------------------------------------------------------------
@pytest.mark.parametrize("stop_group, kill_group", [(False, True), (True, True), (True, False),
                                                    (False, False)])
def test_stop_and_kill_group_choose_group_signals(stop_group: bool, kill_group: bool) -> None:
    m = running(pid=1, kill_timeout=2.0, stop_group=stop_group, kill_group=kill_group,
                stop_signal=signal.SIGQUIT)
    assert m.command("d", 1.0) == [Signal(signal.SIGQUIT, group=stop_group),
                                   Signal(signal.SIGCONT, group=stop_group)]
    assert m.tick(3.0) == [Signal(signal.SIGKILL, group=kill_group)]


def test_signal_letters_ignore_stop_group() -> None:
    m = running(pid=1, stop_group=True)
    assert m.command("t", 1.0) == [Signal(signal.SIGTERM, group=False)]


def test_fail_from_outside_stops_and_stays_down_until_up() -> None:
    m = Machine()
    assert m.boot(0.0, True) == [Start()]
    m.spawned(10, 0.0)
    actions = m.fail("requires db, which failed", 1.0)
    assert Signal(signal.SIGTERM, group=False) in actions
    assert (m.want, m.outcome, m.failed) == ("d", "failed", "requires db, which failed")
    assert m.exited(ExitStatus(signal=signal.SIGTERM), 1.5) == []
    m.command("u", 2.0)
    assert (m.outcome, m.failed, m.state) == (None, None, "run")


# --- setup ----------------------------------------------------------------------------
def in_setup(pid: int = 50, now: float = 0.0, **policy) -> Machine:
    """A machine that booted at `now` with a setup, which got `pid`."""
    m = machine(has_setup=True, **policy)
    assert m.boot(now, normally_up=True) == [Start(setup=True)]
    assert m.state == SETUP
    m.spawned(pid, now)
    return m


def test_setup_then_run() -> None:
    m = in_setup(setup_timeout=30.0)
    assert (m.pid, m.kill_at, m.deadline()) == (50, 30.0, 30.0)
    assert m.exited(EXIT0, 2.0) == [Start()]
    assert (m.state, m.pid, m.kill_at, m.since) == (RUN, None, None, 2.0)
    m.spawned(60, 2.5)
    assert (m.state, m.pid, m.started_at) == (RUN, 60, 2.5)
    # a restart runs setup again
    assert m.exited(EXIT1, 20.0) == [Start(setup=True)]


@pytest.mark.parametrize("status", [EXIT1, ExitStatus(code=3), TERMED])
def test_a_failed_setup_is_a_failed_start_with_backoff(status: ExitStatus) -> None:
    m = in_setup(has_finish=True)
    assert m.exited(status, 0.5) == []  # no finish: run never ran
    assert (m.state, m.want, m.last_exit, m.start_at) == (DOWN, "u", status, 0.6)
    assert m.backoff == BACKOFF_INITIAL * 2
    assert m.tick(0.6) == [Start(setup=True)]


def test_a_setup_that_fails_with_restart_never_fails_the_service() -> None:
    m = in_setup(restart="never")
    m.exited(ExitStatus(code=3), 1.0)
    assert (m.failed, m.outcome, m.want) == ("setup exited with exit code 3", "failed", "d")


def test_a_setup_past_its_time_is_killed_and_the_start_failed() -> None:
    m = in_setup(setup_timeout=5.0, restart="never")
    assert m.tick(5.0) == [Signal(signal.SIGKILL, group=True)]
    assert m.exited(KILLED, 5.1) == []
    assert m.failed == "setup did not exit within 5s"


def test_down_during_setup_terms_it_and_run_never_starts() -> None:
    m = in_setup(kill_timeout=2.0, setup_timeout=30.0)
    stop = [Signal(signal.SIGTERM, group=True), Signal(signal.SIGCONT, group=True)]
    assert m.command("d", 1.0) == stop
    assert (m.got_term, m.kill_at) == (True, 3.0)
    assert m.command("d", 1.5) == []  # once
    assert m.exited(TERMED, 1.6) == []
    assert (m.state, m.want, m.failed, m.start_at) == (DOWN, "d", None, None)


def test_down_then_up_during_setup_runs_setup_again() -> None:
    m = in_setup()
    m.command("d", 1.0)
    assert m.command("u", 1.1) == []
    assert m.exited(EXIT0, 1.2) == [Start(setup=True)]  # its run was cancelled


def test_hold_during_setup_leaves_it_alone_but_run_does_not_follow() -> None:
    m = in_setup()
    m.hold()
    assert m.exited(EXIT0, 1.0) == []
    assert m.state == DOWN and m.want == "d"


def test_once_during_setup_runs_run_once() -> None:
    m = in_setup()
    assert m.command("o", 1.0) == []
    assert m.exited(EXIT0, 1.1) == [Start()]
    m.spawned(60, 1.1)
    assert m.exited(EXIT0, 5.0) == []
    assert m.state == DOWN and m.start_at is None


def test_signal_letters_are_ignored_during_setup() -> None:
    m = in_setup()
    assert m.command("h", 1.0) == [] and m.command("t", 1.0) == []


# --- abandon: kill-all has begun, nothing starts any more -----------------------------
def test_abandon_a_pending_finish_leaves_the_slot_down_for_good() -> None:
    m = running(has_finish=True)
    assert m.exited(KILLED, 5.0) == [Start(finish_args=("-1", "9"))]
    m.abandon(5.0)  # kill-all has begun before finish ran: it never will
    assert (m.state, m.pid, m.want, m.deadline()) == (DOWN, None, "d", None)
    assert m.is_down()
    assert m.tick(100.0) == [] and m.exited(EXIT0, 6.0) == []
    assert m.command("t", 7.0) == []


def test_abandon_a_pending_restart() -> None:
    m = running()
    assert m.exited(EXIT1, 0.5) == []  # short run: restart after the backoff
    assert m.start_at is not None
    m.abandon(0.5)
    assert m.is_down() and m.tick(100.0) == []


# --- stopping: services are being stopped, only `finish` starts ------------------------
def test_stopping_runs_finish_on_a_crash_but_never_restarts() -> None:
    m = running(has_finish=True)
    m.stopping()
    assert m.stage == STOPPING
    assert m.exited(EXIT1, 5.0) == [Start(finish_args=("1", "0"))]
    m.spawned(101, 5.0)
    assert m.exited(EXIT0, 5.5) == []
    assert m.is_down() and m.deadline() is None and m.want == "u"


def test_stopping_drops_a_pending_restart_and_a_gated_start() -> None:
    m = running()
    assert m.exited(EXIT1, 0.5) == [] and m.start_at is not None  # backoff pending
    m.stopping()
    assert m.is_down() and m.deadline() is None and m.tick(100.0) == []
    gated = machine()
    gated.gated = True
    assert gated.boot(0.0, normally_up=True) == [] and gated.waiting
    gated.stopping()
    gated.gated = False
    assert gated.is_down() and gated.release(1.0) == []


def test_stopping_during_setup_does_not_start_run() -> None:
    m = in_setup(pid=50)
    m.stopping()
    assert m.exited(EXIT0, 1.0) == []
    assert m.is_down()


def test_stopping_ignores_unhealthy_and_forbids_probes() -> None:
    m = running()
    assert m.may_probe()
    m.stopping()
    assert not m.may_probe()
    assert m.set_unhealthy("not ready within 1s", 1.0) == [] and m.unhealthy is None
    assert m.command("d", 1.0) == STOP  # the stop itself still comes in dependency order


def test_nothing_starts_once_stopping_or_frozen() -> None:
    for stage in (STOPPING, FROZEN):
        m = machine()
        m.boot(0.0, normally_up=False)
        if stage == STOPPING:
            m.stopping()
        else:
            m.abandon(0.0)
        assert m.command("u", 1.0) == [] and m.command("o", 1.0) == []
        assert m.is_down()


def test_abandon_while_running_leaves_the_process_to_kill_all() -> None:
    m = running(has_finish=True)
    m.command("d", 1.0)
    m.abandon(2.0)
    assert m.stage == FROZEN and m.state == DOWN and m.deadline() is None
    assert m.exited(KILLED, 3.0) == []  # no finish once kill-all has begun
    m.stopping()  # never back to an earlier stage
    assert m.stage == FROZEN


# --- the shell's events: it never writes a field -------------------------------------------
def test_configure_takes_new_settings_and_keeps_what_the_shell_learnt() -> None:
    m = running(has_finish=True)
    m.retire(0.0, grace=2.0)
    m.configure(Policy(restart="never", kill_timeout=3.0))
    assert m.policy.restart == "never" and m.policy.kill_timeout == 3.0
    assert m.policy.has_finish and m.policy.term_grace == 2.0


def test_the_shutdown_limit_caps_the_timeouts_also_after_a_new_configure() -> None:
    m = running(kill_timeout=8.0, finish_timeout=9.0)
    m.stopping(2.0)
    assert (m.policy.kill_timeout, m.policy.finish_timeout) == (2.0, 2.0)
    m.configure(Policy(kill_timeout=7.0, finish_timeout=1.5))
    assert (m.policy.kill_timeout, m.policy.finish_timeout) == (2.0, 1.5)
    assert m.command("d", 1.0) == STOP and m.deadline() == 3.0


def test_a_longer_limit_later_never_loosens_an_earlier_one() -> None:
    m = running(kill_timeout=8.0)
    m.stopping(2.0)
    m.stopping(5.0)
    assert m.policy.kill_timeout == 2.0


def test_retire_with_a_grace_is_a_logger_stop_for_good() -> None:
    m = running()
    assert m.retire(1.0, grace=1.5) == [ClosePipe()]
    assert m.removed and m.want == "d" and m.deadline() == 2.5
    m.exited(EXIT0, 2.0)
    assert m.is_down() and m.deadline() is None


def test_retire_without_a_grace_is_svctl_exit() -> None:
    m = running()
    assert m.retire(1.0) == STOP
    assert m.removed and m.policy.term_grace == 0.0


def test_set_has_finish_decides_whether_finish_runs_at_the_next_exit() -> None:
    m = running()
    m.set_has_finish(True)
    assert crash(m, 5.0, 100) == [Start(finish_args=("1", "0"))]
    m.set_has_finish(False)
    assert m.exited(EXIT0, 5.5) == [Start()]  # finish done: run again
    m.spawned(101, 5.5)
    m.command("d", 20.0)
    assert m.exited(TERMED, 20.5) == [] and m.state == DOWN


def test_once_on_a_gated_service_runs_it_once_when_the_gate_opens() -> None:
    m = machine()
    m.set_gate(True)
    m.boot(0.0, normally_up=False)
    assert m.command("o", 1.0) == [] and m.waiting and not m.is_down()
    m.set_gate(False)
    assert m.release(2.0) == [Start()] and m.want == "d"
    m.spawned(100, 2.0)
    assert m.exited(EXIT0, 3.0) == [] and m.is_down()
