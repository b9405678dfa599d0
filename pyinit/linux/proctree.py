"""Who descends from whom, read from /proc without psutil (PID 1 stays small)."""

from __future__ import annotations

import os
from typing import Mapping


def descendants(parents: Mapping[int, int], root: int) -> list[int]:
    """Every pid whose chain of parents reaches root (root excluded), parents first."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out: list[int] = []
    stack = sorted(children.get(root, []), reverse=True)
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(sorted(children.get(pid, []), reverse=True))
    return out


def parent_map(proc: str = "/proc") -> dict[int, int]:
    """{pid: ppid} for every process visible now; vanished ones are skipped."""
    out: dict[int, int] = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parens, so split after the last ')'
        fields = data[data.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            out[int(entry)] = int(fields[1])
    return out
