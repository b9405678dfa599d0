"""runit's `sv status` line, byte for byte, and sv's wait conditions (check() in sv.c)."""

from __future__ import annotations

import pytest

from pyinit.core.svstatus import (
    SETTLE,
    healthy,
    hopeless,
    satisfied,
    sv_part,
    sv_status_line,
    unsettled,
)

NOW = 1_700_000_000.0


def rec(state="run", pid=123, ago=45.0, want="u", normally_up=True, paused=False,
        got_term=False, **extra):
    return dict(state=state, pid=pid, since=NOW - ago, want=want, normally_up=normally_up,
                paused=paused, got_term=got_term, **extra)


# --- sv status format --------------------------------------------------------------------
def test_running_service_with_logger() -> None:
    r = rec(pid=123, log=rec(pid=124, ago=45.2))
    assert sv_status_line("nginx", r, NOW) == "run: nginx: (pid 123) 45s; run: log: (pid 124) 45s"


def test_down_normally_up() -> None:
    r = rec(state="down", pid=None, ago=3.9, want="d")
    assert sv_status_line("worker", r, NOW) == "down: worker: 3s, normally up"


def test_down_normally_up_want_up_while_backing_off() -> None:
    r = rec(state="down", pid=None, ago=0.2, want="u")
    assert sv_part("worker", r, NOW) == "down: worker: 0s, normally up, want up"


def test_down_normally_down() -> None:
    r = rec(state="down", pid=None, ago=12, want="d", normally_up=False)
    assert sv_part("batch", r, NOW) == "down: batch: 12s"


def test_down_normally_down_want_up() -> None:
    r = rec(state="down", pid=None, ago=1, want="u", normally_up=False)
    assert sv_part("batch", r, NOW) == "down: batch: 1s, want up"


def test_running_normally_down() -> None:
    r = rec(pid=5, ago=2, normally_up=False)
    assert sv_part("x", r, NOW) == "run: x: (pid 5) 2s, normally down"


def test_want_down() -> None:
    assert sv_part("x", rec(pid=5, ago=2, want="d"), NOW) == "run: x: (pid 5) 2s, want down"


def test_paused() -> None:
    assert sv_part("x", rec(pid=5, ago=2, paused=True), NOW) == "run: x: (pid 5) 2s, paused"


def test_got_term() -> None:
    r = rec(pid=5, ago=2, got_term=True)
    assert sv_part("x", r, NOW) == "run: x: (pid 5) 2s, got TERM"


def test_every_flag_in_runits_order() -> None:
    r = rec(pid=5, ago=2, normally_up=False, paused=True, want="d", got_term=True)
    assert sv_part("x", r, NOW) == (
        "run: x: (pid 5) 2s, normally down, paused, want down, got TERM"
    )


def test_flags_that_need_a_pid_are_hidden_when_down() -> None:
    # sv prints paused / want down / got TERM only while there is a process
    r = rec(state="down", pid=None, ago=2, normally_up=False, paused=True, want="d",
            got_term=True)
    assert sv_part("x", r, NOW) == "down: x: 2s"


def test_want_up_is_hidden_while_running() -> None:
    assert sv_part("x", rec(pid=5, ago=2, want="u"), NOW) == "run: x: (pid 5) 2s"


def test_finish_state() -> None:
    r = rec(state="finish", pid=77, ago=1.5)
    assert sv_part("worker", r, NOW) == "finish: worker: (pid 77) 1s"
    r = rec(state="finish", pid=77, ago=0.1, want="d")
    assert sv_part("worker", r, NOW) == "finish: worker: (pid 77) 0s, want down"


def test_seconds_are_floored_and_never_negative() -> None:
    assert sv_part("x", rec(pid=5, ago=59.999), NOW) == "run: x: (pid 5) 59s"
    assert sv_part("x", rec(pid=5, ago=3600), NOW) == "run: x: (pid 5) 3600s"
    assert sv_part("x", rec(pid=5, ago=-5), NOW) == "run: x: (pid 5) 0s"


