"""`/metrics`: status records (core/views.py) in Prometheus's text exposition format
0.0.4, written by hand (no client library in PID 1).

Pure: records and counters in, text out. One family per metric (HELP and TYPE,
then its samples), a `service` label per service. The state is the enum form
Prometheus's own exporters use (kube-state-metrics' phase): one series per
possible state, 1 for the current one, 0 for the others. Service names are
hostile input: label values are escaped as the format says (backslash, double
quote, newline), cut to MAX_LABEL characters, and any text that is not UTF-8
becomes U+FFFD; at most MAX_SERVICES services are shown (and how many were left
out), so the body is bounded whatever the service dirs hold. Scheduled jobs (a
record with a `job`) get the pyinit_job_* families, only when one is shown.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

from pyinit.core.statustable import state

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_SERVICES = 500
MAX_LABEL = 512  # characters of a label value (before escaping): any service name whole
STATES = ("up", "starting", "paused", "stopping", "finish", "backoff", "waiting", "done",
          "down", "failed")  # fmt: skip

Record = dict[str, Any]


def label_value(value: str) -> str:
    """value as a label value between double quotes: cut, valid UTF-8, escaped."""
    text = value[:MAX_LABEL].encode("utf-8", "replace").decode("utf-8", "replace")
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, (int, float)) else None


def _last_exit_code(rec: Record) -> Optional[float]:
    """The code it last exited with; 128+N when a signal N ended it (as a shell says)."""
    sig, code = rec.get("last_signal"), rec.get("last_exit_code")
    if isinstance(sig, int) and not isinstance(sig, bool):
        return float(128 + sig)
    return _number(code)


def _uptime(rec: Record) -> float:
    return float(rec.get("uptime") or 0.0) if rec.get("pid") and rec.get("state") == "run" else 0.0


# (name, type, help, the value of a record, or None for no sample)
SERVICE_METRICS: list[tuple[str, str, str, Callable[[Record], Optional[float]]]] = [
    ("pyinit_service_up", "gauge", "1 while the service's run process runs, else 0.",
     lambda r: 1.0 if r.get("pid") and r.get("state") == "run" else 0.0),
    ("pyinit_service_ready", "gauge", "1 while the service is ready (a oneshot: done), else 0.",
     lambda r: 1.0 if r.get("ready") else 0.0),
    ("pyinit_service_restarts_total", "counter", "Restarts of the service since pyinit started.",
     lambda r: _number(r.get("restarts"))),
    ("pyinit_service_last_exit_code", "gauge",
     "Exit code of the service's last exit; 128+N when signal N ended it.", _last_exit_code),
    ("pyinit_service_uptime_seconds", "gauge",
     "Seconds the service's run process has been running (0 when it is not).", _uptime),
    ("pyinit_service_dropped_log_bytes_total", "counter",
     "Bytes of the service's output pyinit dropped (prefix and file mode).",
     lambda r: _number(r.get("dropped_bytes", 0))),
]  # fmt: skip


def _finite(value: Any) -> Optional[float]:
    """A job's number (a time, a count): a finite int or float, not a bool."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None


def _job(rec: Record) -> Record:
    job = rec.get("job")
    return job if isinstance(job, dict) else {}


def _last(rec: Record) -> Record:
    last = _job(rec).get("last_run")
    return last if isinstance(last, dict) else {}


def _ended(rec: Record) -> Optional[Record]:
    """The job's last run if it has ended (a finite end time), else None."""
    last = _last(rec)
    return last if _finite(last.get("end")) is not None else None


def _success(rec: Record) -> Optional[float]:
    last = _ended(rec)
    return None if last is None else float(last.get("result") == "success")


def _run_seconds(rec: Record) -> Optional[float]:
    last = _ended(rec) or {}
    start, end = _finite(last.get("start")), _finite(last.get("end"))
    return None if start is None or end is None else max(0.0, end - start)


