"""Service templates and instances, as pure decisions.

A directory whose name ends in '@' (`worker@`) is a template: never started by
itself. `worker@NAME` is an instance of it when an entry of that name resolves to
the template's directory, or when `svctl up worker@NAME` asks for it (on demand).
A directory `worker` whose service.yaml sets `instances: N` is counted: it is
supervised as `worker@1` .. `worker@N` (`svctl scale` changes N at run time).

A group is what a dependency or an svctl command may name for all of its
instances: a counted service's name, or a template's name. Instances leave
highest number first, one at a time per group (next_to_stop).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Collection, Iterable, Mapping, Optional

from pyinit.core.schema import MAX_INSTANCES  # `instances:` and `svctl scale`

if TYPE_CHECKING:
    from pyinit.core.model import ServiceDir

MAX_NAME = 100  # an instance name's length, in characters


def is_template(name: str) -> bool:
    return len(name) > 1 and name.endswith("@")


def instance_of(name: str, target: str) -> Optional[str]:
    """The instance NAME of an entry `T@NAME` whose directory is the template `T@`
    (target: the basename of the directory the entry resolves to); else None."""
    if is_template(target) and len(name) > len(target) and name.startswith(target):
        return name[len(target) :]
    return None


def template_of(name: str, templates: Collection[str]) -> Optional[str]:
    """The template `name` would be an instance of (the longest that fits), or None."""
    fits = [t for t in templates if len(name) > len(t) and name.startswith(t)]
    return max(fits, key=len) if fits else None


def bad_instance(instance: str) -> Optional[str]:
    """Why an instance name cannot be used (it becomes $1 and part of a name), or None."""
    if not instance:
        return "the instance name is empty"
    if len(instance) > MAX_NAME:
        return f"the instance name is longer than {MAX_NAME} characters"
    if "/" in instance or instance.startswith("."):
        return "the instance name must not contain '/' or start with '.'"
    if any(ord(c) < 32 or ord(c) == 127 for c in instance):
        return "the instance name must not contain control characters"
    return None


def check_on_demand(name: str, templates: Collection[str], made: Collection[str]) -> Optional[str]:
    """Why `svctl up name` cannot make an instance on demand (made: those it made
    already), or None."""
    template = template_of(name, templates)
    if template is None:
        return "no such service"
    if sum(1 for other in made if template_of(other, templates) == template) >= MAX_INSTANCES:
        return f"{template} has {MAX_INSTANCES} on-demand instances already"
    return bad_instance(name[len(template) :])


def sort_key(name: str) -> list:
    """Natural order: worker@2 before worker@10."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", name))]


def stop_order(names: Iterable[str]) -> list[str]:
    """The highest instance numbers first."""
    return sorted(names, key=sort_key, reverse=True)


def effective_count(configured: int, scaled: Optional[tuple[int, int]]) -> int:
    """The count of a counted service: `svctl scale`'s (configured when it ran, count)
    while service.yaml still says what it said then, else service.yaml's."""
    if scaled is not None and scaled[0] == configured:
        return scaled[1]
    return configured


@dataclass
class Expansion:
    """What is supervised, after templates and counts are applied."""

    services: dict[str, ServiceDir] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)  # group -> its instances
    templates: dict[str, ServiceDir] = field(default_factory=dict)
    configured: dict[str, int] = field(default_factory=dict)  # counted: service.yaml's count
    problems: list[str] = field(default_factory=list)
    member_of: dict[str, str] = field(default_factory=dict)  # instance -> its group

    def add(self, name: str, defn: ServiceDir, group: Optional[str]) -> None:
        if name in self.services:
            self.problems.append(
                f"{defn.path}: instance {name!r} clashes with a service of that name: ignored"
            )
            return
        self.services[name] = defn
        if group is not None:
            self.groups.setdefault(group, []).append(name)
            self.member_of[name] = group


def expand(
    found: Mapping[str, ServiceDir], scaled: Mapping[str, tuple[int, int]], on_demand: Iterable[str]
) -> Expansion:
    """The services to supervise: plain ones and instance entries as found (they win
    over a counted instance of the same name), counted ones as NAME@1..NAME@N, then
    the on-demand instances whose template exists."""
    out = Expansion()
    counted = []
    for name, defn in found.items():
        if is_template(name):
            out.templates[name] = defn
            out.groups.setdefault(name, [])
        elif defn.instance is not None:
            out.add(name, defn, name[: len(name) - len(defn.instance)])
        elif defn.config.instances is not None:
            counted.append((name, defn))
        else:
            out.add(name, defn, None)
    for name, defn in counted:
        configured = int(defn.config.instances or 0)
        out.configured[name] = configured
        out.groups.setdefault(name, [])
        for i in range(1, effective_count(configured, scaled.get(name)) + 1):
            out.add(
                f"{name}@{i}", dataclasses.replace(defn, name=f"{name}@{i}", instance=str(i)), name
            )
    for name in sorted(on_demand, key=sort_key):
        template = template_of(name, out.templates)
        if template is not None and name not in out.services:
            defn = dataclasses.replace(
                out.templates[template], name=name, instance=name[len(template) :]
            )
            out.add(name, defn, template)
    for members in out.groups.values():
        members.sort(key=sort_key)
    return out


def group_of(name: str, instance: Optional[str]) -> Optional[str]:
    """The template-like prefix an instance's name shares with its siblings."""
    return name[: len(name) - len(instance)] if instance else None


def next_to_stop(queue: Mapping[str, str], stopping: Mapping[str, str]) -> list[str]:
    """Instances to stop now, from those waiting to leave (name -> group): per group the
    highest number, unless one of that group is still stopping."""
    busy = set(stopping.values())
    out = []
    for name in stop_order(queue):
        if queue[name] not in busy:
            busy.add(queue[name])
            out.append(name)
    return out


def bad_count(count: object) -> Optional[str]:
    """Why `svctl scale NAME count` cannot be done, or None."""
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_INSTANCES:
        return f"the count must be an integer from 0 to {MAX_INSTANCES}"
    return None
