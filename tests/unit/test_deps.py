"""deps: checking the dependency graph, start gating, failed requirements, stop order."""

from __future__ import annotations

import graphlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyinit.core.deps import (
    Deps,
    View,
    blockers,
    cycles,
    dependants,
    expand_groups,
    failed_requirement,
    may_stop,
    needed_by,
    problems,
)

READY = View(ready=True)
STARTING = View()  # up (or about to be) and not ready yet
DOWN = View(settled=True)  # wanted down: will not start by itself
FAILED = View(settled=True, failed=True)


def after(*names: str) -> Deps:
    return Deps(after=names)


def requires(*names: str) -> Deps:
    return Deps(requires=names)


def cycle_members(graph) -> set[str]:
    return {name for cycle in cycles(graph) for name in cycle}


# --- Deps ------------------------------------------------------------------------------
def test_all_is_requires_then_after_without_duplicates() -> None:
    assert Deps().all == ()
    assert Deps(after=("a", "b"), requires=("c", "a")).all == ("c", "a", "b")


# --- problems ------------------------------------------------------------------------------
def test_a_good_graph_has_no_problems() -> None:
    graph = {"web": Deps(after=("cache",), requires=("db",)), "db": Deps(), "cache": after("db")}
    assert problems(graph) == {}
    assert cycles(graph) == []


def test_unknown_names() -> None:
    graph = {"web": Deps(after=("cache",), requires=("db", "queue")), "db": Deps()}
    assert problems(graph) == {"web": "depends on unknown service 'queue', 'cache'"}


def test_unknown_names_take_precedence_over_a_cycle() -> None:
    graph = {"a": after("b", "nope"), "b": after("a")}
    assert problems(graph) == {"a": "depends on unknown service 'nope'",
                               "b": "dependency cycle: a -> b -> a"}


def test_self_cycle() -> None:
    graph = {"a": requires("a"), "b": after("a")}
    assert cycles(graph) == [["a"]]
    assert problems(graph) == {"a": "dependency cycle: a -> a"}


def test_two_cycle() -> None:
    graph = {"a": after("b"), "b": requires("a"), "c": Deps()}
    assert cycles(graph) == [["a", "b"]]
    assert problems(graph) == {"a": "dependency cycle: a -> b -> a",
                               "b": "dependency cycle: a -> b -> a"}


def test_three_cycle_with_a_tail() -> None:
    # tail -> x -> y -> z -> x, and `free` depends on the tail only
    graph = {"tail": after("x"), "x": after("y"), "y": requires("z"), "z": after("x"),
             "free": after("tail"), "alone": Deps()}
    assert cycles(graph) == [["x", "y", "z"]]
    text = "dependency cycle: x -> y -> z -> x"
    assert problems(graph) == {"x": text, "y": text, "z": text}


def test_two_separate_cycles_are_each_reported() -> None:
    graph = {"a": after("b"), "b": after("a"), "c": after("d"), "d": after("c"), "e": after("a")}
    assert sorted(sorted(c) for c in cycles(graph)) == [["a", "b"], ["c", "d"]]
    assert set(problems(graph)) == {"a", "b", "c", "d"}


def test_every_reported_cycle_is_a_real_cycle() -> None:
    graph = {"a": after("b", "c"), "b": after("c"), "c": after("a", "d"), "d": after("b")}
    for cycle in cycles(graph):
        for i, name in enumerate(cycle):
            assert cycle[(i + 1) % len(cycle)] in graph[name].all


def test_every_service_on_a_cycle_is_reported() -> None:
    graph = {"r": after("w", "v"), "w": after("r"), "v": after("w")}
    assert set(problems(graph)) == {"r", "v", "w"}


# --- blockers ------------------------------------------------------------------------------
@pytest.mark.parametrize("view, blocks_after, blocks_requires", [
    (READY, False, False),
    (View(ready=True, settled=True), False, False),  # a done oneshot
    (STARTING, True, True),
    (DOWN, False, True),
    (FAILED, False, True),
])
def test_after_vs_requires(view: View, blocks_after: bool, blocks_requires: bool) -> None:
    views = {"db": view}
    assert blockers("web", {"web": after("db"), "db": Deps()}, views) == (
        ["db"] if blocks_after else [])
    assert blockers("web", {"web": requires("db"), "db": Deps()}, views) == (
        ["db"] if blocks_requires else [])


def test_blockers_lists_what_is_still_waited_for_in_order() -> None:
    graph = {"web": Deps(after=("cache", "log", "off"), requires=("db", "auth")),
             "db": Deps(), "auth": Deps(), "cache": Deps(), "log": Deps(), "off": Deps()}
    views = {"db": STARTING, "auth": READY, "cache": STARTING, "log": READY, "off": DOWN}
    assert blockers("web", graph, views) == ["db", "cache"]
    views.update(db=READY, cache=READY)
    assert blockers("web", graph, views) == []


