"""`svctl status -l` / `svctl list`: the table (core/statustable.py) from fixed records,
and svctl's choice of table, colors and plain sv lines (cli/svctl.py)."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from pyinit.cli import svctl
from pyinit.core import statustable
from pyinit.core.statustable import Column, duration, last_exit, render, safe, state
from pyinit.core.views import ProcessView, ServiceView, service_record

NOW = 1_000_000.0


def rec(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "web",
        "state": "run",
        "pid": 42,
        "uptime": 75.0,
        "want": "u",
        "restarts": 0,
        "last_exit_code": None,
        "last_signal": None,
        "last_exit_at": None,
        "next_start_in": None,
        "ready": True,
        "user": None,
        "failed": None,
        "error": None,
        "outcome": None,
        "waiting_for": [],
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    "seconds, text",
    [
        (-3, "0s"),
        (0, "0s"),
        (45.9, "45s"),
        (60, "1m00s"),
        (192, "3m12s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (7500, "2h05m"),
        (86399, "23h59m"),
        (86400, "1d00h"),
        (4 * 86400 + 3 * 3600 + 59, "4d03h"),
        (400 * 86400, "400d00h"),
    ],
)
def test_duration_in_human_units(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    "fields, word",
    [
        ({}, "up"),
        ({"ready": False}, "starting"),
        ({"state": "setup"}, "starting"),
        ({"paused": True}, "paused"),
        ({"got_term": True}, "stopping"),
        ({"state": "finish", "pid": 50}, "finish"),
        ({"state": "down", "pid": None, "next_start_in": 1.5}, "backoff"),
        ({"state": "down", "pid": None, "waiting_for": ["db"]}, "waiting"),
        ({"state": "down", "pid": None, "outcome": "done", "ready": True}, "done"),
        ({"state": "down", "pid": None, "want": "d"}, "down"),
        ({"state": "down", "pid": None, "failed": "exited with exit code 3"}, "failed"),
        ({"state": "down", "pid": None, "error": "run is not executable"}, "failed"),
        ({"error": "run vanished"}, "up"),  # still running: not failed yet
        ({"missing": True}, "missing"),
    ],
)
def test_state_word(fields: dict[str, Any], word: str) -> None:
    assert state(rec(**fields)) == word


def test_last_exit_code_or_signal_and_how_long_ago() -> None:
    assert last_exit(rec(), NOW) == "-"
    assert last_exit(rec(last_exit_code=3, last_exit_at=NOW - 130), NOW) == "exit 3, 2m10s ago"
    assert last_exit(rec(last_signal=9, last_exit_at=NOW - 5), NOW) == "SIGKILL, 5s ago"
    assert last_exit(rec(last_exit_code=0), NOW) == "exit 0"  # an older pyinit: no time
    assert last_exit(rec(last_exit_code=True), NOW) == "-"  # not a number


def test_a_table_from_fixed_records_plain() -> None:
    records = [
        rec(name="web", uptime=7512, restarts=3, last_signal=9, last_exit_at=NOW - 10,
            user="www-data"),
        rec(name="db", state="down", pid=None, uptime=3, ready=False, last_exit_code=3,
            last_exit_at=NOW - 4000, failed="exited with exit code 3"),
        {"name": "nosuch", "missing": True},
    ]  # fmt: skip
    assert render(records, NOW) == (
        "NAME    STATE    PID  UPTIME  RESTARTS  LAST EXIT          READY  USER\n"
        "web     up        42   2h05m         3  SIGKILL, 10s ago   yes    www-data\n"
        "db      failed     -       -         0  exit 3, 1h06m ago  -      -\n"
        "nosuch  missing    -       -         -  -                  -      -\n"
    )


def test_colors_only_the_state_and_the_header_and_keeps_the_alignment() -> None:
    records = [rec(name="a"), rec(name="b", state="down", pid=None, ready=False),
               rec(name="c", state="down", pid=None, next_start_in=2.0)]  # fmt: skip
    plain = render(records, NOW).splitlines()
    colored = render(records, NOW, color=True).splitlines()
    assert colored[0] == statustable.BOLD + plain[0] + statustable.RESET
    green, red, yellow, reset = (statustable.GREEN, statustable.RED, statustable.YELLOW,
                                 statustable.RESET)  # fmt: skip
    assert colored[1] == plain[1].replace("up ", f"{green}up{reset} ", 1)
    assert colored[2] == plain[2].replace("down ", f"{red}down{reset} ", 1)
    assert colored[3] == plain[3].replace("backoff ", f"{yellow}backoff{reset} ", 1)
    assert "\033" not in "".join(plain)


def test_hostile_names_and_users_cannot_reach_the_terminal() -> None:
    evil = "x\033]0;pwned\007\033[2J\r\n\x9b31m\u202eevil"
    out = render([rec(name=evil, user=evil * 50)], NOW)
    assert "\033" not in out and "\r" not in out and "\x9b" not in out and "\u202e" not in out
    assert out.count("\n") == 2  # a header and one row
    name_cell, user_cell = out.splitlines()[1].split("  ")[0], out.splitlines()[1].split()[-1]
    assert name_cell.startswith("x?]0;pwned??[2J??")
    assert len(user_cell) == 24 and user_cell.endswith("...")


def test_every_cell_is_bounded_by_its_column() -> None:
    out = render([rec(name="n" * 100_000, user="u" * 100_000, pid=10**30)], NOW)
    row = out.splitlines()[1]
    assert len(row) <= sum(c.width for c in statustable.COLUMNS) + 2 * len(statustable.COLUMNS)
    assert safe("abcdef", 5) == "ab..." and safe("abcde", 5) == "abcde"


def test_a_column_is_one_entry_in_the_table() -> None:
    extra = Column("NEXT RUN", 10, lambda r, now: str(r.get("next_run", "-")), right=True)
    out = render([rec(next_run="in 5m")], NOW, columns=[*statustable.COLUMNS, extra])
    header, row = out.splitlines()
    assert header.endswith("USER  NEXT RUN") and row.endswith("-        in 5m")


def test_a_real_record_fits_the_table() -> None:
    view = ServiceView("web", ProcessView(state="run", pid=7, since=10.0, uptime=5.0,
                                          restarts=2, last_exit_code=1, exited_at=8.0,
                                          ready=True), user="nobody")  # fmt: skip
    record = service_record(view, 15.0, NOW)
    assert record["last_exit_at"] == NOW - 7.0
    line = render([record], NOW).splitlines()[1]
    assert line.split() == ["web", "up", "7", "5s", "2", "exit", "1,", "7s", "ago", "yes",
                            "nobody"]  # fmt: skip


# --- svctl -----------------------------------------------------------------------------
RECORDS = [
    rec(name="web", since=NOW - 75, restarts=1, last_exit_code=2, last_exit_at=NOW - 80),
    rec(name="db", state="down", pid=None, since=NOW - 5, ready=False, want="d",
        normally_up=False),
]  # fmt: skip


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    """svctl talking to a fake pyinit that answers RECORDS, at the time NOW."""
    monkeypatch.setattr(svctl, "ask", lambda args, payload, **kw: {"services": [
        dict(r) for r in RECORDS]})  # fmt: skip
    monkeypatch.setattr(svctl.time, "time", lambda: NOW)

    def run(argv: list[str]) -> int:
        args = svctl.parse_args(["--run-dir", "/nonexistent", *argv], {})
        return svctl.HANDLERS[args.command](args)

    return run


def test_the_sv_style_default_is_unchanged(fake, capsys) -> None:
    assert fake(["status"]) == 0
    assert capsys.readouterr().out == (
        "run: web: (pid 42) 75s\n"
        "down: db: 5s\n"
    )  # fmt: skip


@pytest.mark.parametrize("argv", [["status", "-l"], ["status", "--long"], ["list"], ["s", "-l"]])
def test_status_l_and_list_print_the_table(fake, capsys, monkeypatch, argv) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert fake(argv) == 0
    out = capsys.readouterr().out
    assert out == render([dict(r) for r in RECORDS], NOW)
    assert out.splitlines()[1].split()[:2] == ["web", "up"]


@pytest.mark.parametrize("no_color, tty, colored", [
    (None, True, True), ("", True, True), ("1", True, False), ("0", True, False),
    (None, False, False),
])  # fmt: skip
def test_color_on_a_terminal_unless_no_color(fake, capsys, monkeypatch, no_color, tty, colored):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: tty, raising=False)
    monkeypatch.delenv("TERM", raising=False)
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    fake(["status", "-l"])
    assert ("\033[" in capsys.readouterr().out) is colored


def test_table_exit_code_counts_missing_and_failed(monkeypatch, capsys) -> None:
    records = [rec(), {"name": "x", "missing": True}, rec(state="down", pid=None, failed="no")]
    monkeypatch.setattr(svctl, "ask", lambda args, payload, **kw: {"services": records})
    args = svctl.parse_args(["--run-dir", "/x", "list"], {})
    assert svctl.cmd_status(args) == 2
    assert "missing" in capsys.readouterr().out


def test_l_is_refused_for_other_commands() -> None:
    with pytest.raises(svctl.Usage):
        svctl.parse_args(["--run-dir", "/x", "up", "-l", "web"], dict(os.environ))


def test_listing_names_a_few_then_counts_the_rest() -> None:
    from pyinit.core.statustable import listing

    assert listing([]) == ""
    assert listing(["web"]) == "web"
    assert listing(["a", "b"]) == "a and b"
    assert listing(["a", "b", "c"]) == "a, b and c"
    assert listing([f"s{i}" for i in range(12)]) == "s0, s1, s2, s3, s4 and 7 more"
    assert listing(["\033[2J" + "x" * 500]) == "?[2J" + "x" * 57 + "..."


def job(**fields: Any) -> dict[str, Any]:
    """A scheduled job's `job` record as core/jobs.py's Job.view() makes it (times UNIX)."""
    from datetime import timezone

    from pyinit.core import cron
    from pyinit.core.jobs import Job

    j = Job(cron.parse("every 90s"), timezone.utc)
    j.plan(NOW - 48.2)  # due at NOW + 41.8
    view = dict(j.view(), next_run_in=j.view()["next_run"] - NOW)  # as views.py adds it
    view.update(fields)
    return view


def last(result: str, start: float, end: Any = None, code: Any = None, sig: Any = None) -> Any:
    return {"start": start, "end": end, "exit_code": code, "signal": sig, "result": result}


def test_a_jobs_next_run_and_last_run_in_their_columns() -> None:
    nrun = statustable.next_run
    assert nrun(rec(), NOW) == "-"  # not a job
    assert nrun(rec(job=job()), NOW) == "in 42s"  # rounded up, as `svctl status`
    assert nrun(rec(job=job(next_run_in=7500.2)), NOW) == "in 2h05m"
    assert nrun(rec(job=job(next_run_in=-0.5)), NOW) == "in 0s"  # due: it fires now
    assert nrun(rec(job=job(paused=True, next_run=None, next_run_in=None)), NOW) == "paused"
    assert nrun(rec(job=job(next_run=None, next_run_in=None)), NOW) == "never"
    assert nrun(rec(job=job(next_run_in=float("inf"))), NOW) == "never"  # no crash
    assert nrun({"name": "x", "missing": True, "job": job()}, NOW) == "-"
    runs = [
        (None, "-"),
        (last("running", NOW - 3), "running"),
        (last("success", NOW - 200, NOW - 192, 0), "success, 3m12s ago"),
        (last("failure", NOW - 400, NOW - 300, 2), "exit 2, 5m00s ago"),
        (last("failure", NOW - 9, NOW - 5, None, 9), "SIGKILL, 5s ago"),
        (last("timeout", NOW - 70, NOW - 60, 7), "timeout, 1m00s ago"),
        (last("stopped", NOW - 70, NOW - 2, None, 15), "stopped, 2s ago"),
        (last("failure", NOW - 9, NOW - 5), "failure, 5s ago"),  # no code: still a word
    ]
    for last_run, text in runs:  # the job's last run, not its run process's last exit
        r = rec(job=job(last_run=last_run), last_exit_code=0, last_exit_at=NOW - 1)
        assert last_exit(r, NOW) == text, last_run


def test_the_next_run_column_only_when_a_job_is_listed() -> None:
    services = [
        rec(name="web", uptime=7512, user="www-data", last_signal=9, last_exit_at=NOW - 7500)
    ]
    without = render(services, NOW)
    assert "NEXT RUN" not in without  # a table without jobs keeps its width
    jobs = [
        rec(name="backup", state="down", pid=None, outcome="done",
            job=job(last_run=last("success", NOW - 200, NOW - 192, 0))),
        rec(name="report", state="down", pid=None, ready=False,
            job=job(paused=True, next_run=None, next_run_in=None,
                    last_run=last("failure", NOW - 400, NOW - 300, 2))),
        rec(name="stuck", uptime=3, job=job(next_run_in=86000, last_run=last("running", NOW))),
    ]  # fmt: skip
    assert render(services + jobs, NOW) == (
        "NAME    STATE  PID  UPTIME  RESTARTS  LAST EXIT           NEXT RUN   READY  USER\n"
        "web     up      42   2h05m         0  SIGKILL, 2h05m ago  -          yes    www-data\n"
        "backup  done     -       -         0  success, 3m12s ago  in 42s     yes    -\n"
        "report  down     -       -         0  exit 2, 5m00s ago   paused     -      -\n"
        "stuck   up      42      3s         0  running             in 23h53m  yes    -\n"
    )
    assert render(services, NOW) == without  # and rendering changed no record


def test_a_hostile_job_record_cannot_reach_the_terminal_or_widen_the_table() -> None:
    evil = "\033[2J\u202e" + "x" * 10_000
    r = rec(job=job(next_run_in=10.0**300, last_run=last(evil, NOW - 5, NOW - 1)))
    out = render([r, rec(job={"last_run": "nonsense", "next_run_in": "soon"})], NOW)
    assert "\033" not in out and "\u202e" not in out and out.count("\n") == 3
    row, other = out.splitlines()[1:]
    assert "?[2J?xxx" in row and "..." in row
    assert len(row) <= sum(c.width for c in statustable.COLUMNS) + 2 * len(statustable.COLUMNS)
    assert other.split()[5:7] == ["-", "never"]  # LAST EXIT, NEXT RUN
