"""Unit tests run pyinit's code in the test process: what log.once remembers is
process-wide, so each test starts with nothing said (a warning one test provokes
must not be silenced in the next)."""

from __future__ import annotations

import pytest

from pyinit.runtime import log


@pytest.fixture(autouse=True)
def _nothing_said_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "said", set())
