"""Schedules: cron expressions and intervals, and the next run after a given instant.

Pure: the caller passes the time zone (a tzinfo, e.g. zoneinfo.ZoneInfo resolved
by the shell) and the current instant (epoch seconds). See docs/service-yaml.md.

Rules:
- Five fields (minute hour day-of-month month day-of-week), each a list of `*`,
  `N`, `A-B`, with an optional `/STEP` (`*/7`, `1-30/2`, `5/15` = 5-max/15);
  month names jan-dec and day names sun-sat in any case; Sunday is 0 and 7.
- Day of month and day of week are OR-ed when both are restricted (neither
  field starts with `*`), as Vixie cron and cronie do; otherwise both must match.
- @hourly @daily (@midnight) @weekly @monthly @yearly (@annually) are their
  five-field equivalents; `every 90s` (s, m, h, d, combined: `1h30m`) is an
  interval, counted by the scheduler, not here.
- Daylight saving time, as cronie does: a job with a fixed minute and hour
  (neither field starts with `*`) whose wall time falls in a spring-forward gap
  runs once, at the first instant after the gap; on a fall-back day it runs at
  the first of the two instants only. A job whose minute or hour field starts
  with `*` runs at every instant its wall time occurs: not in the gap, and twice
  in the repeated hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Optional, Union

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MAX_TEXT = 200  # characters of an expression
MAX_EVERY = 366 * 86400.0  # the longest interval, in seconds
MIN_EVERY = 1.0
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SEARCH_YEARS = 12  # the longest wait between two runs (Feb 29 on a weekday: 11 years)
_DAYS_IN = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # the most each month has
# (name, low, high, names): the five fields
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)


class CronError(ValueError):
    """An expression that is not a schedule; the message is one line."""


@dataclass(frozen=True)
class Cron:
    """A five-field expression, as sets of the values each field matches."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday (7 is folded into 0)
    dom_star: bool = True  # the day-of-month field starts with '*'
    dow_star: bool = True
    fixed: bool = False  # neither minute nor hour starts with '*' (the DST rule)
    text: str = ""

    def day_matches(self, day: datetime) -> bool:
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow


@dataclass(frozen=True)
class Every:
    """An interval: a run every `seconds`, counted from the last one."""

    seconds: float
    text: str = ""


Schedule = Union[Cron, Every]


def parse(text: str) -> Schedule:
    """A cron expression, an @name or `every DURATION` as a Schedule; CronError if not."""
    if not isinstance(text, str):
        raise CronError("must be a cron expression, an @name or 'every DURATION'")
    if len(text) > MAX_TEXT:
        raise CronError(f"is longer than {MAX_TEXT} characters")
    words = text.split()
    if not words:
        raise CronError("is empty")
    if words[0].lower() == "every":
        if len(words) != 2:
            raise CronError("'every' takes one duration, such as 'every 90s'")
        return Every(parse_duration(words[1]), text)
    if words[0].startswith("@"):
        macro = MACROS.get(words[0].lower())
        if words[0].lower() == "@reboot":
            raise CronError("@reboot is not a schedule: use 'on_start: run'")
        if macro is None or len(words) != 1:
            raise CronError(f"unknown {_show(words[0])} (allowed: {', '.join(MACROS)})")
        return _fields(macro.split(), text)
    if len(words) != 5:
        raise CronError(f"needs 5 fields (minute hour day month weekday), not {len(words)}")
    return _fields(words, text)


