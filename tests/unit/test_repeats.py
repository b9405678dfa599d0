"""Repeats: a failure recurring at every retry is logged once until a success."""

from __future__ import annotations

from pyinit.core.repeats import Repeats, Throttle


def test_the_same_failure_is_new_only_once() -> None:
    r = Repeats()
    assert r.failed("a", "cannot fork")
    assert not r.failed("a", "cannot fork")
    assert not r.failed("a", "cannot fork")


def test_a_different_failure_or_key_is_new() -> None:
    r = Repeats()
    assert r.failed("a", "cannot fork")
    assert r.failed("b", "cannot fork")
    assert r.failed("a", "permission denied")
    assert not r.failed("a", "permission denied")


def test_success_ends_the_failure_and_rearms_it() -> None:
    r = Repeats()
    assert r.succeeded("a") is None
    r.failed("a", "cannot fork")
    assert r.succeeded("a") == "cannot fork"
    assert r.succeeded("a") is None
    assert r.failed("a", "cannot fork")


def test_throttle_tells_at_most_once_per_interval_with_the_count_since() -> None:
    t = Throttle(60.0)
    assert t.event(100.0) == 1  # the first is told at once
    assert [t.event(now) for now in (101.0, 120.0, 159.9)] == [0, 0, 0]
    assert t.event(160.0) == 4  # the three held back, and this one
    assert t.event(161.0) == 0
    assert t.event(500.0) == 2
