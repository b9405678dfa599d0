"""Dependency gates: `after` and `requires` (deps.py decides, this applies it).

A service whose dependencies are not ready waits with its gate closed; it
starts when they are. One whose `requires` target failed for good is failed
too. Re-checked after every change of any machine, re-entrancy safe.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from pyinit.core import deps
from pyinit.core.model import ServiceDir
from pyinit.core.schema import FILE_NAME
from pyinit.runtime import log
from pyinit.services.records import Service, Slot, Table


def dependency_graph(
    found: dict[str, ServiceDir], groups: dict[str, list[str]]
) -> tuple[dict[str, deps.Deps], dict[str, str]]:
    """The dependency graph of found (groups expanded) and, per service whose
    dependency is unknown or on a cycle, its error (also `pyinit check`'s)."""
    graph = {
        name: deps.Deps() if d.error else deps.Deps(d.config.after, d.config.requires)
        for name, d in found.items()
    }
    graph = deps.expand_groups(graph, groups)
    errors = {
        name: f"{os.path.join(found[name].path, FILE_NAME)}: {problem}"
        for name, problem in deps.problems(graph).items()
    }
    return graph, errors


class Gates:
    def __init__(
        self, table: Table, apply: Callable[[Slot, list], None], clock: Callable[[], float]
    ) -> None:
        self.table = table
        self.apply = apply
        self.clock = clock
        self.graph: dict[str, deps.Deps] = {}  # the services without problems
        self.any = False  # whether any service in graph depends on another (build)
        self._gating = False

    def build(
        self, found: dict[str, ServiceDir], groups: dict[str, list[str]]
    ) -> dict[str, ServiceDir]:
        """The dependency graph of found; unknown names and cycles make a service fail
        (found, with those marked by their error)."""
        graph, errors = dependency_graph(found, groups)
        for name, error in errors.items():
            found[name] = dataclasses.replace(found[name], error=error)
        self.graph = {name: graph[name] for name in graph if not found[name].error}
        self.any = any(d.all for d in self.graph.values())
        return found

    def has_dependencies(self, name: str) -> bool:
        """A new service starts with its gate closed if it depends on anything."""
        return bool(self.graph.get(name, deps.Deps()).all)

    def views(self) -> dict[str, deps.View]:
        out = {}
        for name, svc in self.table.services.items():
            m = svc.run.machine
            broken = bool(svc.defn.error) or m.failed is not None
            out[name] = deps.View(ready=m.ready, settled=broken or (m.want == "d"), failed=broken)
        return out

    def update(self) -> None:
        """Start services whose dependencies became ready; stop those whose
        requirement failed for good. Runs after every change, re-entrancy safe."""
        if self._gating or not self.any:  # O(1) per change when nothing has dependencies
            return
        self._gating = True
        try:
            changed = True
            while changed:
                changed = False
                views = self.views()
                for name, svc in self.table.services.items():
                    changed = self.update_one(name, svc, views) or changed
                    if changed:
                        break
        finally:
            self._gating = False

    def update_one(self, name: str, svc: Service, views: dict[str, deps.View]) -> bool:
        machine = svc.run.machine
        wanted = machine.want == "u" or machine.waiting  # a waiting `once` too
        if name not in self.graph or not wanted or self.table.shutting_down:
            svc.waiting_for = []
            return False
        failed = deps.failed_requirement(name, self.graph, views)
        if failed is not None:
            log.error(f"stopped: it requires {failed}, which failed", name)
            self.apply(svc.run, machine.fail(f"requires {failed}, which failed", self.clock()))
            return True
        svc.waiting_for = deps.blockers(name, self.graph, views)
        machine.set_gate(bool(svc.waiting_for))
        if machine.waiting and not machine.gated:
            self.apply(svc.run, machine.release(self.clock()))
            return True
        return False
