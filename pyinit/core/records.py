"""runit's supervise/ records, as runsv.c writes them (pure, stdlib only).

`status` is daemontools' 20-byte record (see encode()), `stat` a line such as
`run, paused, want down`, `pid` the pid and a newline. services/supervise.py
writes them into each service's supervise/ dir; runit's `sv` and `runsvstat`
read them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyinit.core import tai64
from pyinit.core.machine import FINISH, RUN, SETUP, Machine

STATE_CODES = {"down": 0, RUN: 1, FINISH: 2}
CODE_STATES = {code: state for state, code in STATE_CODES.items()}
RECORD_SIZE = 20


@dataclass(frozen=True)
class Status:
    """What runsv's update_status() records for one process slot."""

    when_ns: int  # wall clock (unix ns) of the last state change
    pid: int = 0  # 0: none
    state: str = "down"  # down, run, finish
    want: str = "u"  # 'u' or 'd'
    paused: bool = False
    got_term: bool = False
    exiting: bool = False  # want exit (`x`): 'd' in the record, "want exit" in stat


def encode(st: Status) -> bytes:
    """The 20-byte record: TAI64N (8-byte label + 4-byte ns, big-endian), pid
    (4 bytes, little-endian), paused, want ('u'/'d'), got TERM, state (0/1/2)."""
    return struct.pack(">QL", *tai64.label(st.when_ns)) + struct.pack(
        "<L4B",
        st.pid & 0xFFFFFFFF,
        1 if st.paused else 0,
        ord("u") if st.want == "u" and not st.exiting else ord("d"),
        1 if st.got_term else 0,
        STATE_CODES[st.state],
    )


def decode(record: bytes) -> Status:
    """Read a 20-byte record (ours or runsv's); ValueError if it is not one."""
    if len(record) != RECORD_SIZE:
        raise ValueError(f"a status record has {RECORD_SIZE} bytes, not {len(record)}")
    label, nanos = struct.unpack(">QL", record[:12])
    pid, paused, want, got_term, state = struct.unpack("<L4B", record[12:])
    if state not in CODE_STATES:
        raise ValueError(f"unknown state {state}")
    return Status(
        when_ns=tai64.unix_ns(label, nanos),
        pid=pid,
        state=CODE_STATES[state],
        want=chr(want),
        paused=bool(paused),
        got_term=bool(got_term),
    )


def stat_text(st: Status) -> str:
    """supervise/stat, as runsv writes it (want is shown only when not down)."""
    text = st.state
    if st.paused:
        text += ", paused"
    if st.got_term:
        text += ", got TERM"
    if st.state != "down":
        if st.exiting:
            text += ", want exit"
        elif st.want == "d":
            text += ", want down"
    return text + "\n"


def pid_text(pid: int) -> str:
    """supervise/pid: the pid and a newline, or nothing."""
    return f"{pid}\n" if pid > 0 else ""


def wall_ns(since: float, mono_now: float, wall_now_ns: int) -> int:
    """A time on the monotonic clock, as unix nanoseconds."""
    return wall_now_ns - round((mono_now - since) * 1e9)


def from_machine(machine: Machine, mono_now: float, wall_now_ns: int) -> Status:
    """The record of a machine; its `setup` phase is `down` to runit's tools."""
    pid = machine.pid if machine.pid is not None and machine.pid > 0 else 0
    state = "down" if machine.state == SETUP else machine.state
    return Status(
        when_ns=wall_ns(machine.since, mono_now, wall_now_ns),
        pid=0 if state == "down" else pid,
        state=state,
        want=machine.want,
        paused=machine.paused,
        got_term=machine.got_term,
        exiting=machine.removed and machine.want == "d",
    )


def machine_key(machine: Machine) -> tuple:
    """Everything the files show: unchanged key, nothing to write."""
    return (
        machine.state,
        machine.pid,
        machine.want,
        machine.paused,
        machine.got_term,
        machine.removed,
        machine.since,
    )
