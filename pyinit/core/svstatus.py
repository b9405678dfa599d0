"""Service status records, runit's `sv status` line format, and sv's wait conditions.

Pure functions over the status record that the control socket sends (a dict,
see docs/control-protocol.md), shared by pyinit (to answer waits) and svctl
(to print).
"""

from __future__ import annotations

import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

    Record = Mapping[str, Any]


def sv_part(label: str, rec: Record, now: float) -> str:
    """One `sv status` part: `run: NAME: (pid 123) 45s, normally down, ...`."""
    pid = rec.get("pid") or 0
    state = rec.get("state", "down")
    text = f"{state}: {label}: "
    if state != "down":
        text += f"(pid {pid}) "
    elapsed = max(0, math.floor(now - rec.get("since", now)))
    text += f"{elapsed}s"
    normally_up = rec.get("normally_up", True)
    want = rec.get("want")
    if pid and not normally_up:
        text += ", normally down"
    if not pid and rec.get("outcome") == "done":
        text += ", done"
    elif not pid and normally_up:
        text += ", normally up"
    if pid and rec.get("paused"):
        text += ", paused"
    if not pid and want == "u":
        text += ", want up"
    if pid and want == "d":
        text += ", want down"
    if pid and rec.get("got_term"):
        text += ", got TERM"
    if pid and state == "run" and rec.get("ready") is False:
        text += ", not ready"
    if rec.get("waiting_for"):
        text += ", waiting for " + ", ".join(rec["waiting_for"])
    return text


def sv_status_line(label: str, rec: Record, now: float) -> str:
    """The whole `sv status` line for a service, with its logger after '; '."""
    problem = rec.get("error") or rec.get("failed")
    if problem and not rec.get("pid"):
        return f"fail: {label}: " + "; ".join(str(problem).splitlines())
    line = sv_part(label, rec, now)
    if rec.get("log"):
        line += "; " + sv_part("log", rec["log"], now)
    return line + job_part(rec)


def job_part(rec: Record) -> str:
    """A scheduled job's schedule after the status: `; paused` (svctl down, a down
    file) or `; next run in Ns`; "" for a service that is no job."""
    job = rec.get("job")
    if job and job.get("paused"):
        return "; paused"
    if job and job.get("next_run_in") is not None:
        return f"; next run in {max(0, math.ceil(job['next_run_in']))}s"
    return ""


def satisfied(letters: str, rec: Record, asked_at: float) -> bool:
    """Has `letters` (as sent by svctl) taken effect? sv's check(), minus `check` scripts
    (svctl runs those itself). asked_at and rec['since'] use the same clock."""
    pid = rec.get("pid") or 0
    state = rec.get("state", "down")
    since = rec.get("since", 0.0)
    job = rec.get("job")  # a scheduled job: up resumes its schedule, starts no run
    for letter in letters:
        if letter == "u" and job is not None:
            if job.get("paused"):
                return False
            continue
        if letter == "x":  # sv waits for runsv to exit, i.e. for the service to be down
            return not pid and state == "down"
        if letter == "u" and (not pid or state != "run"):
            return False
        if letter == "d" and (pid or state != "down"):
            return False
        if letter in "tk":
            if not pid and rec.get("want") == "d":
                continue
            if asked_at > since or not pid or rec.get("got_term"):
                return False
        if letter == "o" and ((not pid and asked_at > since) or (pid and rec.get("want") != "d")):
            return False
        if letter == "p" and pid and not rec.get("paused"):
            return False
        if letter == "c" and pid and rec.get("paused"):
            return False
        if letter == "C" and not healthy(rec):
            return False
    return True


# A run that lives less is a crash: the machine backs off before the next start
# (core/machine.py imports it from here, so that svctl need not import the machine).
MIN_UPTIME = 1.0
SETTLE = MIN_UPTIME  # what a waiting command gives a start before it counts as up


def healthy(rec: Record) -> bool:
    """svctl check and /readyz: a service that should be up is up, ready, and (once
    restarted) has stayed up its settle time since; a oneshot: done. A service in
    backoff (down, wanted up) or failed is not healthy, so a crash loop never is."""
    if hopeless(rec):
        return False
    if rec.get("outcome") == "done" or rec.get("want") != "u":
        return True
    return (bool(rec.get("pid")) and rec.get("state") == "run" and rec.get("ready") is not False
            and unsettled(rec) == 0)


def unsettled(rec: Record) -> float:
    """Seconds a restarted `run` must still stay up to count as healthy (0: settled).
    The settle time is rec['settle'] (the service's ready.settle, at least SETTLE);
    a run that was never restarted is judged by readiness alone."""
    if not rec.get("restarts") or rec.get("state") != "run" or not rec.get("pid"):
        return 0.0
    return max(0.0, float(rec.get("settle", SETTLE)) - float(rec.get("uptime", 0.0)))


def hopeless(rec: Record) -> bool:
    """Failed for good (or never startable): waiting for it to be healthy is pointless."""
    return bool((rec.get("error") or rec.get("failed")) and not rec.get("pid"))
