"""What each service's processes cost, for `svctl tree` and `svctl status --json`.

Runs in svctl, never in PID 1 (it imports psutil).
"""

from __future__ import annotations

import time
from typing import Any

import psutil


def service_processes(pid: int | None) -> list[psutil.Process]:
    """The process pid and all its descendants, or [] if it is gone."""
    if not pid:
        return []
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.Error:
        return []


def add_usage(rec: dict[str, Any]) -> None:
    """Add rss (bytes), cpu_seconds and processes to a status record (and its log's)."""
    for part in (rec, rec.get("log")):
        if not part or part.get("missing"):
            continue
        rss, cpu, count = 0, 0.0, 0
        for proc in service_processes(part.get("pid")):
            try:
                with proc.oneshot():
                    rss += proc.memory_info().rss
                    times = proc.cpu_times()
                    cpu += times.user + times.system
                    count += 1
            except psutil.Error:
                continue
        part.update(rss=rss, cpu_seconds=round(cpu, 3), processes=count)


def _human(n: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return str(n)


def render_tree(records: list[dict[str, Any]], color: bool, sample: float = 0.2) -> str:
    """Each service with its process tree: pid, state, CPU %, RSS, command."""
    procs: dict[int, list[psutil.Process]] = {}
    for rec in records:
        for part in (rec, rec.get("log")):
            if part and part.get("pid"):
                procs[part["pid"]] = service_processes(part["pid"])
    every = [p for group in procs.values() for p in group]
    for p in every:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    if every:
        time.sleep(sample)
    bold, dim, reset = ("\033[1m", "\033[2m", "\033[0m") if color else ("", "", "")
    lines = []
    for rec in records:
        if rec.get("missing"):
            lines.append(f"{rec['name']}: no such service")
            continue
        state = rec.get("error") or rec.get("state", "?")
        lines.append(f"{bold}{rec['name']}{reset} {dim}{state}{reset}")
        for label, part in (("run", rec), ("log", rec.get("log"))):
            if not part or not part.get("pid"):
                continue
            root_pid = part["pid"]
            for proc in procs.get(root_pid, []):
                try:
                    with proc.oneshot():
                        depth = _depth(proc, root_pid)
                        cmd = " ".join(proc.cmdline()) or proc.name()
                        lines.append(
                            f"  {'  ' * depth}{label if depth == 0 else '└'} "
                            f"{proc.pid:>7} {proc.status():<9} {proc.cpu_percent(None):5.1f}% "
                            f"{_human(proc.memory_info().rss):>7}  {cmd}"
                        )
                except psutil.Error:
                    continue
    return "\n".join(lines) + ("\n" if lines else "")


def _depth(proc: psutil.Process, root: int) -> int:
    depth = 0
    current = proc
    while current.pid != root and depth < 50:
        parent = current.parent()
        if parent is None:
            break
        current = parent
        depth += 1
    return depth
