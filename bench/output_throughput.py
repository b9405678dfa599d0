#!/usr/bin/env python3
"""Service output throughput: pyinit's `log: prefix` and `log: file` against runit's
svlogd and s6's s6-log, plus pyinit's control and signal latency during a flood.

A service writes 100-byte lines as fast as it can (64 KB writes). Each setup runs
for BENCH_REPS windows of BENCH_DURATION seconds (defaults 3 x 5 s, after a 1 s
warm-up); the table shows the median window. Bytes are counted from
/proc/PID/io of whoever delivers them, CPU from /proc/PID/stat (utime+stime).

- pyinit prefix: pyinit's stdout is a pipe read by `cat > /dev/null`; delivered
  lines = cat's bytes / 108 (`flood | ` + 100). The logger is pyinit itself.
- pyinit file: `log: {mode: file}` into a tmpfs dir (1 MB files, 20 kept).
- svlogd / s6-log: `log/run` under pyinit (pyinit is not in the data path: the
  service writes into a pipe the logger reads), same tmpfs, same 1 MB x 20.
- Latency (prefix setup, before and during the flood): a `status` request on the
  control socket (what `svctl status` sends), SIGUSR1 to pyinit until the main
  command got it (signal forwarding), and `control t` with a wait until the
  service was reaped and restarted (reaping).

Scenario 8 (logs) of `make bench`: `.venv/bin/python -m bench logs` writes
bench/results/logs.json, rendered into BENCHMARKS.md.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
PY = str(VENV_PY) if VENV_PY.exists() else sys.executable

DURATION = float(os.environ.get("BENCH_DURATION", "5"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "50"))
WARMUP = 1.0
LINE = 100
PREFIX = len(b"flood | ")
CLK = os.sysconf("SC_CLK_TCK")
MB = 1e6

GENERATOR = """\
import os
block = (b"x" * 99 + b"\\n") * 655   # 65500 bytes, 655 lines of 100 bytes
write = os.write
while True:
    write(1, block)
"""

SIGECHO = """\
import os, signal, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
signal.signal(signal.SIGUSR1, lambda *_: os.write(fd, b"."))
os.write(fd, b"R")
while True:
    signal.pause()
"""


# /proc -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def io_counters(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def descendants(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    text = f.read()
                parent[int(name)] = int(text[text.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = [c for c, p in parent.items() if p == pid]
        out += kids
        todo += kids
    return out


def become_subreaper() -> None:
    """Orphans of what we start come back to us, so cleanup can find every one."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except OSError:
        pass


def kill_everything_we_started() -> None:
    for pid in reversed(descendants(os.getpid())):
        for kill in (os.killpg, os.kill):  # its group (services lead their own), then it
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG) == (0, 0):
                time.sleep(0.05)
        except ChildProcessError:
            return


# pyinit ------------------------------------------------------------------------------


