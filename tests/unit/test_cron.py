"""core/cron.py: the parser, a table of next runs (DST, month ends, leap days, steps,
the day-of-month/day-of-week OR rule), and property tests against a brute-force
reference that walks the instants minute by minute."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyinit.core import cron

NY = ZoneInfo("America/New_York")
ZONES = [
    ZoneInfo(z)
    for z in (
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Asia/Kolkata",
        "UTC",
    )
]


def at(text: str, tz=NY) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def local(instant: float, tz=NY) -> str:
    dt = datetime.fromtimestamp(instant, tz)
    return dt.strftime("%Y-%m-%d %H:%M") + dt.strftime("%z")


TABLE = [
    # DST, New York: 2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00
    ("30 2 * * *", "2026-03-08T00:00", "2026-03-08 03:00-0400"),  # the gap: once, at its end
    ("30 2 * * *", "2026-03-08T03:00", "2026-03-09 02:30-0400"),  # and not again
    ("0,30 2 * * *", "2026-03-08T01:59", "2026-03-08 03:00-0400"),
    ("30 * * * *", "2026-03-08T01:45", "2026-03-08 03:30-0400"),  # wildcard: no 02:30
    ("*/30 2 * * *", "2026-03-08T01:00", "2026-03-09 02:00-0400"),  # `*` minute: skipped
    ("30 1 * * *", "2026-11-01T00:00", "2026-11-01 01:30-0400"),  # fall-back: the first
    ("30 1 * * *", "2026-11-01T01:31", "2026-11-02 01:30-0500"),  # not twice
    ("30 * * * *", "2026-11-01T01:31", "2026-11-01 01:30-0500"),  # wildcard: both
    # month ends, leap days
    ("0 0 31 * *", "2026-04-01T00:00", "2026-05-31 00:00-0400"),
    ("0 0 29 2 *", "2026-03-01T00:00", "2028-02-29 00:00-0500"),
    ("0 0 29 2 1", "2026-03-01T00:00", "2027-02-01 00:00-0500"),  # OR a Monday in February
    # steps
    ("*/7 * * * *", "2026-01-01T00:55", "2026-01-01 00:56-0500"),  # 0,7,..,56 then 0
    ("*/7 * * * *", "2026-01-01T00:56", "2026-01-01 01:00-0500"),
    ("10-40/15 * * * *", "2026-01-01T00:26", "2026-01-01 00:40-0500"),
    ("5/20 * * * *", "2026-01-01T00:26", "2026-01-01 00:45-0500"),
    # the day-of-month/day-of-week rule
    ("0 0 13 * 5", "2026-03-01T00:00", "2026-03-06 00:00-0500"),  # a Friday before the 13th
    ("0 0 13 * *", "2026-03-01T00:00", "2026-03-13 00:00-0400"),
    ("0 0 */10 * 5", "2026-03-01T00:00", "2026-05-01 00:00-0400"),  # `*` first: AND
    ("0 0 * * 7", "2026-03-02T00:00", "2026-03-08 00:00-0500"),  # Sunday as 7
    ("0 0 * * sun", "2026-03-02T00:00", "2026-03-08 00:00-0500"),
    ("@hourly", "2026-01-01T00:59", "2026-01-01 01:00-0500"),
    ("@daily", "2026-01-01T00:00", "2026-01-02 00:00-0500"),
    ("@weekly", "2026-03-02T00:00", "2026-03-08 00:00-0500"),
    ("@monthly", "2026-01-15T00:00", "2026-02-01 00:00-0500"),
    ("@YEARLY", "2026-01-15T00:00", "2027-01-01 00:00-0500"),
]


@pytest.mark.parametrize("expr, now, expected", TABLE)
def test_next_run_table(expr: str, now: str, expected: str) -> None:
    assert local(cron.next_run(cron.parse(expr), NY, at(now))) == expected


def test_day_of_week_or_rule_weekday_range() -> None:
    # `0 0 1 jan-mar mon-fri`: the 1st OR a weekday, January to March
    c = cron.parse("0 0 1 jan-mar mon-fri")
    assert local(cron.next_run(c, NY, at("2026-01-02T00:00"))) == "2026-01-05 00:00-0500"
    assert local(cron.next_run(c, NY, at("2026-03-31T00:00"))) == "2027-01-01 00:00-0500"


@pytest.mark.parametrize(
    "expr, message",
    [
        ("0 0 30 2 *", "never runs"),
        ("0 0 31 4,6,9,11 *", "never runs"),
        ("61 * * * *", "minute field '61': 61 is not from 0 to 59"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day of month field"),
        ("* * * 13 *", "month field"),
        ("* * * * 8", "day of week field"),
        ("* * * foo *", "not a number or a name"),
        ("* * *", "needs 5 fields"),
        ("", "is empty"),
        ("@reboot", "on_start: run"),
        ("@often", "unknown '@often'"),
        ("5-1 * * * *", "ends before it starts"),
        ("*/0 * * * *", "step must be from 1 to 60"),
        ("*/x * * * *", "is not a number"),
        ("every 0s", "from 1s"),
        ("every 400d", "from 1s"),
        ("every 1x", "not a duration"),
        ("every 5m 3s", "one duration"),
        ("1 " * 200, "longer than"),
    ],
)
def test_bad_expressions_are_one_line(expr: str, message: str) -> None:
    with pytest.raises(cron.CronError) as info:
        cron.parse(expr)
    text = str(info.value)
    assert message in text and "\n" not in text and len(text) < 200


def test_every_durations() -> None:
    assert cron.parse("every 90s") == cron.Every(90.0, "every 90s")
    assert cron.parse("every 1h30m").seconds == 5400
    assert cron.parse("EVERY 2d").seconds == 2 * 86400
    assert cron.parse_duration(90) == 90.0
    assert cron.parse_duration("45") == 45.0
    with pytest.raises(cron.CronError):
        cron.parse_duration("1m1m")
    with pytest.raises(cron.CronError):
        cron.parse_duration(True)


# --- the reference: walk instants minute by minute -------------------------------------------
def matches(c: cron.Cron, wall: datetime) -> bool:
    return (
        wall.minute in c.minutes
        and wall.hour in c.hours
        and wall.month in c.months
        and c.day_matches(wall)
    )


def runs_at(c: cron.Cron, m: int, tz) -> bool:
    here = datetime.fromtimestamp(m, tz)
    wall = here.replace(tzinfo=None)
    ambiguous = here.replace(fold=1 - here.fold).utcoffset() != here.utcoffset()
    if matches(c, wall) and (not c.fixed or not ambiguous or here.fold == 0):
        return True
    if c.fixed:  # the first instant after a gap runs what the gap skipped
        before = datetime.fromtimestamp(m - 60, tz).replace(tzinfo=None)
        skipped = before + timedelta(minutes=1)
        while skipped < wall:
            if matches(c, skipped):
                return True
            skipped += timedelta(minutes=1)
    return False


def reference(c: cron.Cron, tz, now: float, minutes: int):
    m = (int(now) // 60 + 1) * 60
    for _ in range(minutes):
        if runs_at(c, m, tz):
            return m
        m += 60
    return None


def field(low: int, high: int, star_weight: int = 1):
    value = st.integers(low, high)
    single = value.map(str)
    ranged = st.tuples(value, value).map(lambda p: f"{min(p)}-{max(p)}")
    stepped = st.integers(1, high - low + 1).map(lambda s: f"*/{s}")
    listed = st.lists(value, min_size=1, max_size=4).map(lambda v: ",".join(map(str, v)))
    return st.one_of(*([st.just("*")] * star_weight), single, ranged, stepped, listed)


expressions = st.tuples(
    field(0, 59), field(0, 23), field(1, 28, 4), field(1, 12, 6), field(0, 7, 4)
).map(" ".join)


def transitions_of(tz) -> list[float]:
    """DST transitions (or any offset change) of tz in 2025-2027, to start near."""
    found = []
    t = at("2025-01-01T00:00", tz)
    end = at("2028-01-01T00:00", tz)
    last = datetime.fromtimestamp(t, tz).utcoffset()
    while t < end:
        t += 3600
        off = datetime.fromtimestamp(t, tz).utcoffset()
        if off != last:
            found.append(t)
            last = off
    return found or [at("2026-06-01T00:00", tz)]


STARTS = {str(tz): transitions_of(tz) for tz in ZONES}
WINDOW = 3 * 24 * 60  # minutes the reference walks


@settings(max_examples=300, deadline=None)
@given(
    expr=expressions,
    zone=st.sampled_from(ZONES),
    index=st.integers(0, 20),
    offset=st.integers(-2 * 86400, 86400),
)
def test_next_run_matches_reference(expr: str, zone, index: int, offset: int) -> None:
    try:
        c = cron.parse(expr)
    except cron.CronError:
        return
    starts = STARTS[str(zone)]
    now = starts[index % len(starts)] + offset
    want = reference(c, zone, now, WINDOW)
    got = cron.next_run(c, zone, now)
    if want is None:
        assert got is None or got > now + (WINDOW - 1) * 60
    else:
        assert got == want, (expr, str(zone), local(now, zone))


@settings(max_examples=100, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    index=st.integers(0, 20),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    offset=st.integers(-86400, 86400),
)
def test_fixed_jobs_run_once_a_day_across_dst(zone, index, minute, hour, offset) -> None:
    """A fixed-time daily job runs exactly once on every calendar day, DST or not."""
    c = cron.parse(f"{minute} {hour} * * *")
    starts = STARTS[str(zone)]
    now = starts[index % len(starts)] + offset - 86400
    runs = []
    t = now
    for _ in range(4):
        t = cron.next_run(c, zone, t)
        runs.append(datetime.fromtimestamp(t, zone).date())
    assert len(set(runs)) == 4
    assert all((b - a).days == 1 for a, b in zip(runs, runs[1:]))
