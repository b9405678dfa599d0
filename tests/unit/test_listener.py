"""The admission decision shared by the control socket and the health endpoint: a
table of open connections, a newcomer and the caps, and what admit() decides."""

from __future__ import annotations

from typing import NamedTuple, Optional

import pytest

from pyinit.control.listener import ACCEPT, EVICT, FULL, PER_KEY, SHARED, Caller, Limits, admit


class Seat(NamedTuple):
    caller: Caller
    done: bool = False


def seats(spec: str) -> list[Seat]:
    """One seat per word of spec, oldest first: the key, R for a reserved caller
    (key "root"), a trailing * for one already done ("u u R v*")."""
    out = []
    for serial, word in enumerate(spec.split(), 1):
        key = word.rstrip("*")
        out.append(
            Seat(Caller("root" if key == "R" else key, key == "R", serial), word.endswith("*"))
        )
    return out


CONTROL = Limits(total=8, per_key=3, reserve=2)  # as control's, scaled down
HEALTH = Limits(total=4, per_key=2, newcomers_evict=True, busiest_first=True)
ROOT = Caller("root", reserved=True)

CASES = [
    # limits, open seats, newcomer, verdict, victim (its index in the seats)
    (CONTROL, "", Caller("u"), ACCEPT, None),
    (CONTROL, "u u", Caller("u"), ACCEPT, None),
    (CONTROL, "u u u", Caller("u"), PER_KEY, None),
    (CONTROL, "u u u", ROOT, ACCEPT, None),  # the per-key cap is for unreserved callers
    (CONTROL, "u u v v w w", Caller("x"), SHARED, None),  # the shared part is full
    (CONTROL, "u u v v w w R", ROOT, ACCEPT, None),  # the reserve
    (CONTROL, "R u u v v w w R", ROOT, EVICT, 1),  # the oldest unreserved, not the busiest
    (CONTROL, "R w u u u v v R", ROOT, EVICT, 1),
    (CONTROL, "R R R R R R R R", ROOT, FULL, None),  # refused only when all are reserved
    (CONTROL, "R R R R R R R u", ROOT, EVICT, 7),
    (CONTROL, "R R R R R R R u", Caller("v"), FULL, None),  # never past the total
    (CONTROL, "R R R R R R R R", Caller("v"), FULL, None),
    (HEALTH, "", Caller("a"), ACCEPT, None),
    (HEALTH, "a a", Caller("a"), PER_KEY, None),
    (HEALTH, "a a b c", Caller("a"), PER_KEY, None),  # capped before making room
    (HEALTH, "a b b c", Caller("d"), EVICT, 1),  # the oldest of the busiest address
    (HEALTH, "a b b c*", Caller("d"), EVICT, 3),  # one already answered goes first
    (HEALTH, "a* b b* c*", Caller("d"), EVICT, 2),  # of those, the busiest's oldest
    (HEALTH, "a b c d", Caller("e"), EVICT, 0),  # all alike: the oldest
]


@pytest.mark.parametrize(("limits", "spec", "new", "kind", "victim"), CASES)
def test_admit(limits: Limits, spec: str, new: Caller, kind: str, victim: Optional[int]) -> None:
    table = seats(spec)
    verdict = admit(limits, table, new)
    assert verdict.kind == kind
    assert verdict.victim is (None if victim is None else table[victim])
