"""instances.py: templates, instance names, counted expansion, scale and stop order."""

from __future__ import annotations

import dataclasses

import pytest

from pyinit.core.instances import (
    Expansion,
    bad_count,
    bad_instance,
    check_on_demand,
    effective_count,
    expand,
    group_of,
    instance_of,
    is_template,
    next_to_stop,
    sort_key,
    stop_order,
    template_of,
)
from pyinit.core.model import ServiceDir
from pyinit.core.schema import ServiceConfig


def sd(
    name: str, instances: int | None = None, instance: str | None = None, path: str = ""
) -> ServiceDir:
    return ServiceDir(
        name=name,
        path=path or f"/s/{name}",
        normally_up=True,
        has_log=False,
        config=ServiceConfig(instances=instances),
        instance=instance,
    )


def test_templates_and_instance_entries() -> None:
    assert is_template("worker@") and not is_template("@") and not is_template("worker")
    assert instance_of("worker@a", "worker@") == "a"
    assert instance_of("worker@a@b", "worker@") == "a@b"
    assert instance_of("worker@", "worker@") is None
    assert instance_of("other@a", "worker@") is None
    assert instance_of("worker@a", "worker@a") is None  # a plain directory
    assert template_of("a@b@c", ["a@", "a@b@"]) == "a@b@"  # the longest that fits
    assert template_of("a@", ["a@"]) is None


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "the instance name is empty"),
        ("x" * 101, "the instance name is longer than 100 characters"),
        ("a/b", "the instance name must not contain '/' or start with '.'"),
        ("..", "the instance name must not contain '/' or start with '.'"),
        ("a\nb", "the instance name must not contain control characters"),
        ("a\x7f", "the instance name must not contain control characters"),
    ],
)
def test_bad_instance_names(name: str, problem: str) -> None:
    assert bad_instance(name) == problem


@pytest.mark.parametrize("name", ["x", "8080", "tty1", "a b", "é", "a@b", "x" * 100])
def test_good_instance_names(name: str) -> None:
    assert bad_instance(name) is None


def test_natural_order_and_stop_order() -> None:
    names = ["w@10", "w@2", "w@1", "a", "w@x"]
    assert sorted(names, key=sort_key) == ["a", "w@1", "w@2", "w@10", "w@x"]
    assert stop_order(["w@2", "w@10", "w@3"]) == ["w@10", "w@3", "w@2"]


def test_scale_lasts_while_service_yaml_says_the_same() -> None:
    assert effective_count(3, None) == 3
    assert effective_count(3, (3, 5)) == 5
    assert effective_count(4, (3, 5)) == 4  # service.yaml changed since: it wins
    assert effective_count(3, (3, 0)) == 0


def test_expand_counted_templates_instances_and_on_demand() -> None:
    found = {
        "db": sd("db"),
        "worker": sd("worker", instances=2),
        "tpl@": sd("tpl@"),
        "tpl@a": sd("tpl@a", instance="a"),
    }
    out = expand(found, {}, ["tpl@z", "tpl@a", "nosuch@x"])
    assert list(out.services) == ["db", "tpl@a", "worker@1", "worker@2", "tpl@z"]
    w2 = out.services["worker@2"]
    assert (w2.name, w2.instance, w2.path) == ("worker@2", "2", "/s/worker")
    z = out.services["tpl@z"]
    assert (z.name, z.instance, z.path) == ("tpl@z", "z", "/s/tpl@")
    assert out.groups == {"tpl@": ["tpl@a", "tpl@z"], "worker": ["worker@1", "worker@2"]}
    assert out.member_of == {
        "tpl@a": "tpl@",
        "tpl@z": "tpl@",
        "worker@1": "worker",
        "worker@2": "worker",
    }
    assert list(out.templates) == ["tpl@"] and out.configured == {"worker": 2}
    assert out.problems == []


def test_expand_with_scale_and_clashes() -> None:
    found = {"worker": sd("worker", instances=2), "worker@3": sd("worker@3")}
    out = expand(found, {"worker": (2, 4)}, [])
    assert list(out.services) == ["worker@3", "worker@1", "worker@2", "worker@4"]
    assert out.services["worker@3"].instance is None  # the directory won
    assert out.groups == {"worker": ["worker@1", "worker@2", "worker@4"]}
    assert out.problems == [
        "/s/worker: instance 'worker@3' clashes with a service of that name: ignored"
    ]
    assert expand(found, {"worker": (2, 0)}, []).groups == {"worker": []}


def test_expansion_add_is_first_come() -> None:
    out = Expansion()
    out.add("a", sd("a"), None)
    out.add("a", dataclasses.replace(sd("a"), path="/t/a"), "g")
    assert out.services["a"].path == "/s/a" and out.groups == {}


def test_next_to_stop_one_at_a_time_per_group_highest_first() -> None:
    queue = {"w@3": "w@", "w@5": "w@", "w@4": "w@", "t@b": "t@"}
    assert next_to_stop(queue, {}) == ["w@5", "t@b"]
    assert next_to_stop(queue, {"w@6": "w@"}) == ["t@b"]
    assert next_to_stop({}, {"w@6": "w@"}) == []
    assert group_of("w@12", "12") == "w@" and group_of("web", None) is None


@pytest.mark.parametrize(
    "count, problem",
    [
        (0, None),
        (1000, None),
        (1001, "the count must be an integer from 0 to 1000"),
        (-1, "the count must be an integer from 0 to 1000"),
        (True, "the count must be an integer from 0 to 1000"),
        ("2", "the count must be an integer from 0 to 1000"),
    ],
)
def test_scale_counts(count: object, problem: str | None) -> None:
    assert bad_count(count) == problem


def test_on_demand_instances() -> None:
    templates = ["w@", "t@"]
    assert check_on_demand("w@x", templates, []) is None
    assert check_on_demand("nosuch@x", templates, []) == "no such service"
    assert check_on_demand("w@.x", templates, []) == (
        "the instance name must not contain '/' or start with '.'"
    )
    made = [f"w@{i}" for i in range(1000)]
    assert check_on_demand("w@x", templates, made) == "w@ has 1000 on-demand instances already"
    assert check_on_demand("t@x", templates, made) is None