class Control:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(15)
        self.sock.connect(str(path))
        self.buf = b""

    def call(self, **request) -> dict:
        self.sock.sendall(json.dumps({"v": 1, **request}).encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("pyinit closed the control socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def status(self, name: str) -> dict:
        return self.call(cmd="status", services=[name])["services"][0]

    def close(self) -> None:
        self.sock.close()


class Pyinit:
    """pyinit as PID 1 of its own pid namespace, over a throw-away service dir."""

    def __init__(self, work: Path, services: dict[str, dict], stdout, main=None) -> None:
        self.dir = work
        work.mkdir(exist_ok=True)
        sdir, rdir = work / "services", work / "run"
        for name, spec in services.items():
            d = sdir / name
            d.mkdir(parents=True)
            write_exec(d / "run", spec["run"])
            if "yaml" in spec:
                (d / "service.yaml").write_text(spec["yaml"])
            if spec.get("down"):
                (d / "down").touch()
            if "log_run" in spec:
                (d / "log").mkdir()
                write_exec(d / "log" / "run", spec["log_run"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYINIT_")}
        cmd = [
            PY,
            "-m",
            "pyinit",
            "--service-dir",
            str(sdir),
            "--run-dir",
            str(rdir),
            "--config",
            "/nonexistent",
            "--skip-startup-files",
        ]
        if main:
            cmd += ["--", *main]
        self.err = open(work / "pyinit.err", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", *cmd],  # pyinit as PID 1
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=self.err,
            start_new_session=True,
            env=env,
        )
        self.pid = self.init_pid()
        sock = rdir / "control.sock"
        deadline = time.monotonic() + 20
        while not sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pyinit did not start:\n{self.log()}")
            time.sleep(0.05)
        self.sock = sock
        self.ctl = Control(sock)

    def init_pid(self) -> int:
        """pyinit's pid on the host: unshare's child."""
        deadline = time.monotonic() + 20
        children = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        while time.monotonic() < deadline and self.proc.poll() is None:
            with open(children) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
            time.sleep(0.01)
        raise RuntimeError(f"pyinit did not start:\n{self.log()}")

    def host(self, pid: int) -> int:
        """The host pid of the process pyinit reports as pid (its namespace's pid)."""
        for candidate in descendants(self.pid):
            try:
                with open(f"/proc/{candidate}/status") as f:
                    for line in f:
                        if line.startswith("NSpid:") and int(line.split()[-1]) == pid:
                            return candidate
            except OSError:
                continue
        raise RuntimeError(f"no process {pid} in pyinit's namespace")

    def reconnect(self) -> Control:
        """A fresh connection (pyinit drops one idle for 10 s)."""
        self.ctl.close()
        self.ctl = Control(self.sock)
        return self.ctl

    def wait_running(self, name: str, logger: bool = False, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.ctl.status(name)
            if st.get("pid") and (not logger or (st.get("log") or {}).get("pid")):
                return st
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not start: {st}\n{self.log()}")

    def log(self) -> str:
        self.err.flush()
        return (self.dir / "pyinit.err").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        try:
            self.reconnect().call(cmd="shutdown")
        except (OSError, RuntimeError):
            os.kill(self.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.ctl.close()
        self.err.close()


def write_exec(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


# measuring ---------------------------------------------------------------------------


def windows(pids: dict[str, int], delivered, taken) -> list[dict]:
    """REPS back-to-back windows: seconds, payload bytes delivered and taken, CPU per pid."""
    time.sleep(WARMUP)
    out = []
    for _ in range(REPS):
        c0 = {k: cpu_seconds(p) for k, p in pids.items()}
        d0, t0, w0 = delivered(), taken(), time.monotonic()
        time.sleep(DURATION)
        c1 = {k: cpu_seconds(p) for k, p in pids.items()}
        d1, t1, w1 = delivered(), taken(), time.monotonic()
        out.append(
            {
                "secs": w1 - w0,
                "out": d1 - d0,
                "in": t1 - t0,
                "cpu": {k: c1[k] - c0[k] for k in pids},
            }
        )
    return out


def summarize(name: str, ws: list[dict], note: str = "") -> tuple[str, list[dict], str]:
    return name, ws, note


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]
    return statistics.median(s) * 1000, p99 * 1000


def latencies(p: Pyinit, fifo: int) -> dict[str, tuple[float, float]]:
    status, sig, restart = [], [], []
    p.reconnect()
    for _ in range(5):
        p.ctl.call(cmd="status")
    for _ in range(SAMPLES):
        t = time.perf_counter()
        p.ctl.call(cmd="status")
        status.append(time.perf_counter() - t)
    for _ in range(SAMPLES):
        t = time.perf_counter()
        os.kill(p.pid, signal.SIGUSR1)
        if not select.select([fifo], [], [], 5)[0] or os.read(fifo, 1) != b".":
            raise RuntimeError("signal was not forwarded to the main command")
        sig.append(time.perf_counter() - t)
        time.sleep(0.005)
    for _ in range(SAMPLES):
        t = time.perf_counter()
        reply = p.ctl.call(cmd="control", action="t", services=["sleeper"], wait=5)
        if reply.get("timed_out") or not reply["results"][0].get("done"):
            raise RuntimeError(f"sleeper was not restarted: {reply}")
        restart.append(time.perf_counter() - t)
    return {
        "status": percentiles(status),
        "signal": percentiles(sig),
        "restart": percentiles(restart),
    }


# setups ------------------------------------------------------------------------------


def run_sh(gen: Path) -> str:
    return f"#!/bin/sh\nexec {PY} -S {gen}\n"


def bench_prefix(work: Path, gen: Path) -> tuple[tuple, dict]:
    work.mkdir()
    fifo_path = work / "sig.fifo"
    os.mkfifo(fifo_path)
    fifo = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK)
    echo = work / "sigecho.py"
    echo.write_text(SIGECHO)
    r, w = os.pipe()
    cat = subprocess.Popen(["cat"], stdin=r, stdout=subprocess.DEVNULL, start_new_session=True)
    os.close(r)
    try:
        p = Pyinit(
            work,
            {
                "flood": {"run": run_sh(gen), "yaml": "log: prefix\n", "down": True},
                "sleeper": {"run": "#!/bin/sh\nexec sleep 100000\n"},
            },
            stdout=w,
            main=[PY, "-S", str(echo), str(fifo_path)],
        )
    finally:
        os.close(w)
    try:
        if not select.select([fifo], [], [], 20)[0] or os.read(fifo, 1) != b"R":
            raise RuntimeError(f"main command did not start\n{p.log()}")
        os.set_blocking(fifo, True)
        p.wait_running("sleeper")
        idle = latencies(p, fifo)
        p.ctl.call(cmd="control", action="u", services=["flood"])
        gen_pid = p.host(p.wait_running("flood")["pid"])
        ws = windows(
            {"logger": p.pid, "gen": gen_pid, "other": cat.pid},
            delivered=lambda: io_counters(cat.pid)["rchar"] * LINE // (LINE + PREFIX),
            taken=lambda: io_counters(p.pid)["rchar"],
        )
        flood = latencies(p, fifo)
        dropped = "dropping lines" in p.log()
        p.stop()
    finally:
        os.close(fifo)
    note = "consumer: cat > /dev/null" + ("; pyinit dropped lines" if dropped else "")
    return summarize("pyinit prefix", ws, note), {"idle": idle, "flood": flood}


def bench_file(work: Path, gen: Path) -> tuple:
    yaml = f"log:\n  mode: file\n  dir: {work / 'logs'}\n  max_size: 1000000\n  max_files: 20\n"
    p = Pyinit(work, {"flood": {"run": run_sh(gen), "yaml": yaml}}, stdout=subprocess.DEVNULL)
    gen_pid = p.host(p.wait_running("flood")["pid"])
    ws = windows(
        {"logger": p.pid, "gen": gen_pid},
        delivered=lambda: io_counters(p.pid)["wchar"],
        taken=lambda: io_counters(p.pid)["rchar"],
    )
    p.stop()
    return summarize("pyinit file", ws, "1 MB files, 20 kept, tmpfs")


def bench_logger(work: Path, gen: Path, name: str, log_run: str, note: str) -> tuple:
    p = Pyinit(work, {"flood": {"run": run_sh(gen), "log_run": log_run}}, stdout=subprocess.DEVNULL)
    st = p.wait_running("flood", logger=True)
    logger = p.host(st["log"]["pid"])
    ws = windows(
        {"logger": logger, "gen": p.host(st["pid"]), "other": p.pid},
        delivered=lambda: io_counters(logger)["wchar"],
        taken=lambda: io_counters(logger)["rchar"],
    )
    p.stop()
    return summarize(name, ws, note)


# results -----------------------------------------------------------------------------


def to_metrics(runs: list[tuple[str, list[dict], str]], lat: dict | None) -> dict:
    """The windows of every setup as bench metrics (rows: setups)."""
    from bench.common import summary

    m = {
        "mbps": {
            "label": "service output delivered",
            "unit": "MB/s",
            "better": "higher",
            "rows": {},
        },
        "cpu_mb": {"label": "logger CPU per MB", "unit": "CPU s/MB", "better": "lower", "rows": {}},
        "drop": {"label": "dropped", "unit": "%", "better": "lower", "ratio": False, "rows": {}},
    }
    notes = []
    for name, ws, note in runs:
        m["mbps"]["rows"][name] = summary(w["out"] / MB / w["secs"] for w in ws)
        m["cpu_mb"]["rows"][name] = summary(
            w["cpu"]["logger"] / (w["out"] / MB) for w in ws if w["out"]
        )
        m["drop"]["rows"][name] = summary(
            100 * max(0.0, 1 - w["out"] / w["in"]) if w["in"] else 0.0 for w in ws
        )
        notes.append(f"{name}: {note}")
    if lat:
        labels = {
            "status": "`status` request on the control socket",
            "signal": "SIGUSR1 to pyinit → main command's handler",
            "restart": "`control t` with wait: TERM → reaped → restarted",
        }
        for key, label in labels.items():
            rows = {}
            for phase, title in (
                ("idle", "pyinit prefix, idle"),
                ("flood", "pyinit prefix, during the flood"),
            ):
                med, top = lat[phase][key]
                rows[title] = {"median": med, "min": med, "max": top, "n": SAMPLES}
            m[f"lat_{key}"] = {
                "label": label,
                "spread": "median [median–p99] of the samples",
                "unit": "ms",
                "better": "lower",
                "ratio": False,
                "rows": rows,
            }
    notes.append(
        "logger = pyinit for the pyinit rows, svlogd / s6-log otherwise; the "
        "latency rows are pyinit's own, idle and during the prefix flood"
    )
    return m, notes


def run() -> dict:
    """Every setup; the result for bench/results/logs.json."""
    gen_dir = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    top = Path(tempfile.mkdtemp(prefix="pyinit-bench-logs-", dir=gen_dir))
    gen = top / "flood.py"
    gen.write_text(GENERATOR)
    runs, skipped, lat = [], [], None
    try:
        print("pyinit prefix ...", file=sys.stderr, flush=True)
        ws, lat = bench_prefix(top / "prefix", gen)
        runs.append(ws)
        print("pyinit file ...", file=sys.stderr, flush=True)
        runs.append(bench_file(top / "file", gen))
        loggers = [
            (
                "svlogd",
                "svlogd",
                "#!/bin/sh\nmkdir -p main && printf 's1000000\\nn20\\n' > main/config\n"
                "exec svlogd ./main\n",
                "svlogd ./main (no -tt; 1 MB x 20; default 1 KB reads)",
            ),
            (
                "svlogd -b 65536",
                "svlogd",
                "#!/bin/sh\nmkdir -p main && printf 's1000000\\nn20\\n' > main/config\n"
                "exec svlogd -b 65536 ./main\n",
                "as above, 64 KB reads (tuned)",
            ),
            (
                "s6-log",
                "s6-log",
                "#!/bin/sh\nexec s6-log -b n20 s1000000 ./main\n",
                "s6-log -b n20 s1000000",
            ),
        ]
        for name, binary, script, note in loggers:
            if shutil.which(binary) is None:
                skipped.append(name)
                continue
            print(f"{name} ...", file=sys.stderr, flush=True)
            runs.append(bench_logger(top / name, gen, name, script, note))
    finally:
        kill_everything_we_started()
        shutil.rmtree(top, ignore_errors=True)
    metrics, notes = to_metrics(runs, lat)
    notes += [f"{s}: not installed, skipped" for s in skipped]
    return {
        "params": {
            "window_s": DURATION,
            "windows": REPS,
            "latency_samples": SAMPLES,
            "line_bytes": LINE,
        },
        "metrics": metrics,
        "notes": notes,
    }


if __name__ == "__main__":
    sys.exit("run it with `python -m bench logs` (or `make bench`)")
