"""servicedir.writers and pin_to: who may change a service dir, and what its owner may
not ask of root (docs/security.md#service-dirs-another-user-can-write)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pyinit.core.model import Account
from pyinit.core.schema import ServiceConfig
from pyinit.services.servicedir import pin_to, writers

TRUSTED = (0,)


def st(uid: int, gid: int, mode: int) -> SimpleNamespace:
    return SimpleNamespace(st_uid=uid, st_gid=gid, st_mode=mode)


@pytest.mark.parametrize(
    "stats, expect",
    [
        ([st(0, 0, 0o40755), st(0, 0, 0o100755)], frozenset()),
        ([st(0, 0, 0o40775), st(0, 0, 0o100775)], frozenset()),  # group 0 is root's
        ([st(1000, 1000, 0o40755), st(0, 0, 0o100755)], frozenset({1000})),
        ([st(0, 0, 0o40755), st(1000, 1000, 0o100644)], frozenset({1000})),  # run is theirs
        ([st(1000, 1000, 0o40755), st(1001, 1001, 0o100755)], frozenset({1000, 1001})),
        ([st(0, 50, 0o40775)], None),  # a group may write it
        ([st(0, 0, 0o40757)], None),  # everybody may
    ],
)
def test_writers(stats, expect) -> None:
    assert writers(stats, TRUSTED) == expect


def ident(uid: int, gid: int) -> Account:
    return Account(uid=uid, gid=gid, groups=(gid,), name=None, home="/")


@pytest.mark.parametrize(
    "config, run_as, refused",
    [
        (ServiceConfig(), None, None),
        (ServiceConfig(env_file="vars", log_dir="logs", nice=5), None, None),
        (ServiceConfig(), ident(0, 0), "user: the service dir is uid 4242's"),
        (ServiceConfig(), ident(4242, 0), "user: the service dir is uid 4242's"),
        (ServiceConfig(env_file="/root/secret"), None, "env_file:"),
        (ServiceConfig(env_file="../x"), None, "env_file:"),
        (ServiceConfig(log_dir="/etc/cron.d"), None, "log.dir:"),
        (ServiceConfig(log_dir="a/../../x"), None, "log.dir:"),
        (ServiceConfig(nice=-1), None, "nice:"),
    ],
)
def test_pin_to_runs_as_the_owner_and_refuses_what_only_root_grants(
    config, run_as, refused
) -> None:
    got_run, got_log, error = pin_to(4242, config, run_as, None, "S/service.yaml")
    assert got_run.uid == got_log.uid == 4242
    if refused is None:
        assert error is None
    else:
        assert error is not None and error.startswith(f"S/service.yaml: {refused}"), error
