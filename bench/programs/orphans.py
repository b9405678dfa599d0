"""Main command of the reap scenario (run as PID 1's child): N double-forked orphans,
then N orphans exiting at the same instant; writes both times as JSON to argv[2].

reap_ms: from the first fork until PID 1 reaped the last orphan.
burst_ms: from the moment N blocked orphans are released until no zombie is left.
An orphan is reaped when /proc/PID is gone (a zombie keeps its entry)."""

import json
import os
import sys
import time


def gone(pids):
    left = pids
    while left:
        left = [p for p in left if os.path.exists(f"/proc/{p}")]
        if left:
            time.sleep(0.0002)


def orphans(n, gate=None):
    """n grandchildren whose parents exited; each blocks on gate when given."""
    r, w = os.pipe()
    pids = []
    for _ in range(n):
        child = os.fork()
        if child == 0:
            grandchild = os.fork()
            if grandchild == 0:
                if gate is not None:
                    os.close(gate[1])
                    os.read(gate[0], 1)
                os._exit(0)
            os.write(w, grandchild.to_bytes(4, "little"))
            os._exit(0)
        os.waitpid(child, 0)
        pids.append(int.from_bytes(os.read(r, 4), "little"))
    os.close(r)
    os.close(w)
    return pids


n = int(sys.argv[1])
t0 = time.perf_counter()
gone(orphans(n))
reap_ms = (time.perf_counter() - t0) * 1000

gate = os.pipe()
pids = orphans(n, gate)
time.sleep(0.3)  # every orphan is blocked in read()
t0 = time.perf_counter()
os.close(gate[1])
gone(pids)
burst_ms = (time.perf_counter() - t0) * 1000

with open(sys.argv[2], "w") as f:
    json.dump({"reap_ms": reap_ms, "burst_ms": burst_ms}, f)
