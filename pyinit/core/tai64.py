"""TAI64N labels, as daemontools, runit and s6 write them (pure, stdlib only).

Their tools (`taia_now()`, svlogd, `tai64nlocal`) take the label of a Unix time t
to be 2^62 + 10 + t: the TAI-UTC offset of 1970, with no leap-second table.
pyinit uses the same constant for supervise/status records and for the names of
rotated log files, so `tai64nlocal` and runit's tools read them as the right time.
"""

from __future__ import annotations

OFFSET = 2**62 + 10  # 4611686018427387914: daemontools' tai64nlocal subtracts this


def label(unix_ns: int) -> tuple[int, int]:
    """(TAI64 seconds label, nanoseconds) of a Unix time in nanoseconds."""
    secs, nanos = divmod(unix_ns, 1_000_000_000)
    return OFFSET + secs, nanos


def unix_ns(secs_label: int, nanos: int) -> int:
    """The Unix time in nanoseconds of a TAI64N label."""
    return (secs_label - OFFSET) * 1_000_000_000 + nanos


def text(unix_ns_: int) -> str:
    """`@` and 24 hex digits, svlogd's name for a finished log file (without `.s`)."""
    secs, nanos = label(unix_ns_)
    return f"@{secs:016x}{nanos:08x}"
