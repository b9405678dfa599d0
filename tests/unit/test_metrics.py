"""`/metrics` (core/metrics.py, control/health.py): Prometheus's text format, checked by
parsing it with a real Prometheus parser (prometheus_client, a test dependency only)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_health import Env

from pyinit.control import health
from pyinit.control.health import HealthServer
from pyinit.core import metrics
from pyinit.core.views import ProcessView, ServiceView, service_record

WALL = 1_000_000.0


def records() -> list[dict[str, Any]]:
    web = ServiceView("web", ProcessView(state="run", pid=7, since=10.0, uptime=90.5,
                                         restarts=3, last_exit_code=2, exited_at=9.0,
                                         ready=True), dropped_bytes=123)  # fmt: skip
    crashy = ServiceView("crashy", ProcessView(state="down", restarts=5, last_signal=9,
                                               exited_at=50.0, start_at=101.0))  # fmt: skip
    fresh = ServiceView("fresh", ProcessView(state="down", want="d"), normally_up=False)
    return [service_record(v, 100.0, WALL) for v in (web, crashy, fresh)]


def parse(text: str) -> dict[str, dict[tuple, float]]:
    """{family name: {sorted label items: value}} from the text, as Prometheus reads it."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_every_metric_parses_with_the_expected_values() -> None:
    text = metrics.render(records(), {"orphans_reaped": 4}, "0.1.0")
    m = parse(text)
    web, crashy, fresh = ((("service", n),) for n in ("web", "crashy", "fresh"))
    assert m["pyinit_service_up"] == {web: 1, crashy: 0, fresh: 0}
    assert m["pyinit_service_ready"] == {web: 1, crashy: 0, fresh: 0}
    assert m["pyinit_service_restarts_total"] == {web: 3, crashy: 5, fresh: 0}
    assert m["pyinit_service_last_exit_code"] == {web: 2, crashy: 128 + 9}  # fresh: none
    assert m["pyinit_service_uptime_seconds"] == {web: 90.5, crashy: 0, fresh: 0}
    assert m["pyinit_service_dropped_log_bytes_total"] == {web: 123, crashy: 0, fresh: 0}
    assert m["pyinit_orphans_reaped_total"] == {(): 4}
    assert m["pyinit_build_info"] == {(("version", "0.1.0"),): 1}
    assert m["pyinit_metrics_services_omitted"] == {(): 0}
    states = m["pyinit_service_state"]
    assert len(states) == 3 * len(metrics.STATES)
    current = {k: v for k, v in states.items() if v == 1}
    assert current == {
        (("service", "web"), ("state", "up")): 1,
        (("service", "crashy"), ("state", "backoff")): 1,
        (("service", "fresh"), ("state", "down")): 1,
    }


def test_help_and_type_once_per_family_before_its_samples() -> None:
    text = metrics.render(records(), {}, "0.1.0")
    lines = text.splitlines()
    families = [line.split()[2] for line in lines if line.startswith("# TYPE ")]
    assert len(families) == len(set(families)) == len(metrics.SERVICE_METRICS) + 4
    for name in families:
        help_at = lines.index(next(x for x in lines if x.startswith(f"# HELP {name} ")))
        assert lines[help_at + 1].startswith(f"# TYPE {name} ")
        samples = [i for i, x in enumerate(lines) if x.split("{")[0].split(" ")[0] == name]
        assert all(i > help_at + 1 for i in samples)
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["pyinit_service_restarts"] == "counter"  # the parser drops _total
    assert types["pyinit_service_state"] == "gauge"
    assert text.endswith("\n")


@pytest.mark.parametrize(
    "name",
    ['we"b', "a\\b", "line\nbreak", 'x\\"y\\n', "caf\u00e9", "bad\udcffutf8", "\x1b[2J", "} 1\n"],
)
def test_hostile_service_names_are_escaped_and_parse_back(name: str) -> None:
    rec = service_record(ServiceView(name, ProcessView()), 1.0, WALL)
    text = metrics.render([rec], {}, 'v"1\n')
    m = parse(text)
    expected = name.encode("utf-8", "replace").decode()
    assert m["pyinit_service_up"] == {(("service", expected),): 0}
    assert m["pyinit_build_info"] == {(("version", 'v"1\n'),): 1}
    text.encode("utf-8")  # no surrogate left


