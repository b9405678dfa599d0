"""The suite's own shape: pytest imports test files by their basename (the test dirs
are not packages), so two files of one name in different dirs stop `make test` at
collection. Each name is used once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_name() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, count in names.items() if count > 1] == []
