"""Which directory changes make pyinit rescan, and decoding inotify records."""

from __future__ import annotations

import os
import struct

import pytest

from pyinit.linux.inotify import IN_CREATE, Inotify, parse
from pyinit.services.servicedir import change_matters


@pytest.mark.parametrize("kind, name, matters", [
    ("base", "web", True), ("base", "new service", True), ("base", ".hidden", False),
    ("service", "run", True), ("service", "finish", True), ("service", "down", True),
    ("service", "check", True), ("service", "log", True),
    ("service", "web.pid", False), ("service", "state.json", False), ("service", "ready", False),
    ("log", "run", True), ("log", "current", False), ("log", "lock", False),
])
def test_change_matters(kind, name, matters) -> None:
    assert change_matters(kind, name) is matters


def test_parse_records_with_padding() -> None:
    def record(wd: int, mask: int, name: bytes) -> bytes:
        padded = name + b"\0" * (16 - len(name)) if name else b""
        return struct.pack("iIII", wd, mask, 0, len(padded)) + padded

    data = record(1, IN_CREATE, b"run") + record(2, 0x8000, b"") + record(3, IN_CREATE, b"x\xff")
    events = parse(data)
    assert [(e.wd, e.mask, e.name) for e in events] == [
        (1, IN_CREATE, "run"), (2, 0x8000, ""), (3, IN_CREATE, os.fsdecode(b"x\xff"))]


def test_real_inotify_reports_names(tmp_path) -> None:
    ino = Inotify()
    try:
        wd = ino.watch(str(tmp_path))
        assert wd >= 0
        assert ino.watch(str(tmp_path / "missing")) == -1
        (tmp_path / "run").write_text("x")
        events = ino.read()
        assert any(e.wd == wd and e.name == "run" and e.mask & IN_CREATE for e in events)
        assert ino.read() == []  # drained, and never blocks
    finally:
        os.close(ino.fd)
