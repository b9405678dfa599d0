"""The service model: what reading a service dir yields, and the account its
processes run as (pure records, stdlib only).

services/servicedir.py reads the directories and looks the users up
(linux/users.py) to fill these in; core/instances.py and the services layer
decide on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # not at run time: setuser imports Account, and the schema is big
    from pyinit.core.schema import ServiceConfig


@dataclass(frozen=True)
class Account:
    """A user looked up in the passwd and group databases: who a process runs as.
    (service.yaml's `user:`/`group:` as written are a schema.UserSpec.)"""

    uid: int
    gid: int
    groups: tuple[int, ...]
    name: Optional[str]  # None for a numeric uid with no passwd entry
    home: str


def _no_config() -> ServiceConfig:
    """The defaults: a service.yaml that sets nothing."""
    from pyinit.core.schema import ServiceConfig

    return ServiceConfig()


@dataclass(frozen=True)
class ServiceDir:
    """One service directory as read: its files, its service.yaml, its accounts."""

    name: str
    path: str
    normally_up: bool
    has_log: bool
    error: Optional[str] = None  # why it cannot be started, shown by svctl status
    run_as: Optional[Account] = None  # run, finish and check drop to this user
    log_as: Optional[Account] = None  # the logger drops to this one
    user: Optional[str] = None  # run_as as written (USER[:GROUP]), for svctl
    config: ServiceConfig = field(default_factory=_no_config)
    instance: Optional[str] = None  # NAME of an instance `T@NAME` ($1, PYINIT_INSTANCE)
    has_setup: bool = False  # an executable `setup` runs before each start of run