# the same for each scheduled job (a record with a `job`; docs/svctl.md's job record)
JOB_METRICS: list[tuple[str, str, str, Callable[[Record], Optional[float]]]] = [
    ("pyinit_job_next_run_timestamp_seconds", "gauge",
     "UNIX time of the job's next run, jitter included (no sample while paused).",
     lambda r: _finite(_job(r).get("next_run"))),
    ("pyinit_job_paused", "gauge", "1 while the job's schedule is paused (svctl down), else 0.",
     lambda r: float(bool(_job(r).get("paused")))),
    ("pyinit_job_runs_total", "counter", "Runs of the job started since pyinit supervises it.",
     lambda r: _finite(_job(r).get("runs"))),
    ("pyinit_job_skipped_runs_total", "counter",
     "Due times of the job skipped because a run was still going (overlap: skip).",
     lambda r: _finite(_job(r).get("skipped"))),
    ("pyinit_job_last_run_start_timestamp_seconds", "gauge",
     "UNIX time the job's last run started.",
     lambda r: _finite(_last(r).get("start"))),
    ("pyinit_job_last_run_end_timestamp_seconds", "gauge",
     "UNIX time the job's last run ended (no sample while it runs).",
     lambda r: _finite(_last(r).get("end"))),
    ("pyinit_job_last_run_duration_seconds", "gauge",
     "Seconds the job's last run took (no sample while it runs).", _run_seconds),
    ("pyinit_job_last_run_success", "gauge",
     "1 if the job's last run succeeded (exit 0), 0 if not (no sample while it runs).", _success),
]  # fmt: skip
RESULTS = ("running", "success", "failure", "timeout", "stopped")


def _sample(name: str, labels: str, value: float) -> str:
    text = str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)
    return f"{name}{{{labels}}} {text}\n"


def render(records: list[Record], counters: dict[str, Any], version: str) -> str:
    """The whole /metrics body."""
    shown = [r for r in records if not r.get("missing")][:MAX_SERVICES]
    omitted = max(0, len([r for r in records if not r.get("missing")]) - len(shown))
    names = [f'service="{label_value(str(r.get("name", "")))}"' for r in shown]
    rows = list(zip(shown, names))
    out = _families(SERVICE_METRICS, rows)
    out += _enum("pyinit_service_state", "The service's state", "state", STATES, rows, state)
    out.extend(_jobs(shown, names))
    orphans = _number(counters.get("orphans_reaped")) or 0.0
    out.append(
        "# HELP pyinit_orphans_reaped_total Processes pyinit reaped that it had not started.\n"
        "# TYPE pyinit_orphans_reaped_total counter\n"
        f"pyinit_orphans_reaped_total {int(orphans)}\n"
        "# HELP pyinit_build_info pyinit's version.\n# TYPE pyinit_build_info gauge\n"
        f'pyinit_build_info{{version="{label_value(version)}"}} 1\n'
        "# HELP pyinit_metrics_services_omitted Services left out of these metrics "
        f"(more than {MAX_SERVICES}).\n# TYPE pyinit_metrics_services_omitted gauge\n"
        f"pyinit_metrics_services_omitted {omitted}\n"
    )
    return "".join(out)


def _jobs(shown: list[Record], names: list[str]) -> list[str]:
    """The job families, if any shown service is a scheduled job (none else)."""
    jobs = [(rec, labels) for rec, labels in zip(shown, names) if _job(rec)]
    if not jobs:
        return []
    out = _families(JOB_METRICS, jobs)
    out += _enum("pyinit_job_last_run_result", "The job's last run's result", "result",
                 RESULTS, jobs, lambda rec: _last(rec).get("result"))  # fmt: skip
    return out


def _families(table: list, rows: list[tuple[Record, str]]) -> list[str]:
    """One family per (name, kind, help, reader) of table, a sample per row it reads."""
    out: list[str] = []
    for name, kind, help_text, read in table:
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        for rec, labels in rows:
            value = read(rec)
            if value is not None:
                out.append(_sample(name, labels, value))
    return out


def _enum(name: str, what: str, label: str, values: Any, rows: list[tuple[Record, str]],
          current_of: Callable[[Record], Any]) -> list[str]:
    """A gauge with one series per value, 1 for a row's current one (none when a row
    has no current value)."""
    out = [f"# HELP {name} {what}: 1 for the current one (see docs/pyinit.md#metrics).\n"
           f"# TYPE {name} gauge\n"]  # fmt: skip
    for rec, labels in rows:
        current = current_of(rec)
        if current is not None:
            out.extend(_sample(name, f'{labels},{label}="{v}"', float(v == current))
                       for v in values)  # fmt: skip
    return out