def test_the_body_is_bounded_whatever_the_services() -> None:
    long = '"\\\n' * 100_000
    recs = [service_record(ServiceView(f"{long}{i}", ProcessView()), 1.0, WALL)
            for i in range(metrics.MAX_SERVICES + 7)]  # fmt: skip
    text = metrics.render(recs, {}, "0.1.0")
    m = parse(text)
    assert len(m["pyinit_service_up"]) == 1  # all cut to the same MAX_LABEL characters
    assert m["pyinit_metrics_services_omitted"] == {(): 7}
    per_service = 2 * metrics.MAX_LABEL + 200
    lines_per_service = len(metrics.SERVICE_METRICS) + len(metrics.STATES)
    assert len(text) < metrics.MAX_SERVICES * lines_per_service * per_service + 10_000


def test_long_names_that_differ_late_stay_apart() -> None:
    """A service dir's name may have 255 bytes, an instance's more: two that share
    their first 128 characters are still two series (Prometheus drops a duplicate)."""
    names = ["x" * 300 + "a", "x" * 300 + "b"]
    recs = [service_record(ServiceView(n, ProcessView()), 1.0, WALL) for n in names]
    m = parse(metrics.render(recs, {}, "0.1.0"))
    assert len(m["pyinit_service_up"]) == 2


def test_missing_records_are_not_services() -> None:
    text = metrics.render([{"name": "x", "missing": True}], {}, "0.1.0")
    assert "pyinit_service_up{" not in text


def job_records() -> list[dict[str, Any]]:
    """Three jobs (core/jobs.py's Job.view() through views.py) and a service."""
    from datetime import timezone

    from pyinit.core import cron
    from pyinit.core.jobs import Job

    ok = Job(cron.parse("every 90s"), timezone.utc, runs=4, skipped=2)
    ok.plan(WALL - 30.0)  # due at WALL + 60
    ok.started(WALL - 50.0)
    ok.ended(WALL - 47.5, 0, None)
    late = Job(cron.parse("@daily"), timezone.utc, runs=1)
    late.pause()
    late.started(WALL - 100.0)
    late.ended(WALL - 40.0, 143, None, timed_out=True)
    busy = Job(cron.parse("every 90s"), timezone.utc, runs=1)
    busy.plan(WALL)
    busy.started(WALL - 1.0)
    views = [ServiceView(name, ProcessView(state="down"), job=j.view())
             for name, j in (("ok", ok), ("late", late), ("busy", busy))]  # fmt: skip
    views.append(ServiceView("web", ProcessView(state="run", pid=7)))
    return [service_record(v, 100.0, WALL) for v in views]


def test_scheduled_jobs_next_and_last_run() -> None:
    m = parse(metrics.render(job_records(), {}, "0.1.0"))
    ok, late, busy = ((("service", n),) for n in ("ok", "late", "busy"))
    assert m["pyinit_job_next_run_timestamp_seconds"] == {ok: WALL + 60, busy: WALL + 90}
    assert m["pyinit_job_paused"] == {ok: 0, late: 1, busy: 0}
    assert m["pyinit_job_runs_total"] == {ok: 5, late: 2, busy: 2}  # started() counts
    assert m["pyinit_job_skipped_runs_total"] == {ok: 2, late: 0, busy: 0}
    assert m["pyinit_job_last_run_start_timestamp_seconds"] == {
        ok: WALL - 50, late: WALL - 100, busy: WALL - 1}  # fmt: skip
    # no end, duration or success while a run goes on (busy)
    assert m["pyinit_job_last_run_end_timestamp_seconds"] == {ok: WALL - 47.5, late: WALL - 40}
    assert m["pyinit_job_last_run_duration_seconds"] == {ok: 2.5, late: 60}
    assert m["pyinit_job_last_run_success"] == {ok: 1, late: 0}
    results = m["pyinit_job_last_run_result"]
    assert len(results) == 3 * len(metrics.RESULTS)
    assert {k for k, v in results.items() if v == 1} == {
        (("result", "success"), ("service", "ok")),
        (("result", "timeout"), ("service", "late")),
        (("result", "running"), ("service", "busy")),
    }
    assert not any(("service", "web") in k for f in m if f.startswith("pyinit_job_")
                   for k in m[f])  # fmt: skip
    assert m["pyinit_service_up"][(("service", "web"),)] == 1  # services as before


