"""Repeats: a failure recurring at every retry is logged once until a success."""

from __future__ import annotations

from pyinit.repeats import Repeats


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
