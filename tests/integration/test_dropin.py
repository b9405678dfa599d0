"""Drop-in fidelity (issue 18, items 6-9) with pyinit as a real PID 1: `svctl check` in a
crash loop, sv's command syntax side by side with Debian's runit, and PID 1's cwd."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import test_services
from test_services import service

box = test_services.box  # the fixture: pyinit as PID 1 and the ways to talk to it

# exits 1 a moment after it starts: each run is a crash (less than a second up), and a
# tiny backoff keeps it in `run` most of the time, where check used to catch it
CRASH = "echo $$ > ready\nsleep 0.3\nexit 1\n"
QUICK_BACKOFF = "backoff:\n  initial: 0.1\n  factor: 1\n  max: 0.1\n"


TIMEOUT_LINE = re.compile(r"timeout: (run: broken: \(pid \d+\) |(down|finish): broken: )\d+s.*")


@pytest.mark.pid1
def test_check_never_says_ok_for_a_crash_loop(box, tmp_path: Path, tag: str) -> None:
    broken = service(tmp_path, tag, "broken", CRASH)
    (broken / "service.yaml").write_text(QUICK_BACKOFF)
    service(tmp_path, tag, "steady")
    b = box()
    b.wait_running("steady")
    b.wait("broken", lambda r: r["restarts"] >= 2, 10, "broken to crash twice")
    caught_up = 0
    for _ in range(4):
        for args in (["-w", "0.7", "check", "broken"], ["-w", "0.7", "check"]):
            r = b.svctl(*args)
            assert r.returncode == 1, f"svctl {args}: rc {r.returncode}\n{r.stdout}{r.stderr}"
            lines = r.stdout.splitlines()
            assert [x for x in lines if "broken" in x] == [lines[0]], r.stdout
            assert TIMEOUT_LINE.fullmatch(lines[0]), r.stdout
            assert all(x.startswith("ok: run: steady: ") for x in lines[1:]), r.stdout
            caught_up += lines[0].startswith("timeout: run: ")
    # with 0.3 s up and 0.1 s down, check ends while run is up most of the time: that
    # is the moment main's check called it healthy
    assert caught_up, "check never ended while broken's run was up"
    # check can pass: a healthy service, and a restarted one once it has settled
    out = b.ok("check", "steady")
    assert re.fullmatch(r"ok: run: steady: \(pid \d+\) \d+s", out.strip()), out
    b.ok("-w", "5", "restart", "steady")
    assert b.rec("steady")["restarts"] == 1
    out = b.ok("-w", "5", "check", "steady")
    assert re.fullmatch(r"ok: run: steady: \(pid \d+\) [1-9]\d*s", out.strip()), out
    b.stop()