def test_a_target_not_seen_yet_blocks() -> None:
    assert blockers("web", {"web": requires("db"), "db": Deps()}, {}) == ["db"]
    assert blockers("web", {"web": after("db"), "db": Deps()}, {}) == ["db"]


def test_a_service_outside_the_graph_waits_for_nothing() -> None:
    assert blockers("ghost", {}, {"db": STARTING}) == []


# --- failed_requirement ---------------------------------------------------------------------
def test_failed_requirement() -> None:
    graph = {"web": Deps(after=("cache",), requires=("db", "auth")), "db": Deps(),
             "auth": Deps(), "cache": Deps()}
    assert failed_requirement("web", graph, {"db": STARTING, "auth": DOWN}) is None
    assert failed_requirement("web", graph, {"cache": FAILED}) is None  # after only
    assert failed_requirement("web", graph, {"db": READY, "auth": FAILED}) == "auth"
    assert failed_requirement("web", graph, {"db": FAILED, "auth": FAILED}) == "db"
    assert failed_requirement("ghost", graph, {"db": FAILED}) is None


# --- shutdown order ---------------------------------------------------------------------------
def test_dependants() -> None:
    graph = {"db": Deps(), "web": requires("db"), "worker": after("db"), "cron": after("web")}
    assert dependants("db", graph) == ["web", "worker"]
    assert dependants("web", graph) == ["cron"]
    assert dependants("cron", graph) == []


def test_may_stop_in_reverse_start_order() -> None:
    graph = {"db": Deps(), "web": requires("db"), "worker": after("db"), "cron": after("web")}
    running = {"db", "web", "worker", "cron"}
    order = []
    while running:
        stoppable = sorted(n for n in running if may_stop(n, graph, running))
        assert stoppable, "shutdown is stuck"
        order.append(stoppable)
        running -= set(stoppable)
    assert order == [["cron", "worker"], ["web"], ["db"]]


def test_may_stop_ignores_services_that_are_not_running_and_self_loops() -> None:
    graph = {"db": Deps(), "web": requires("db"), "me": after("me")}
    assert not may_stop("db", graph, {"db", "web"})
    assert may_stop("db", graph, {"db"})
    assert may_stop("me", graph, {"me"})


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([f"s{i}" for i in range(6)]),
        st.tuples(st.lists(st.sampled_from([f"s{i}" for i in range(7)]), max_size=3),
                  st.lists(st.sampled_from([f"s{i}" for i in range(7)]), max_size=3)),
    ),
    st.sets(st.sampled_from([f"s{i}" for i in range(7)])),
)
def test_needed_by_is_what_may_stop_refuses(edges: dict, running: set[str]) -> None:
    """The shutdown order's one-pass set (shutdown.py) says what may_stop says, name by name."""
    graph = {name: Deps(tuple(a), tuple(r)) for name, (a, r) in edges.items()}
    needed = needed_by(graph, running)
    for name in [f"s{i}" for i in range(7)]:
        assert (name not in needed) == may_stop(name, graph, running), name


# --- property: cycles() agrees with graphlib ----------------------------------------------
NAMES = [f"s{i}" for i in range(7)]


@st.composite
def graphs(draw):
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=7, unique=True))
    targets = st.lists(st.sampled_from(names + ["ghost"]), max_size=3, unique=True)
    return {n: Deps(after=tuple(draw(targets)), requires=tuple(draw(targets))) for n in names}


@settings(max_examples=500, deadline=None)
@given(graphs())
def test_cycles_iff_no_topological_order(graph) -> None:
    sorter = graphlib.TopologicalSorter(
        {name: [d for d in deps.all if d in graph] for name, deps in graph.items()})
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError:
        order = None
    found = cycles(graph)
    assert bool(found) == (order is None)
    for cycle in found:  # each one is a real cycle of known services
        assert len(set(cycle)) == len(cycle)
        for i, name in enumerate(cycle):
            assert cycle[(i + 1) % len(cycle)] in graph[name].all
    reported = problems(graph)
    for name in cycle_members(graph):
        assert name in reported
    if order is not None:
        # without cycles, every reported problem is an unknown name
        assert all(text.startswith("depends on unknown service") for text in reported.values())
        assert set(reported) == {n for n, d in graph.items() if "ghost" in d.all}


def test_a_group_means_all_of_its_instances() -> None:
    graph = {"web": Deps(after=("worker", "db"), requires=("tpl@",)), "db": Deps(),
             "worker@1": Deps(), "worker@2": Deps(), "tpl@a": Deps()}
    groups = {"worker": ["worker@1", "worker@2"], "tpl@": ["tpl@a"], "none": []}
    out = expand_groups(graph, groups)
    assert out["web"] == Deps(after=("worker@1", "worker@2", "db"), requires=("tpl@a",))
    assert out["db"] == Deps()
    assert expand_groups({"x": after("none")}, groups)["x"] == Deps()  # scaled to 0
    # a service of that name is itself, not a group
    assert expand_groups({"x": after("db"), "db": Deps()}, {"db": ["db@1"]})["x"] == after("db")
