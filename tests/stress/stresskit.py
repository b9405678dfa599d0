"""What the reliability scenarios share: smoke or full size, figures, services and
status over the control socket."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
from helpers import Run, write_script

from pyinit.control.protocol import request

FULL = os.environ.get("PYINIT_STRESS") == "full"


def scale(smoke, full):
    """The smoke size (`make test`), or the full one under `make stress`."""
    return full if FULL else smoke


def report(name: str, **figures) -> None:
    """Print a scenario's figures (shown with `pytest -s`, as `make stress` runs it)."""
    parts = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    print(f"\n[stress] {name}: {parts}")


def service(tmp: Path, name: str, body: str, yaml: str | None = None) -> Path:
    d = tmp / "service" / name
    write_script(d / "run", body)
    if yaml is not None:
        (d / "service.yaml").write_text(yaml)
    return d


def status(tmp: Path, timeout: float = 5) -> dict[str, dict]:
    reply = request(str(tmp / "run" / "control.sock"), {"cmd": "status"}, timeout=timeout)
    assert reply["ok"], reply
    return {rec["name"]: rec for rec in reply["services"]}


def try_status(tmp: Path) -> dict[str, dict]:
    try:
        return status(tmp)
    except OSError:
        return {}


def running(tmp: Path, *names: str) -> dict[str, dict] | None:
    recs = try_status(tmp)
    ok = all(n in recs and recs[n]["state"] == "run" and recs[n]["pid"] for n in names)
    return recs if ok else None


def rss_kib(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss // 1024


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def zombies(run: Run) -> list[int]:
    out = []
    for p in run.descendants():
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.Error:
            pass
    return out


def count(text: str, needle: str) -> int:
    return sum(1 for line in text.splitlines() if needle in line)