def test_label_is_printed_as_given() -> None:
    r = rec(pid=5, ago=1)
    assert sv_part("/etc/service/web", r, NOW) == "run: /etc/service/web: (pid 5) 1s"
    assert sv_part("my svc é", r, NOW) == "run: my svc é: (pid 5) 1s"


def test_logger_part_down_while_backing_off() -> None:
    r = rec(pid=9, ago=10, log=rec(state="down", pid=None, ago=0, want="u"))
    assert sv_status_line("web", r, NOW) == (
        "run: web: (pid 9) 10s; down: log: 0s, normally up, want up"
    )


def test_service_that_cannot_run() -> None:
    r = rec(state="down", pid=None, error="run is not executable")
    assert sv_status_line("bad", r, NOW) == "fail: bad: run is not executable"


def test_no_log_key_means_no_log_part() -> None:
    assert sv_status_line("x", rec(pid=1, ago=0, log=None), NOW) == "run: x: (pid 1) 0s"


# --- wait conditions ---------------------------------------------------------------------
T0 = 100.0  # asked_at


def st(state="run", pid=10, since=T0 + 1, want="u", paused=False, got_term=False):
    return dict(state=state, pid=pid, since=since, want=want, paused=paused, got_term=got_term)


@pytest.mark.parametrize(
    "record,expected",
    [
        (st(), True),
        (st(pid=None, state="down"), False),
        (st(state="finish"), False),
        (st(since=T0 - 50), True),  # running since before the request: still up
    ],
)
def test_u(record, expected) -> None:
    assert satisfied("u", record, T0) is expected


@pytest.mark.parametrize(
    "record,expected",
    [
        (st(pid=None, state="down", want="d"), True),
        (st(want="d", got_term=True), False),
        (st(state="finish", want="d"), False),
    ],
)
def test_d(record, expected) -> None:
    assert satisfied("d", record, T0) is expected


@pytest.mark.parametrize("letter", ["t", "k"])
def test_t_and_k_need_a_new_process(letter) -> None:
    # the old process (started before the request) still runs: not yet
    assert not satisfied(letter, st(since=T0 - 5), T0)
    assert not satisfied(letter, st(since=T0 + 1, got_term=True), T0)
    assert not satisfied(letter, st(pid=None, state="down", want="u"), T0)
    # restarted after the request
    assert satisfied(letter, st(since=T0 + 1), T0)
    # stopped for good (want down): done
    assert satisfied(letter, st(pid=None, state="down", want="d"), T0)


def test_o() -> None:
    assert satisfied("o", st(want="d"), T0)  # running once
    assert not satisfied("o", st(want="u"), T0)
    assert satisfied("o", st(pid=None, state="down", since=T0 + 1, want="d"), T0)  # ran, ended
    assert not satisfied("o", st(pid=None, state="down", since=T0 - 1, want="d"), T0)


def test_p_and_c() -> None:
    assert satisfied("p", st(paused=True), T0)
    assert not satisfied("p", st(paused=False), T0)
    assert satisfied("p", st(pid=None, state="down"), T0)  # nothing to pause
    assert satisfied("c", st(paused=False), T0)
    assert not satisfied("c", st(paused=True), T0)
    assert satisfied("c", st(pid=None, state="down"), T0)


def test_x_waits_until_the_service_is_down() -> None:
    assert satisfied("x", st(pid=None, state="down", want="d"), T0)
    assert not satisfied("x", st(want="d", got_term=True), T0)
    assert not satisfied("x", st(state="finish", want="d"), T0)


def test_signal_letters_and_C_are_satisfied_at_once() -> None:
    for letter in "hai12qC":
        assert satisfied(letter, st(), T0), letter


