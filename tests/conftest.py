"""Fixtures: `pyinit_run` starts pyinit (PID 1 or subreaper) and fails the test if
anything it started is still running afterwards; `tag` marks test processes."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import Run, _kill, can_unshare, tagged_processes  # noqa: E402

UNSHARE_REASON = can_unshare()


@pytest.fixture
def tag() -> str:
    """A unique marker to put in test processes' command lines to find leaks."""
    return f"pyinit-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def pyinit_run(tmp_path: Path, tag: str):
    runs: list[Run] = []

    def start(*args: str, pid1: bool = True, **kw) -> Run:
        if pid1 and UNSHARE_REASON:
            pytest.skip(UNSHARE_REASON)
        run = Run(args, tmp_path, pid1=pid1, **kw)
        runs.append(run)
        return run

    yield start
    leaks = []
    for run in runs:
        leaks += run.cleanup()
    strays = tagged_processes(tag)
    for p in strays:
        _kill(p.pid)
    assert not leaks, f"pyinit was still running with children {leaks}"
    assert not strays, f"test processes leaked: {[p.pid for p in strays]}"
