"""`python -m bench [SCENARIO...]`: run benchmark scenarios against pyinit and every
installed peer, write bench/results/SCENARIO.json, then regenerate BENCHMARKS.md.

Scenarios: reap forward boot scale restart idle memory status logs (default: all).
--full: the crash loop runs 60 s per init (default 30 s); --trials N (default 5 for the
short scenarios, 3 for the long ones); --report: only regenerate BENCHMARKS.md;
--baseline REV: also run pyinit as of git revision REV in the same run (rows
'pyinit@REV'), to measure a change against it."""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import report, scenarios
from bench.common import log, save
from bench.inits import missing

ORDER = ["reap", "forward", "boot", "scale", "restart", "idle", "memory", "status", "logs"]


def become_subreaper() -> None:
    """What a trial leaves behind comes back to us, and dies with us."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def unpack_baseline(rev: str) -> None:
    """`git archive` REV's pyinit/ into a temporary tree and add it as an init."""
    import atexit
    import shutil
    import subprocess

    from bench.inits import add_baseline

    root = Path(__file__).resolve().parents[1]
    short = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", rev],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = Path(tempfile.mkdtemp(prefix=f"pyinit-baseline-{short}-"))
    atexit.register(shutil.rmtree, tree, True)
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", short, "pyinit"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    os.chmod(tree, 0o755)
    add_baseline(short, tree)
    log(f"baseline: pyinit@{short} from {tree}")


def run(name: str, top: Path, args: argparse.Namespace) -> dict:
    short = args.trials or 5
    long = args.trials or 3
    if name == "reap":
        return scenarios.reap(scenarios.Bench(top, short))
    if name == "forward":
        return scenarios.forward(scenarios.Bench(top, long))
    if name == "boot":
        return scenarios.boot(scenarios.Bench(top, short))
    if name == "scale":
        return scenarios.scale(scenarios.Bench(top, args.trials or 3))
    if name == "restart":
        return scenarios.restart(scenarios.Bench(top, long), window=60.0 if args.full else 30.0)
    if name == "idle":
        return scenarios.idle(scenarios.Bench(top, long))
    if name == "memory":
        return scenarios.memory(scenarios.Bench(top, args.trials or 2))
    if name == "status":
        return scenarios.status(scenarios.Bench(top, long))
    if name == "logs":
        from bench import output_throughput

        return output_throughput.run()
    raise SystemExit(f"unknown scenario {name!r} (known: {' '.join(ORDER)})")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", nargs="*", help="default: all")
    parser.add_argument("--trials", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="crash loop over 60 s per init")
    parser.add_argument("--report", action="store_true", help="only regenerate BENCHMARKS.md")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run pyinit as of git revision REV (a row 'pyinit@REV'), in the same run",
    )
    args = parser.parse_args()
    if args.baseline:
        unpack_baseline(args.baseline)
    if not args.report:
        if os.geteuid() != 0:
            print(
                "bench: run as root (each init runs as PID 1 of a new pid namespace)",
                file=sys.stderr,
            )
            return 1
        for init in missing():
            log(
                f"{init.name} is not installed (Debian package {init.package}): "
                "its rows are skipped"
            )
        become_subreaper()
        base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
        started = time.monotonic()
        for name in args.scenario or ORDER:
            top = Path(tempfile.mkdtemp(prefix=f"pyinit-bench-{name}-", dir=base))
            t = time.monotonic()
            log(f"scenario {name} ...")
            try:
                data = run(name, top, args)
            except RuntimeError as exc:  # one scenario failing does not stop the others
                log(f"scenario {name} failed: {exc}; its previous results are kept")
                continue
            finally:
                scenarios.cleanup(top)
            data["run_time_s"] = round(time.monotonic() - t, 1)
            save(name, data)
        log(f"all done in {time.monotonic() - started:.0f} s")
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
