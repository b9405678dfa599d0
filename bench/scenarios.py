"""The benchmark scenarios. Each runs pyinit and every installed peer as PID 1 of its own
namespace, several trials each, and returns its metrics for bench/results/NAME.json:
{metric: {label, unit, better, rows: {init: summary}}}."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

from bench.common import (
    PY,
    Namespace,
    comm,
    cpu_seconds,
    ctx_switches,
    descendants,
    log,
    p99,
    pss_kib,
    summary,
    wait_until,
)
from bench.inits import Init, main_inits, supervisors

HERE = Path(__file__).resolve().parent
REAPER = HERE / "programs" / "orphans.py"
SIGECHO = HERE / "programs" / "sigecho.py"


class Bench:
    """One run's scratch space: top/service is the mount point every init sees its
    service directory on (a fresh copy per trial is bind-mounted there)."""

    def __init__(self, top: Path, trials: int) -> None:
        self.top = top
        self.trials = trials
        self.mnt = top / "service"
        self.n = 0

    def work(self, init: Init, what: str) -> Path:
        self.n += 1
        path = self.top / f"{self.n:04d}-{init.name}-{what}"
        path.mkdir(parents=True)
        return path

    def main(self, init: Init, work: Path, cmd: Sequence[str]) -> Namespace:
        empty = work / "svc"
        empty.mkdir()
        return Namespace(init.main(work, cmd), empty, self.mnt, work / "init.err")

    def services(
        self, init: Init, work: Path, names: Sequence[str], script: Callable[[str], str]
    ) -> Namespace:
        src = work / "svc"
        for name in names:
            (src / name).mkdir(parents=True)
            run = src / name / "run"
            run.write_text(script(name))
            run.chmod(0o755)
        return Namespace(init.supervise(work, self.mnt, names), src, self.mnt, work / "init.err")


def metric(label: str, unit: str, better: str = "lower", **extra) -> dict:
    return {"label": label, "unit": unit, "better": better, "rows": {}, **extra}


def sleepers(pid1: int) -> int:
    return sum(1 for p in descendants(pid1) if comm(p) == "sleep")


def idle_script(name: str) -> str:
    return "#!/bin/sh\nexec sleep 1000000\n"


# 1. reap and burst ---------------------------------------------------------------------


def reap(b: Bench, n: int = 1000) -> dict:
    m = {
        "reap": metric(f"reap {n} double-forked orphans", "ms"),
        "burst": metric(f"burst: {n} orphans exit at once, until no zombie", "ms"),
    }
    for init in main_inits():
        walls, bursts = [], []
        for _ in range(b.trials):
            work = b.work(init, "reap")
            out = work / "result.json"
            ns = b.main(init, work, [PY, "-S", str(REAPER), str(n), str(out)])
            try:
                if ns.wait(180) is None or not out.exists():
                    raise RuntimeError(f"{init.name}: orphans.py did not finish")
                r = json.loads(out.read_text())
            finally:
                ns.kill()
            walls.append(r["reap_ms"])
            bursts.append(r["burst_ms"])
        m["reap"]["rows"][init.name] = summary(walls)
        m["burst"]["rows"][init.name] = summary(bursts)
        log(
            f"reap {init.name}: {m['reap']['rows'][init.name]['median']:.0f} ms, "
            f"burst {m['burst']['rows'][init.name]['median']:.1f} ms"
        )
    return {"params": {"orphans": n, "trials": b.trials}, "metrics": m}


# 2. signal forwarding ------------------------------------------------------------------


def forward(b: Bench, samples: int = 200) -> dict:
    m = {
        "median": metric("kill(PID 1, SIGUSR1) → main command's handler, median", "µs"),
        "p99": metric("same, p99", "µs"),
    }
    for init in main_inits():
        meds, p99s = [], []
        for _ in range(b.trials):
            work = b.work(init, "forward")
            fifo_path = work / "sig.fifo"
            os.mkfifo(fifo_path)
            fifo = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK)
            ns = b.main(init, work, [PY, "-S", str(SIGECHO), str(fifo_path)])
            try:
                if not select.select([fifo], [], [], 20)[0] or os.read(fifo, 1) != b"R":
                    raise RuntimeError(f"{init.name}: the main command did not start")
                os.set_blocking(fifo, True)
                lat = []
                for _ in range(samples):
                    t = time.perf_counter()
                    os.kill(ns.pid, signal.SIGUSR1)
                    if not select.select([fifo], [], [], 5)[0] or os.read(fifo, 1) != b".":
                        raise RuntimeError(f"{init.name} did not forward SIGUSR1")
                    lat.append((time.perf_counter() - t) * 1e6)
                    time.sleep(0.002)
            finally:
                ns.kill()
                os.close(fifo)
            meds.append(sorted(lat)[len(lat) // 2])
            p99s.append(p99(lat))
        m["median"]["rows"][init.name] = summary(meds)
        m["p99"]["rows"][init.name] = summary(p99s)
        log(f"forward {init.name}: {m['median']['rows'][init.name]['median']:.0f} µs")
    return {"params": {"samples_per_trial": samples, "trials": b.trials}, "metrics": m}


# 3. boot and shutdown ------------------------------------------------------------------

GRACEFUL = """#!/bin/sh
trap 'kill $! 2>/dev/null; : > {marks}/term.{name}; exit 0' TERM
: > {marks}/up.{name}
sleep 1000000 & wait $!
"""


def boot_trial(b: Bench, init: Init, names: Sequence[str]) -> tuple[float, float, int]:
    """One boot of len(names) GRACEFUL services and its shutdown: (boot ms, shutdown ms,
    how many services ran their TERM handler)."""
    n = len(names)
    work = b.work(init, f"boot{n}")
    marks = work / "marks"
    marks.mkdir()
    ns = b.services(init, work, names, lambda name: GRACEFUL.format(marks=marks, name=name))
    try:
        wait_until(
            lambda: len(os.listdir(marks)) >= n, 60 + n / 10, f"{init.name}: {n} services up"
        )
        up = (time.perf_counter() - ns.started) * 1000
        time.sleep(0.5)
        t = time.perf_counter()
        os.kill(ns.pid, signal.SIGTERM)
        if ns.wait(60) is None:
            raise RuntimeError(f"{init.name} did not exit within 60 s of SIGTERM")
        down = (time.perf_counter() - t) * 1000
        return up, down, sum(1 for f in os.listdir(marks) if f.startswith("term."))
    finally:
        ns.kill()


def boot(b: Bench, n: int = 50) -> dict:
    m = {
        "boot": metric(f"exec → all {n} services running", "ms"),
        "shutdown": metric("SIGTERM → PID 1 exited", "ms"),
        "graceful": metric(
            f"services that got SIGTERM and ran their handler (of {n})",
            "",
            better="higher",
            ratio=False,
        ),
    }
    names = [f"svc{i:02d}" for i in range(n)]
    for init in supervisors():
        trials = [boot_trial(b, init, names) for _ in range(b.trials)]
        boots, downs, graceful = (list(x) for x in zip(*trials))
        m["boot"]["rows"][init.name] = summary(boots)
        m["shutdown"]["rows"][init.name] = summary(downs)
        m["graceful"]["rows"][init.name] = summary(graceful)
        log(
            f"boot {init.name}: {m['boot']['rows'][init.name]['median']:.0f} ms, shutdown "
            f"{m['shutdown']['rows'][init.name]['median']:.0f} ms, graceful {graceful}"
        )
    return {"params": {"services": n, "trials": b.trials}, "metrics": m}


# 3b. how boot and shutdown grow with the number of services ----------------------------

SCALED = ("pyinit", "s6", "runit")


def scale(b: Bench, counts: Sequence[int] = (10, 100, 1000)) -> dict:
    """Boot and shutdown of 10, 100 and 1000 services, for pyinit, s6 and runit (the
    supervisors with one process per service; supervisord is left out)."""
    m = {}
    for n in counts:
        m[f"boot{n}"] = metric(f"exec → all {n} services running", "ms", services=n)
        m[f"shutdown{n}"] = metric(f"SIGTERM → PID 1 exited, {n} services", "ms", services=n)
    for init in supervisors():
        if init.name.split("@")[0] not in SCALED:
            continue
        for n in counts:
            names = [f"svc{i:04d}" for i in range(n)]
            trials = [boot_trial(b, init, names) for _ in range(b.trials)]
            m[f"boot{n}"]["rows"][init.name] = summary([t[0] for t in trials])
            m[f"shutdown{n}"]["rows"][init.name] = summary([t[1] for t in trials])
            log(f"scale {init.name} {n}: {[round(t[0]) for t in trials]} ms up")
    return {"params": {"counts": list(counts), "trials": b.trials}, "metrics": m}


# 4. crash loop -------------------------------------------------------------------------

CRASH = "#!/bin/sh\ndate +%s.%N >> {marks}/starts\nexit 1\n"


def restart(b: Bench, window: float = 30.0) -> dict:
    """One service crashing in a loop for `window` seconds (split in b.trials parts)."""
    m = {
        "gap": metric("gap between a crashing service's restarts (steady state)", "ms"),
        "per_min": metric("restarts per minute", "/min", ratio=False),
        "cpu": metric("CPU of supervision during the crash loop", "% of a core"),
    }
    part = window / b.trials
    for init in supervisors():
        work = b.work(init, "restart")
        marks = work / "marks"
        marks.mkdir()
        starts = marks / "starts"
        ns = b.services(init, work, ["crash"], lambda name, marks=marks: CRASH.format(marks=marks))
        cpus, counts = [], []
        try:
            wait_until(starts.exists, 30, f"{init.name}: first start")
            pids = init.supervision(ns.pid)
            t_begin = time.time()
            for _ in range(b.trials):
                c0, t0 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
                time.sleep(part)
                c1, t1 = sum(cpu_seconds(p) for p in pids), time.perf_counter()
                cpus.append(100 * (c1 - c0) / (t1 - t0))
            stamps = [float(x) for x in starts.read_text().split()]
        finally:
            ns.kill()
        inside = [s for s in stamps if s >= t_begin]
        gaps = [(y - x) * 1000 for x, y in zip(inside, inside[1:])]
        counts.append(len(inside) * 60 / window)
        # the steady state: the last third of the gaps (backoffs have grown by then)
        m["gap"]["rows"][init.name] = summary(gaps[-max(1, len(gaps) // 3) :] or [])
        m["per_min"]["rows"][init.name] = summary(counts)
        m["cpu"]["rows"][init.name] = summary(cpus)
        log(f"restart {init.name}: {len(inside)} starts in {window:g} s, cpu {cpus}")
    return {"params": {"window_s": window, "parts": b.trials}, "metrics": m}


# 5. idle -------------------------------------------------------------------------------


def idle(b: Bench, n: int = 100, window: float = 10.0) -> dict:
    m = {
        "wakeups": metric("context switches of supervision per minute (wake-ups)", "/min"),
        "cpu": metric("CPU of supervision", "% of a core", ratio=False),
    }
    peers = [i for i in main_inits() if not i.name.startswith("pyinit")]
    cases = [(i, n) for i in supervisors()] + [(i, 0) for i in peers]
    for init, count in cases:
        work = b.work(init, "idle")
        label = init.name if count else f"{init.name} (main command, no services)"
        if count:
            ns = b.services(init, work, [f"svc{i:03d}" for i in range(count)], idle_script)
        else:
            ns = b.main(init, work, ["sleep", "1000000"])
        wake, cpu = [], []
        need = max(count, 1)
        try:
            wait_until(lambda ns=ns, need=need: sleepers(ns.pid) >= need, 60, f"{label} up")
            time.sleep(2)
            pids = init.supervision(ns.pid)
            for _ in range(b.trials):
                s0, c0 = sum(ctx_switches(p) for p in pids), sum(cpu_seconds(p) for p in pids)
                t0 = time.perf_counter()
                time.sleep(window)
                dt = time.perf_counter() - t0
                s1, c1 = sum(ctx_switches(p) for p in pids), sum(cpu_seconds(p) for p in pids)
                wake.append((s1 - s0) * 60 / dt)
                cpu.append(100 * (c1 - c0) / dt)
        finally:
            ns.kill()
        m["wakeups"]["rows"][label] = summary(wake)
        m["cpu"]["rows"][label] = summary(cpu)
        log(f"idle {label}: {wake} wake-ups/min")
    return {"params": {"services": n, "window_s": window, "trials": b.trials}, "metrics": m}


# 6. memory -----------------------------------------------------------------------------


def memory(b: Bench, counts: Sequence[int] = (10, 100, 1000)) -> dict:
    m = {}
    for n in counts:
        m[f"pss{n}"] = metric(f"PSS of supervision, {n} services", "MiB", services=n)
        m[f"procs{n}"] = metric(f"supervision processes, {n} services", "", ratio=False, services=n)
    notes = []
    for init in supervisors():
        for n in counts:
            pss, procs = [], []
            try:
                for _ in range(b.trials):
                    work = b.work(init, f"mem{n}")
                    ns = b.services(init, work, [f"svc{i:04d}" for i in range(n)], idle_script)
                    try:
                        wait_until(
                            lambda ns=ns, n=n: sleepers(ns.pid) >= n,
                            180,
                            f"{init.name}: {n} services up",
                            step=0.2,
                        )
                        time.sleep(1)
                        pids = init.supervision(ns.pid)
                        pss.append(sum(pss_kib(p) for p in pids) / 1024)
                        procs.append(len(pids))
                    finally:
                        ns.kill()
            except RuntimeError as exc:
                log(f"memory {init.name} {n}: {exc}")
                notes.append(f"{init.name} with {n} services: {exc}")
                continue
            m[f"pss{n}"]["rows"][init.name] = summary(pss)
            m[f"procs{n}"]["rows"][init.name] = summary(procs)
            log(f"memory {init.name} {n}: {pss} MiB in {procs} processes")
    return {"params": {"counts": list(counts), "trials": b.trials}, "metrics": m, "notes": notes}


# 7. status command ---------------------------------------------------------------------


def status(b: Bench, n: int = 100, samples: int = 15) -> dict:
    m = {"status": metric(f"status command with {n} services, median per trial", "ms")}
    for init in supervisors():
        if not init.status:
            continue
        work = b.work(init, "status")
        ns = b.services(init, work, [f"svc{i:03d}" for i in range(n)], idle_script)
        cmd = init.status(work, work / "svc")
        meds = []
        try:
            wait_until(lambda ns=ns: sleepers(ns.pid) >= n, 60, f"{init.name}: services up")
            time.sleep(1)
            first = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            lines = first.stdout.strip().splitlines()
            if first.returncode != 0 or len(lines) < n:
                raise RuntimeError(
                    f"{' '.join(cmd)} failed: {first.returncode} "
                    f"{first.stdout[-300:]}{first.stderr[-300:]}"
                )
            for _ in range(b.trials):
                times = []
                for _ in range(samples):
                    t = time.perf_counter()
                    subprocess.run(
                        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30
                    )
                    times.append((time.perf_counter() - t) * 1000)
                meds.append(sorted(times)[len(times) // 2])
        finally:
            ns.kill()
        label = {
            "pyinit": "pyinit (svctl status)",
            "runit": "runit (sv status)",
            "supervisord": "supervisord (supervisorctl status)",
        }.get(init.name, f"{init.name} (svctl status)")  # pyinit@REV too
        m["status"]["rows"][label] = summary(meds)
        log(f"status {label}: {meds}")
    return {
        "params": {"services": n, "samples_per_trial": samples, "trials": b.trials},
        "metrics": m,
    }


def cleanup(top: Path) -> None:
    shutil.rmtree(top, ignore_errors=True)
