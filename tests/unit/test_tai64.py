"""pyinit.core.tai64: one TAI64N convention (svlogd's and daemontools'), for supervise/status
and rotated log names alike."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from pyinit.core import records, tai64
from pyinit.output import logdir as filelog


def test_offset_is_daemontools_tai64nlocal_constant() -> None:
    assert tai64.OFFSET == 4611686018427387914  # tai64nlocal.c: secs -= 4611686018427387914ULL


def test_known_labels() -> None:
    assert tai64.text(0) == "@400000000000000a00000000"  # the Unix epoch
    # the label on djb's tai64nlocal page, read as tai64nlocal reads it
    assert tai64.text(935467445_787492500) == "@4000000037c219bf2ef02e94"
    assert tai64.unix_ns(0x4000000037C219BF, 0x2EF02E94) == 935467445_787492500
    assert tai64.label(1_700_000_000_000_000_001) == (tai64.OFFSET + 1_700_000_000, 1)


def test_log_names_and_status_records_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file rotated at t and a status record written at t carry the same label."""
    t = 1_700_000_000
    monkeypatch.setattr(filelog.time, "time_ns", lambda: t * 10**9)
    flog = filelog.FileLog(str(tmp_path), "web")
    try:
        flog.write(b"line\n")
        flog.rotate()
    finally:
        flog.close()
    (name,) = [n for n in os.listdir(tmp_path) if n != "current"]
    record = records.encode(records.Status(when_ns=t * 10**9))
    assert int(name[1:17], 16) == int.from_bytes(record[:8], "big") == tai64.OFFSET + t


@pytest.mark.skipif(shutil.which("svlogd") is None, reason="runit's svlogd is not installed")
def test_labels_agree_with_runits_svlogd(tmp_path: Path) -> None:
    """svlogd -t stamps a line with runit's own TAI64N label of when it read it: ours,
    for the moments before and after, enclose it (a leap-second table would put ours
    27 s later; another epoch, anywhere)."""
    before = time.time_ns()
    subprocess.run(["svlogd", "-t", str(tmp_path)], input=b"line\n", timeout=30, check=True)
    after = time.time_ns()
    stamp = (tmp_path / "current").read_text().split(" ", 1)[0].lower()
    assert len(stamp) == 25 and stamp.startswith("@")
    assert tai64.text(before) <= stamp <= tai64.text(after)
