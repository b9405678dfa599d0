"""BENCHMARKS.md and bench/results/*.png from bench/results/*.json (`python -m bench
--report`). Every figure is also given as a ratio to the best peer of the same run.
Plots need matplotlib (`pip install -e '.[bench]'`); without it only the tables are
written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from bench.common import RESULTS, ROOT

OUT = ROOT / "BENCHMARKS.md"

ABOUT = {
    "reap": (
        "Reaping",
        "The main command double-forks N orphans (each reparented to PID 1), "
        "then releases N blocked orphans at the same instant (a pipe closing). Timed "
        "inside the namespace until every orphan's /proc entry is gone (a zombie keeps "
        "it).",
    ),
    "forward": (
        "Signal forwarding",
        "The benchmark sends SIGUSR1 to PID 1 from outside the "
        "namespace and times until the main command's handler wrote a byte to a "
        "fifo. Median and p99 per trial.",
    ),
    "boot": (
        "Boot and shutdown of 50 services",
        "Each service is `sh` that traps TERM "
        "(writes a marker, exits 0) and waits on a `sleep`. Boot: from exec until all "
        "50 wrote their up marker. Shutdown: from SIGTERM to PID 1 until PID 1 exited, "
        "and how many services ran their TERM handler (the rest were SIGKILLed by the "
        "kernel when PID 1 exited).",
    ),
    "scale": (
        "Boot and shutdown of 10, 100 and 1000 services",
        "The boot scenario's services, 10, 100 and 1000 of them, for the supervisors "
        "that run one process per service (s6, runit) and pyinit: how boot and "
        "shutdown grow with each added service.",
    ),
    "restart": (
        "Crash loop",
        "One service that exits 1 at once, restarted by each "
        "supervisor with its default policy (supervisord: `autorestart=true "
        "startsecs=0`, or it gives up). Gap: the last third of the gaps between starts "
        "in the window (after any backoff has grown). CPU: PID 1 and the per-service "
        "supervisors, not the crashing service. The window is 30 s per init by default "
        "(`make bench BENCH_FLAGS=--full` for the 60 s the project's target names).",
    ),
    "idle": (
        "Idle",
        "100 services that `exec sleep`, after they are up and 2 s of "
        "settling: context switches (voluntary + nonvoluntary, /proc/PID/status) of PID "
        "1 and every per-service supervisor, per minute. Every switch is a wake-up. "
        "tini, dumb-init and catatonit run only a main command (`sleep`).",
    ),
    "memory": (
        "Memory",
        "PSS (/proc/PID/smaps_rollup) summed over PID 1 and every "
        "per-service supervisor, with 10, 100 and 1000 services that `exec sleep`.",
    ),
    "status": (
        "Status command",
        "Wall time of one status command listing 100 running "
        "services, from the host, median of 15 runs per trial.",
    ),
    "logs": (
        "Service output throughput",
        "A service writes 100-byte lines as fast as it "
        "can. pyinit's `log: prefix` and `log: file` against svlogd and s6-log as the "
        "service's `log/run` (pyinit supervising, not in the data path). Medians of "
        "5 s windows; pyinit runs as PID 1 of its own namespace. "
        "See bench/output_throughput.py.",
    ),
}


READING = [
    "How to read these:",
    "",
    "- pyinit is a Python program: its boot includes starting the interpreter and importing "
    "pyinit (about 100-200 ms here, before it can fork anything), where s6-svscan, runsvdir "
    "and tini are small C programs. Boot and shutdown figures of a few tens of ms are mostly "
    "that fixed cost, not a cost per service.",
    "- runit's shutdown is fast because runsvdir exits at once on SIGTERM: the kernel then "
    "SIGKILLs every service (0 of 50 ran their TERM handler).",
    "- Idle: runsvdir rescans its directory every 5 s (12 wake-ups a minute), tini waits for "
    "signals with a 1 s timeout (60), supervisord polls (about 100).",
    "- Memory: pyinit and supervisord are one process each, so their cost hardly grows with "
    "the number of services; runit and s6 run one supervisor per service.",
    "- The crash loop figures depend on each supervisor's restart policy: pyinit backs off up "
    "to 10 s, runit and s6 wait 1 s, supervisord (with `startsecs=0`) about 1 s.",
]


def load() -> dict[str, dict]:
    out = {}
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        out[data["scenario"]] = data
    return out


def is_pyinit(row: str) -> bool:
    return row.startswith("pyinit")


def best_peer(m: dict) -> tuple[str, float] | None:
    peers = [
        (r, s["median"])
        for r, s in m["rows"].items()
        if not is_pyinit(r) and s["median"] is not None
    ]
    if not peers:
        return None
    pick = max if m["better"] == "higher" else min
    return pick(peers, key=lambda p: p[1])


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if v == 0 or abs(v) >= 0.1:
        return f"{v:.2f}"
    return f"{v:.2g}"


def ratio(v: float | None, best: tuple[str, float] | None) -> str:
    if v is None or not best:
        return "-"
    if best[1] == 0:
        return "=" if v == 0 else "∞"
    return f"{v / best[1]:.2f}×"


def tables(metrics: dict) -> list[str]:
    """One table per set of rows (the logs scenario has throughput rows and latency rows)."""
    groups: dict[tuple, dict] = {}
    for key, m in metrics.items():
        groups.setdefault(tuple(m["rows"]), {})[key] = m
    out: list[str] = []
    for group in groups.values():
        out += [*table(group), ""]
    return out


def table(metrics: dict) -> list[str]:
    rows: list[str] = []
    for m in metrics.values():
        for r in m["rows"]:
            if r not in rows:
                rows.append(r)
    head = ["init"]
    for m in metrics.values():
        unit = f" ({m['unit']})" if m["unit"] else ""
        head.append(f"{m['label']}{unit}: {m.get('spread', 'median [min–max]')}")
        if m.get("ratio", True):
            head.append("÷ best peer")
    out = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for r in rows:
        cells = [f"**{r}**" if is_pyinit(r) else r]
        for m in metrics.values():
            s = m["rows"].get(r)
            cells.append(
                f"{fmt(s['median'])} [{fmt(s['min'])}–{fmt(s['max'])}]" if s and s["n"] else "-"
            )
            if m.get("ratio", True):
                cells.append(ratio(s["median"] if s else None, best_peer(m)))
        out.append("| " + " | ".join(cells) + " |")
    notes = []
    for m in metrics.values():
        if m.get("ratio", True) and (b := best_peer(m)):
            notes.append(f"{m['label']}: best peer {b[0]} ({m['better']} is better)")
    return [*out, "", *(f"- {n}" for n in notes)]


def plot(name: str, data: dict) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    metrics = {k: m for k, m in data["metrics"].items() if m["rows"]}
    if name == "memory":
        fig, ax = plt.subplots(figsize=(7, 4))
        pss = [m for m in metrics.values() if m["label"].startswith("PSS")]
        for init in pss[0]["rows"]:
            xs = [m["services"] for m in pss if init in m["rows"]]
            ys = [m["rows"][init]["median"] for m in pss if init in m["rows"]]
            ax.plot(xs, ys, marker="o", label=init, linewidth=3 if is_pyinit(init) else 1.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("services")
        ax.set_ylabel("PSS of supervision (MiB)")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    else:
        fig, axes = plt.subplots(
            len(metrics),
            1,
            squeeze=False,
            figsize=(
                7,
                0.5
                + 0.45 * max(len(m["rows"]) for m in metrics.values()) * len(metrics)
                + 0.6 * len(metrics),
            ),
        )
        for ax, m in zip(axes[:, 0], metrics.values()):
            rows = list(m["rows"].items())
            med = [s["median"] or 0 for _, s in rows]
            err = [
                [max(0, (s["median"] or 0) - (s["min"] or 0)) for _, s in rows],
                [max(0, (s["max"] or 0) - (s["median"] or 0)) for _, s in rows],
            ]
            colors = ["tab:red" if is_pyinit(r) else "tab:blue" for r, _ in rows]
            ax.barh([r for r, _ in rows], med, xerr=err, color=colors, capsize=3)
            ax.invert_yaxis()
            unit = f" ({m['unit']})" if m["unit"] else ""
            ax.set_title(m["label"] + unit, fontsize=9)
            ax.tick_params(labelsize=8)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def get(results: dict, scen: str, metric: str, row: str) -> float | None:
    try:
        return results[scen]["metrics"][metric]["rows"][row]["median"]
    except KeyError:
        return None


def best_of(results: dict, scen: str, metric: str, among: Sequence[str]) -> str | None:
    """Which of the peers `among` has the best median of a metric in this run."""
    found = [(get(results, scen, metric, r), r) for r in among]
    found = [(v, r) for v, r in found if v is not None]
    return min(found)[1] if found else None


def graceful_peers(results: dict) -> list[str]:
    """The supervisors whose shutdown let every service run its TERM handler: a
    shutdown that skips that (runsvdir exits, the kernel SIGKILLs) is not a reference."""
    try:
        rows = results["boot"]["metrics"]["graceful"]["rows"]
        n = results["boot"]["params"]["services"]
    except KeyError:
        return []
    return [r for r, s in rows.items() if not is_pyinit(r) and (s["median"] or 0) >= n]


def slope(results: dict, scen: str, metric: str, row: str, scale: float = 1.0) -> float | None:
    """How the figure grows per added service from 10 to 1000 services."""
    lo, hi = get(results, scen, f"{metric}10", row), get(results, scen, f"{metric}1000", row)
    return None if lo is None or hi is None else (hi - lo) / 990 * scale


def targets(results: dict) -> list[str]:
    """The project's goals (issue 20), each against the best peer of the same run."""

    def vs(scen, metric, ref, limit, unit, what, row="pyinit"):
        p = get(results, scen, metric, row)
        r = get(results, scen, metric, ref) if ref else None
        if p is None or r is None:
            return [what, fmt(p), f"{ref or '-'} {fmt(r)}", "-", "not measured"]
        q = p / r if r else float("inf")
        return [
            what,
            f"{fmt(p)} {unit}",
            f"{ref}: {fmt(r)} {unit}",
            f"{q:.2f}×",
            "**met**" if q <= limit else "**not met**",
        ]

    def alone(what, value, unit, met):
        verdict = "not measured" if value is None else "**met**" if met(value) else "**not met**"
        return [what, f"{fmt(value)} {unit}", "", "", verdict]

    def grows(what, scen, metric, unit, scale=1.0):
        p = slope(results, scen, metric, "pyinit", scale)
        refs = [(r, slope(results, scen, metric, r, scale)) for r in ("s6", "runit")]
        ref = "; ".join(f"{r}: {fmt(v)} {unit}" for r, v in refs if v is not None)
        ratio = "; ".join(f"{p / v:.2f}× {r}" for r, v in refs if p is not None and v)
        return [what, f"{fmt(p)} {unit}", ref or "-", ratio or "-", "reported"]

    mains = ["tini", "dumb-init", "catatonit"]
    rows = [
        vs(
            "reap",
            "reap",
            best_of(results, "reap", "reap", mains),
            1.1,
            "ms",
            "reap 1000 orphans ≤ 1.1× the best peer",
        ),
        vs(
            "reap",
            "burst",
            best_of(results, "reap", "burst", mains),
            1.0,
            "ms",
            "burst: 1000 orphans exit at once ≤ 1.0× the best peer",
        ),
        vs(
            "forward",
            "median",
            best_of(results, "forward", "median", mains),
            1.5,
            "µs",
            "signal forward median ≤ 1.5× the best peer",
        ),
        vs("boot", "boot", "s6", 0.9, "ms", "boot: exec → 50 services running ≤ 0.9× s6-svscan"),
        vs(
            "boot",
            "shutdown",
            best_of(results, "boot", "shutdown", graceful_peers(results)),
            0.6,
            "ms",
            "shutdown of 50 ≤ 0.6× the best graceful peer",
        ),
        alone(
            "50/50 services graceful at shutdown",
            get(results, "boot", "graceful", "pyinit"),
            "of 50",
            lambda v: v >= 50,
        ),
        alone(
            "zero idle wake-ups (100 services)",
            get(results, "idle", "wakeups", "pyinit"),
            "/min",
            lambda v: v == 0,
        ),
        vs("memory", "pss100", "runit", 1.0, "MiB", "supervision PSS, 100 services ≤ 1.0× runit"),
        alone(
            "crash loop under 1% of a core",
            get(results, "restart", "cpu", "pyinit"),
            "% of a core",
            lambda v: v < 1,
        ),
        alone(
            "`svctl status`, 100 services ≤ 25 ms",
            get(results, "status", "status", "pyinit (svctl status)"),
            "ms",
            lambda v: v <= 25,
        ),
        grows("boot time per added service (10 → 1000)", "scale", "boot", "ms"),
        grows("PSS per added service (10 → 1000)", "memory", "pss", "KiB", scale=1024),
    ]
    out = [
        "| target | pyinit | reference (same run) | ratio | |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def write() -> Path:
    results = load()
    machine = next(iter(results.values()))["machine"] if results else {}
    text = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`) from `bench/results/*.json`; do not "
        "edit by hand. Each init runs as PID 1 of its own pid+mount namespace (`unshare "
        "--pid --fork --mount-proc`) with the same service directory bind-mounted at the "
        "same path. Figures are the median of several trials with [min–max]; `÷ best "
        "peer` divides by the best peer's median in the same run, since absolute times "
        "drift between runs on a shared machine.",
        "",
    ]
    if machine:
        text += [
            f"Last run: {machine.get('host')}, Linux {machine.get('kernel')}, "
            f"{machine.get('cpus')} CPUs, {machine.get('date')}. pyinit ran under "
            + (
                f"{machine['pyinit_python']}, the interpreter images ship."
                if "pyinit_python" in machine
                else f"the bench's own Python {machine.get('python')}."
            )
            + " Per-scenario dates and parameters are in the JSON "
            "files.",
            "",
        ]
    text += ["## Targets", "", *targets(results), "", *READING, ""]
    order = ["reap", "forward", "boot", "scale", "restart", "idle", "memory", "status", "logs"]
    for name in sorted(results, key=lambda n: order.index(n) if n in order else 99):
        data = results[name]
        title, about = ABOUT.get(name, (name, ""))
        text += [
            f"## {title}",
            "",
            about,
            "",
            f"Parameters: {json.dumps(data.get('params', {}))}; "
            f"run {data['machine']['date']}, {data.get('run_time_s', '?')} s.",
            "",
        ]
        text += tables(data["metrics"])
        text += [f"- {n}" for n in data.get("notes", [])]
        png = plot(name, data)
        if png:
            text += ["", f"![{title}](bench/results/{png})"]
        text += ["", ""]
    OUT.write_text("\n".join(text))
    print(f"wrote {OUT.relative_to(ROOT)}")
    return OUT


if __name__ == "__main__":
    write()