def test_restart_letters_tcu() -> None:
    assert not satisfied("tcu", st(since=T0 - 10), T0)
    assert not satisfied("tcu", st(since=T0 + 1, paused=True), T0)
    assert satisfied("tcu", st(since=T0 + 1), T0)
    assert not satisfied("tcu", st(pid=None, state="down", since=T0 + 1, want="u"), T0)


def test_missing_fields_default_to_down() -> None:
    assert satisfied("d", {}, T0)
    assert not satisfied("u", {}, T0)


# --- service configuration: done, not ready, waiting for, failed -------------------------
def test_done_oneshot_replaces_normally_up() -> None:
    r = rec(state="down", pid=None, ago=7, want="d", outcome="done", ready=True)
    assert sv_part("migrate", r, NOW) == "down: migrate: 7s, done"
    r = rec(state="down", pid=None, ago=7, want="d", normally_up=False, outcome="done")
    assert sv_part("migrate", r, NOW) == "down: migrate: 7s, done"


def test_done_is_not_shown_while_running_again() -> None:
    r = rec(pid=5, ago=1, outcome="done")
    assert sv_part("migrate", r, NOW) == "run: migrate: (pid 5) 1s"


def test_other_outcomes_are_not_done() -> None:
    r = rec(state="down", pid=None, ago=3, want="d", outcome="exited")
    assert sv_part("x", r, NOW) == "down: x: 3s, normally up"


def test_not_ready() -> None:
    assert sv_part("db", rec(pid=5, ago=2, ready=False), NOW) == "run: db: (pid 5) 2s, not ready"
    assert sv_part("db", rec(pid=5, ago=2, ready=True), NOW) == "run: db: (pid 5) 2s"
    assert sv_part("db", rec(pid=5, ago=2), NOW) == "run: db: (pid 5) 2s"  # no field: ready


def test_not_ready_only_in_run_state_with_a_pid() -> None:
    r = rec(state="finish", pid=6, ago=1, ready=False)
    assert sv_part("db", r, NOW) == "finish: db: (pid 6) 1s"
    r = rec(state="down", pid=None, ago=1, want="d", ready=False)
    assert sv_part("db", r, NOW) == "down: db: 1s, normally up"


def test_not_ready_comes_after_the_runit_flags() -> None:
    r = rec(pid=5, ago=2, want="d", got_term=True, ready=False)
    assert sv_part("db", r, NOW) == "run: db: (pid 5) 2s, want down, got TERM, not ready"


def test_waiting_for() -> None:
    r = rec(state="down", pid=None, ago=4, want="u", waiting_for=["db", "cache"])
    assert sv_part("web", r, NOW) == "down: web: 4s, normally up, want up, waiting for db, cache"
    r = rec(state="down", pid=None, ago=4, want="u", waiting_for=[])
    assert sv_part("web", r, NOW) == "down: web: 4s, normally up, want up"


def test_waiting_for_in_the_whole_line() -> None:
    r = rec(state="down", pid=None, ago=0, want="u", waiting_for=["db"],
            log=rec(pid=8, ago=3))
    assert sv_status_line("web", r, NOW) == (
        "down: web: 0s, normally up, want up, waiting for db; run: log: (pid 8) 3s")


def test_failed_service_line() -> None:
    r = rec(state="down", pid=None, want="d", outcome="failed",
            failed="5 restarts within 60s; svctl up to retry", log=rec(pid=8))
    assert sv_status_line("api", r, NOW) == (
        "fail: api: 5 restarts within 60s; svctl up to retry")


def test_error_wins_over_failed() -> None:
    r = rec(state="down", pid=None, error="bad service.yaml", failed="exited with exit code 1")
    assert sv_status_line("api", r, NOW) == "fail: api: bad service.yaml"


def test_failed_is_not_shown_while_a_process_runs() -> None:
    r = rec(state="finish", pid=9, ago=1, failed="exited with exit code 1")
    assert sv_status_line("api", r, NOW) == "finish: api: (pid 9) 1s"