def parse_duration(text: object) -> float:
    """`90s`, `5m`, `1h30m`, `2d`, or a number of seconds; CronError if not."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise CronError("must be a duration such as 90s, 5m or 1h30m")
    total = float(text) if isinstance(text, (int, float)) else _duration_text(text.strip().lower())
    if not MIN_EVERY <= total <= MAX_EVERY:
        raise CronError(
            f"must be from {MIN_EVERY:g}s to {MAX_EVERY / 86400:g}d, not {_show(str(text))}"
        )
    return total


def _duration_text(text: str) -> float:
    bad = CronError(f"{_show(text)} is not a duration such as 90s, 5m or 1h30m")
    if text.isdigit() and len(text) <= 12:
        return float(text)
    total, number, seen = 0.0, "", ""
    for char in text[:40]:
        if char.isdigit() and char.isascii():
            number += char
        elif char in UNITS and number and char not in seen and len(number) <= 12:
            total += int(number) * UNITS[char]
            number, seen = "", seen + char
        else:
            raise bad
    if number or not seen or len(text) > 40:
        raise bad
    return total


def _fields(words: list[str], text: str) -> Cron:
    sets = [_field(w, *spec) for w, spec in zip(words, _FIELDS)]
    weekdays = frozenset(d % 7 for d in sets[4])
    cron = Cron(
        minutes=sets[0],
        hours=sets[1],
        days=sets[2],
        months=sets[3],
        weekdays=weekdays,
        dom_star=words[2].startswith("*"),
        dow_star=words[4].startswith("*"),
        fixed=not (words[0].startswith("*") or words[1].startswith("*")),
        text=text,
    )
    if cron.dow_star and not any(d <= _DAYS_IN[m - 1] for m in cron.months for d in cron.days):
        raise CronError("never runs: no month has that day")
    return cron


def _field(word: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    values: set[int] = set()
    for part in word.split(","):
        try:
            values.update(_part(part, low, high, names))
        except CronError as exc:
            raise CronError(f"{name} field {_show(word)}: {exc}") from None
    return frozenset(values)


def _part(part: str, low: int, high: int, names: tuple[str, ...]) -> range:
    body, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not (step_text.isdigit() and step_text.isascii() and len(step_text) <= 3):
            raise CronError(f"step {_show(step_text)} is not a number")
        step = int(step_text)
        if not 1 <= step <= high - low + 1:
            raise CronError(f"step must be from 1 to {high - low + 1}")
    if body == "*":
        return range(low, high + 1, step)
    first, dash, last = body.partition("-")
    start = _value(first, low, high, names)
    end = _value(last, low, high, names) if dash else (high if slash else start)
    if end < start:
        raise CronError(f"range {_show(body)} ends before it starts")
    return range(start, end + 1, step)


def _value(text: str, low: int, high: int, names: tuple[str, ...]) -> int:
    lowered = text.lower()
    if names and lowered in names:
        return names.index(lowered) + (1 if names is MONTHS else 0)
    if not (text.isdigit() and text.isascii() and len(text) <= 3):
        raise CronError(f"{_show(text)} is not a number{' or a name' if names else ''}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{value} is not from {low} to {high}")
    return value


def _show(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


# --- the next run ------------------------------------------------------------------------
def next_run(cron: Cron, tz: tzinfo, now: float) -> Optional[float]:
    """The first instant (epoch seconds) after now at which cron runs in tz (the DST
    rules above); None only if there is none within SEARCH_YEARS."""
    wall = _wall(now, tz)
    if not _steady(tz, now, now):
        wall -= timedelta(hours=3)  # a fall-back near: it repeats wall times already passed
    best: Optional[float] = None
    best_wall: Optional[datetime] = None
    for candidate in _candidates(cron, wall.replace(second=0, microsecond=0)):
        if best_wall is not None and candidate > best_wall + timedelta(hours=3):
            break
        for instant in _instants(cron, candidate, tz):
            if instant > now and (best is None or instant < best):
                best, best_wall = instant, candidate
        if best is not None and best_wall == candidate and _steady(tz, now, best):
            break  # no offset change near: nothing later in wall time runs sooner
    return best


def _wall(instant: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(instant, tz).replace(tzinfo=None, fold=0)


def _steady(tz: tzinfo, now: float, best: float) -> bool:
    """The UTC offset is the same from 4 hours before now to 4 hours after best."""
    before = datetime.fromtimestamp(now - 4 * 3600, tz).utcoffset()
    return before == datetime.fromtimestamp(best + 4 * 3600, tz).utcoffset()


def _instants(cron: Cron, wall: datetime, tz: tzinfo) -> list[float]:
    """The instants at which the wall time `wall` runs (the DST rules)."""
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    t0, t1 = first.timestamp(), second.timestamp()
    if t0 == t1:
        return [t0]
    if t0 < t1:  # the repeated hour: the first only, unless the job is a wildcard one
        return [t0] if cron.fixed else [t0, t1]
    # a gap (fold=0 gives the later instant): fixed jobs run when it ends
    return [_gap_end(tz, t1, t0)] if cron.fixed else []


def _gap_end(tz: tzinfo, low: float, high: float) -> float:
    """The first whole second in (low, high] on the offset in force at high."""
    after = datetime.fromtimestamp(high, tz).utcoffset()
    lo, hi = int(low), int(high)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return float(hi)


def _candidates(cron: Cron, start: datetime):  # type: ignore[no-untyped-def]
    """The wall times (naive, whole minutes) from start on that cron matches, in order."""
    t = start
    limit = datetime(min(start.year + SEARCH_YEARS, 9999), 1, 1)
    while t < limit:
        if t.month not in cron.months:
            t = _next_month(t)
        elif not cron.day_matches(t):
            t = datetime(t.year, t.month, t.day) + timedelta(days=1)
        elif t.hour not in cron.hours:
            t = t.replace(minute=0) + timedelta(hours=1)
        elif t.minute not in cron.minutes:
            t += timedelta(minutes=1)
        else:
            yield t
            t += timedelta(minutes=1)


def _next_month(t: datetime) -> datetime:
    if t.month == 12:
        return datetime(t.year + 1, 1, 1)
    return datetime(t.year, t.month + 1, 1)


def utc() -> tzinfo:
    """UTC, for callers with no zone."""
    return timezone.utc