def test_job_families_only_with_jobs_each_once_before_its_samples() -> None:
    assert "pyinit_job_" not in metrics.render(records(), {}, "0.1.0")  # no job: no family
    text = metrics.render(job_records(), {}, "0.1.0")
    lines = text.splitlines()
    families = [line.split()[2] for line in lines if line.startswith("# TYPE pyinit_job_")]
    assert len(families) == len(set(families)) == len(metrics.JOB_METRICS) + 1
    for name in families:
        at = lines.index(next(x for x in lines if x.startswith(f"# HELP {name} ")))
        assert lines[at + 1].startswith(f"# TYPE {name} ")
        assert all(i > at + 1 for i, x in enumerate(lines) if x.split("{")[0] == name)
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["pyinit_job_runs"] == types["pyinit_job_skipped_runs"] == "counter"
    assert types["pyinit_job_next_run_timestamp_seconds"] == "gauge"


def test_hostile_job_records_give_no_sample_and_no_crash() -> None:
    bad = [
        {
            "name": 'j"1\n',
            "state": "down",
            "job": {
                "next_run": float("inf"),
                "runs": "many",
                "paused": "yes",
                "last_run": {"start": float("nan"), "end": True, "result": "\n} 1"},
            },
        },
        {"name": "j2", "state": "down", "job": {"last_run": "nonsense", "next_run": -1e400}},
    ]
    m = parse(metrics.render(bad, {}, "0.1.0"))
    j1, j2 = (("service", 'j"1\n'),), (("service", "j2"),)
    assert "pyinit_job_next_run_timestamp_seconds" not in m  # inf: no sample
    assert "pyinit_job_runs_total" not in m  # not a number
    assert m["pyinit_job_paused"] == {j1: 1, j2: 0}
    for family in ("start_timestamp_seconds", "end_timestamp_seconds", "duration_seconds",
                   "success"):  # nan, a bool: no time, so no run that ended  # fmt: skip
        assert f"pyinit_job_last_run_{family}" not in m
    assert set(m["pyinit_job_last_run_result"].values()) == {0}  # an unknown result


# --- served by the health endpoint ---------------------------------------------------------
@pytest.fixture
def served():
    env = Env()
    env.server.close()
    calls: list[int] = []

    def body() -> str:
        calls.append(1)
        return metrics.render(records(), {"orphans_reaped": 1}, "0.1.0")

    env.server = HealthServer(env.loop, "127.0.0.1", 0, env.ready, env.status, metrics=body)
    yield env, calls
    for peer in env.peers:
        peer.close()
    env.server.close()


def test_metrics_is_served_with_the_text_format_content_type(served) -> None:
    env, calls = served
    code, headers, body = env.get("/metrics")
    assert code == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body)
    assert parse(body.decode())["pyinit_orphans_reaped_total"] == {(): 1}
    code, _, body = env.get("/metrics?x=1", method="HEAD")
    assert (code, body) == (200, b"")
    assert env.get("/metrics", method="POST")[0] == 405
    env.until(env.idle)


def test_without_a_metrics_callback_it_is_404() -> None:
    env = Env()
    try:
        assert env.get("/metrics")[0] == 404
    finally:
        for peer in env.peers:
            peer.close()
        env.server.close()


def test_a_scraper_that_does_not_read_cannot_block_the_server(served, monkeypatch) -> None:
    env, _ = served
    monkeypatch.setattr(health, "CLIENT_TIMEOUT", 3600.0)
    env.server.metrics = lambda: "# a body larger than the socket buffers\n" * (200 << 10)
    hog = env.connect(b"GET /metrics HTTP/1.1\r\n\r\n", read=False, rcvbuf=4096)
    env.until(lambda: len(env.server.clients) == 1)
    (stuck,) = env.server.clients
    env.until(lambda: bool(stuck.outbuf))
    assert env.get("/healthz")[0] == 200  # served while the scraper is stuck
    env.skip(health.CLIENT_TIMEOUT)
    env.until(env.idle)
    hog.close()


def test_a_failing_callback_is_500(served, capfd) -> None:
    env, _ = served

    def broken() -> str:
        raise RuntimeError("boom")

    env.server.metrics = broken
    code, _, _ = env.get("/metrics")
    assert code == 500
    assert "health server, /metrics" in capfd.readouterr().err
    assert env.get("/healthz")[0] == 200  # and it goes on
