"""`svctl status -l`: status records (core/views.py) as a table people can read.

Pure: records and the time in, text out. The columns are one table (COLUMNS): a
new column is one `Column(...)` added there, with its header, its widest width
and the function that reads its cell from a record; a column with `only_if` is
shown only when some record needs it (NEXT RUN: when a scheduled job is listed,
so a table without jobs keeps its width). Every text that came from a
service dir (a name, a user, ...) is hostile: control characters (and Unicode's
bidi overrides) become '?', and every cell is cut to its column's width, so a
record can neither move the terminal's cursor nor make a line unbounded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

Record = dict[str, Any]

GREEN, RED, YELLOW, BOLD, RESET = "\033[32m", "\033[31m", "\033[33m", "\033[1m", "\033[0m"
STATE_COLORS = {
    "up": GREEN,
    "done": GREEN,
    "down": RED,
    "failed": RED,
    "missing": RED,
    "starting": YELLOW,
    "backoff": YELLOW,
    "waiting": YELLOW,
    "stopping": YELLOW,
    "finish": YELLOW,
    "paused": YELLOW,
}
NONE = "-"
GAP = "  "
# C0 and C1 controls, DEL, and the bidi controls that reorder what a terminal shows
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(value: Any, width: int) -> str:
    """value as one line of at most width characters with no control character."""
    text = value if isinstance(value, str) else str(value)
    text = _UNSAFE.sub("?", text[: width + 1])
    return text if len(text) <= width else text[: max(width - 3, 0)] + "..."


def listing(names: list[str], shown: int = 5, width: int = 64) -> str:
    """`a, b and c`, or `a, b, c, d, e and 7 more`: at most `shown` names, each safe()."""
    first = [safe(n, width) for n in names[:shown]]
    rest = len(names) - len(first)
    if rest > 0:
        return f"{', '.join(first)} and {rest} more"
    return " and ".join([", ".join(first[:-1]), first[-1]]) if len(first) > 1 else "".join(first)


def duration(seconds: float) -> str:
    """45s, 3m12s, 2h05m, 4d03h: the two largest units, the second zero-padded."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def state(rec: Record) -> str:
    """What the service is doing, in one word (the STATE column; docs/svctl.md)."""
    if rec.get("missing"):
        return "missing"
    pid, st = rec.get("pid"), rec.get("state", "down")
    if (rec.get("failed") or rec.get("error")) and not pid:
        return "failed"
    if st == "down":
        if rec.get("next_start_in") is not None:
            return "backoff"
        if rec.get("waiting_for"):
            return "waiting"
        return "done" if rec.get("outcome") == "done" else "down"
    if st == "finish":
        return "finish"
    if rec.get("got_term"):
        return "stopping"
    if st == "setup":
        return "starting"
    if rec.get("paused"):
        return "paused"
    return "up" if rec.get("ready", True) else "starting"


def _num(value: Any) -> bool:
    """A finite number (not a bool)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and math.isfinite(value)


def _job(rec: Record) -> Optional[Record]:
    job = rec.get("job")
    return job if isinstance(job, dict) and not rec.get("missing") else None


def last_run(job: Record, now: float) -> str:
    """A scheduled job's last run: `running`, `success, 3m12s ago`, `exit 2, 5s ago`,
    `SIGKILL, 5s ago`, `timeout, 1m00s ago`, `stopped, 2s ago`; '-' before the first."""
    last = job.get("last_run")
    if not isinstance(last, dict):
        return NONE
    result = last.get("result")
    if result == "running" or last.get("end") is None:
        return "running"
    if result == "failure":
        what = last_exit({"last_exit_code": last.get("exit_code"),
                          "last_signal": last.get("signal")}, now)  # fmt: skip
        what = "failure" if what == NONE else what
    else:
        what = str(result)
    end = last.get("end")
    return f"{what}, {duration(now - end)} ago" if _num(end) else what


def next_run(rec: Record, now: float) -> str:
    """A scheduled job's next run: `in 42s` (rounded up, as `svctl status`), `paused`,
    `never` (its expression has no further time); '-' for a service that is no job."""
    job = _job(rec)
    if job is None:
        return NONE
    if job.get("paused"):
        return "paused"
    due = job.get("next_run_in")
    if not _num(due):
        return "never"
    return f"in {duration(math.ceil(due))}"


def last_exit(rec: Record, now: float) -> str:
    """`exit 3, 2m ago`, `SIGKILL, 5s ago`, or '-' when it never ended; a scheduled
    job's last run instead (last_run())."""
    job = _job(rec)
    if job is not None:
        return last_run(job, now)
    code, sig = rec.get("last_exit_code"), rec.get("last_signal")
    if isinstance(sig, int) and not isinstance(sig, bool):
        from pyinit.core.signames import name

        what = name(sig)
    elif isinstance(code, int) and not isinstance(code, bool):
        what = f"exit {code}"
    else:
        return NONE
    at = rec.get("last_exit_at")
    if isinstance(at, (int, float)) and not isinstance(at, bool):
        return f"{what}, {duration(now - at)} ago"
    return what