@pytest.mark.parametrize("record, is_healthy, is_hopeless", [
    (rec(pid=5, ready=True), True, False),
    (rec(pid=5), True, False),  # no readiness field: up is enough
    (rec(pid=5, ready=False), False, False),
    (rec(state="finish", pid=5), False, False),
    (rec(state="down", pid=None, want="u"), False, False),  # backing off or waiting
    (rec(state="down", pid=None, want="u", waiting_for=["db"]), False, False),
    (rec(state="down", pid=None, want="d"), True, False),  # not wanted up
    (rec(state="down", pid=None, want="d", outcome="done"), True, False),
    (rec(state="down", pid=None, want="u", outcome="done"), True, False),
    (rec(state="down", pid=None, want="d", outcome="exited"), True, False),
    (rec(state="down", pid=None, want="d", outcome="failed", failed="x"), False, True),
    (rec(state="down", pid=None, want="u", error="bad run"), False, True),
    (rec(pid=5, error="service.yaml turned bad"), True, False),  # still running
    (rec(pid=5, ready=False, failed="x"), False, False),
])
def test_healthy_and_hopeless(record, is_healthy: bool, is_hopeless: bool) -> None:
    assert healthy(record) is is_healthy
    assert hopeless(record) is is_hopeless
    assert satisfied("C", record, T0) is is_healthy


def test_C_combines_with_other_letters() -> None:
    up_not_ready = dict(st(), ready=False)
    assert satisfied("u", up_not_ready, T0)
    assert not satisfied("uC", up_not_ready, T0)
    assert satisfied("uC", dict(st(), ready=True), T0)


# --- check in a crash loop (issue 18.9): restarted runs must settle ----------------------
@pytest.mark.parametrize("record, is_healthy, left", [
    # never restarted: readiness alone decides (a just-started ready service is healthy)
    (rec(pid=5, ready=True, restarts=0, uptime=0.0), True, 0.0),
    # restarted, caught between restarts: not healthy until it stayed up SETTLE seconds
    (rec(pid=5, ready=True, restarts=3, uptime=0.0), False, SETTLE),
    (rec(pid=5, restarts=1, uptime=0.25), False, SETTLE - 0.25),
    (rec(pid=5, restarts=1, uptime=SETTLE), True, 0.0),
    (rec(pid=5, restarts=9, uptime=600.0), True, 0.0),  # crashed once long ago: fine now
    # the service's own settle time (ready.settle, at least SETTLE) counts
    (rec(pid=5, restarts=2, uptime=2.0, settle=5.0), False, 3.0),
    (rec(pid=5, restarts=2, uptime=5.0, settle=5.0), True, 0.0),
    # restarted but not ready: neither ready nor settled
    (rec(pid=5, ready=False, restarts=2, uptime=0.1), False, SETTLE - 0.1),
    # in backoff: down, wanted up, a restart pending
    (rec(state="down", pid=None, want="u", restarts=4, uptime=0.3, next_start_in=0.8),
     False, 0.0),
    # finish running after a crash
    (rec(state="finish", pid=7, restarts=4, uptime=0.0), False, 0.0),
    # failed for good after max_restarts: not healthy, and hopeless (check fails at once)
    (rec(state="down", pid=None, want="d", restarts=5, outcome="failed",
         failed="5 restarts within 60s; svctl up to retry"), False, 0.0),
    # a service wanted down is healthy whatever its history
    (rec(state="down", pid=None, want="d", restarts=5, uptime=0.0), True, 0.0),
    # a done oneshot that was restarted before it succeeded
    (rec(state="down", pid=None, want="d", restarts=2, outcome="done"), True, 0.0),
])
def test_restarted_run_must_settle(record, is_healthy: bool, left: float) -> None:
    assert healthy(record) is is_healthy
    assert satisfied("C", record, T0) is is_healthy
    assert unsettled(record) == pytest.approx(left)
