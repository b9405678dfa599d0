"""Service dependencies, as pure functions: checking the graph, what a service waits
for before it may start, which requirement failed for good, and the shutdown order.

`after: [x]` orders only: wait until x is ready, or will not start (down, failed).
`requires: [x]` also needs x: wait until x is ready; if x fails for good, stop.
Shutdown runs in reverse: a service is stopped once nothing that runs after it
(by either key) is still up. A group's name (instances.py) stands for all of
its instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence


@dataclass(frozen=True)
class Deps:
    after: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.requires + self.after))


@dataclass(frozen=True)
class View:
    """What dependency decisions need to know about one service now."""

    ready: bool = False  # up and ready, or a oneshot that is done
    settled: bool = False  # will not start by itself: wanted down, failed or broken
    failed: bool = False  # failed for good (or its definition is broken)


Graph = Mapping[str, Deps]


def expand_groups(graph: Graph, groups: Mapping[str, Sequence[str]]) -> dict[str, Deps]:
    """A dependency on a group (a counted service, a template) means all of its
    instances (none: nothing to wait for)."""
    def members(names: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for name in names:
            out.extend(groups[name] if name in groups and name not in graph else [name])
        return tuple(dict.fromkeys(out))

    return {name: Deps(members(d.after), members(d.requires)) for name, d in graph.items()}


def problems(graph: Graph) -> dict[str, str]:
    """Unknown names and cycles: service name -> the one-line error for it."""
    found: dict[str, str] = {}
    for name, deps in graph.items():
        unknown = [d for d in deps.all if d not in graph]
        if unknown:
            found[name] = "depends on unknown service " + ", ".join(repr(u) for u in unknown)
    for cycle in cycles(graph):
        text = "dependency cycle: " + " -> ".join(cycle + [cycle[0]])
        for name in cycle:
            found.setdefault(name, text)
    return found


def cycles(graph: Graph) -> list[list[str]]:
    """Dependency cycles, as lists of names (each following the next's dependency);
    every service on some cycle is on at least one of them."""
    edges = {name: [d for d in graph[name].all if d in graph] for name in sorted(graph)}
    reach = {name: _reachable(name, edges) for name in edges}
    out: list[list[str]] = []
    covered: set[str] = set()
    for name in edges:
        if name in covered or name not in reach[name]:
            continue
        component = {other for other in reach[name] if name in reach[other]}
        cycle = _shortest_cycle(name, edges, component)
        out.append(cycle)
        covered.update(cycle)
    return out


def _reachable(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    """Names reachable from start in one step or more."""
    seen: set[str] = set()
    stack = list(edges[start])
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(edges[name])
    return seen


def _shortest_cycle(start: str, edges: Mapping[str, list[str]], within: set[str]) -> list[str]:
    """The shortest path from start back to start inside `within` (breadth first)."""
    parent: dict[str, str] = {}
    queue = [start]
    for name in queue:
        for nxt in edges[name]:
            if nxt == start:
                path = [name]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if nxt in within and nxt not in parent:
                parent[nxt] = name
                queue.append(nxt)
    return [start]  # not reached: start is on a cycle


def blockers(name: str, graph: Graph, views: Mapping[str, View]) -> list[str]:
    """The services `name` still waits for before it may start."""
    deps = graph.get(name, Deps())
    waiting = []
    for target in deps.all:
        view = views.get(target)
        if view is not None and view.ready:
            continue
        if view is None or target in deps.requires or not view.settled:  # None: not seen yet
            waiting.append(target)
    return waiting


def failed_requirement(name: str, graph: Graph, views: Mapping[str, View]) -> Optional[str]:
    """A `requires` target of name that failed for good, if any."""
    for target in graph.get(name, Deps()).requires:
        view = views.get(target)
        if view is not None and view.failed:
            return target
    return None


def dependants(name: str, graph: Graph) -> list[str]:
    """The services that list name in after or requires."""
    return sorted(other for other, deps in graph.items() if name in deps.all)


def may_stop(name: str, graph: Graph, running: set[str]) -> bool:
    """At shutdown: nothing that started after `name` is still running."""
    return not any(other in running for other in dependants(name, graph) if other != name)


def needed_by(graph: Graph, running: set[str]) -> set[str]:
    """At shutdown: the services that may not stop yet (may_stop is False for them),
    in one pass over the edges of running services instead of one per service."""
    return {
        target
        for other in running
        for target in graph.get(other, Deps()).all
        if target != other
    }