def _running(rec: Record) -> bool:
    return bool(rec.get("pid")) and not rec.get("missing")


def _uptime(rec: Record, now: float) -> str:
    uptime = rec.get("uptime")
    if not _running(rec) or not isinstance(uptime, (int, float)):
        return NONE
    return duration(uptime)


def _ready(rec: Record, now: float) -> str:
    if rec.get("missing") or "ready" not in rec:
        return NONE
    if rec.get("ready"):
        return "yes"
    return "no" if _running(rec) else NONE


def _number(key: str) -> Callable[[Record, float], str]:
    def cell(rec: Record, now: float) -> str:
        value = rec.get(key)
        ok = isinstance(value, int) and not isinstance(value, bool)
        return str(value) if ok and not rec.get("missing") else NONE

    return cell


@dataclass(frozen=True)
class Column:
    header: str
    width: int  # at most this many characters (cut with '...')
    cell: Callable[[Record, float], str]  # a record and the time (UNIX) -> its text
    right: bool = False  # right-aligned (numbers)
    color: Optional[Callable[[str], Optional[str]]] = None  # the cell's text -> its color
    only_if: Optional[Callable[[Record], bool]] = None  # shown when a record is such


COLUMNS: list[Column] = [
    Column("NAME", 40, lambda rec, now: str(rec.get("name", "?"))),
    Column("STATE", 8, lambda rec, now: state(rec), color=STATE_COLORS.get),
    Column("PID", 10, _number("pid"), right=True),
    Column("UPTIME", 8, _uptime, right=True),
    Column("RESTARTS", 8, _number("restarts"), right=True),
    Column("LAST EXIT", 28, last_exit),
    Column("NEXT RUN", 10, next_run, only_if=lambda rec: _job(rec) is not None),
    Column("READY", 5, _ready),
    Column("USER", 24, lambda rec, now: rec.get("user") or NONE),
]


def render(
    records: list[Record], now: float, color: bool = False, columns: Optional[list[Column]] = None
) -> str:
    """The table (a header line, one line per record), each line ending in '\\n'; with
    color, ANSI colors for the header and the STATE cells."""
    cols = COLUMNS if columns is None else columns
    cols = [c for c in cols if c.only_if is None or any(c.only_if(r) for r in records)]
    rows = [[safe(col.cell(rec, now), col.width) for col in cols] for rec in records]
    widths = [max([len(col.header)] + [len(row[i]) for row in rows]) for i, col in enumerate(cols)]
    out = [_line([col.header for col in cols], cols, widths, BOLD if color else None)]
    for row in rows:
        out.append(_line(row, cols, widths, None, color))
    return "".join(out)


def _line(
    cells: list[str], cols: list[Column], widths: list[int], whole: Optional[str], color=False
) -> str:
    parts = []
    for i, (text, col) in enumerate(zip(cells, cols)):
        last = i == len(cols) - 1
        padded = text.rjust(widths[i]) if col.right else (text if last else text.ljust(widths[i]))
        hue = col.color(text) if color and col.color is not None else None
        if hue:
            pad = " " * (len(padded) - len(text))
            padded = f"{pad}{hue}{text}{RESET}" if col.right else f"{hue}{text}{RESET}{pad}"
        parts.append(padded)
    line = GAP.join(parts).rstrip(" ")
    return f"{whole}{line}{RESET}\n" if whole else line + "\n"
