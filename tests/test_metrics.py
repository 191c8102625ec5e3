"""Metrics (SPEC §8): names and labels, event counting, database gauges, dashboards."""

from __future__ import annotations

import json
import logging
import re
import socket
from pathlib import Path

import asyncpg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from jobq import App, events
from jobq.client import Client
from jobq.job_request import JobRequest
from jobq.metrics import MAX_LABEL_VALUES, OVERFLOW_LABEL, Metrics
from tests.support import insert_job

ROOT = Path(__file__).resolve().parent.parent
SPEC_METRICS = {
    "jobq_jobs_enqueued_total": {"queue", "kind"},
    "jobq_jobs_finished_total": {"queue", "kind", "outcome"},
    "jobq_job_duration_seconds": {"queue", "kind"},
    "jobq_job_pickup_delay_seconds": {"queue", "kind"},
    "jobq_jobs_in_flight": {"queue"},
    "jobq_jobs_rescued_total": {"queue"},
    "jobq_queue_jobs": {"queue", "status"},
    "jobq_queue_oldest_runnable_age_seconds": {"queue"},
    "jobq_workers_alive": set(),
    "jobq_db_dead_tuples": {"table"},
    "jobq_db_oldest_xact_age_seconds": set(),
    "jobq_db_up": set(),
    "jobq_queue_paused": {"queue"},
    "jobq_http_requests_total": {"method", "route", "status"},
    "jobq_http_request_duration_seconds": {"method", "route"},
    "jobq_schedule_fires_total": {"schedule"},
    "jobq_schedule_runs_skipped_total": {"schedule"},
    "jobq_schedule_lag_seconds": set(),
}


def exposed_names(metrics: Metrics) -> set[str]:
    names = set()
    for family in metrics.registry.collect():
        for sample in family.samples:
            names.add(sample.name)
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def test_every_spec_metric_exists_with_its_labels() -> None:
    metrics = Metrics()
    try:
        by_name = {}
        for family in metrics.registry.collect():
            full = family.name + ("_total" if family.type == "counter" else "")
            by_name[full] = family
        for name, _labels in SPEC_METRICS.items():
            assert name in by_name, name
        assert set(metrics.queue_jobs._labelnames) == SPEC_METRICS["jobq_queue_jobs"]
        assert set(metrics.finished._labelnames) == SPEC_METRICS["jobq_jobs_finished_total"]
        assert set(metrics.http_requests._labelnames) == SPEC_METRICS["jobq_http_requests_total"]
    finally:
        metrics.close()


async def test_events_become_counters_and_histograms() -> None:
    metrics = Metrics()
    try:
        events.emit(events.JobsEnqueued("q", "k", 3))
        events.emit(events.JobClaimed("q", "k", 0.004))
        events.emit(events.JobFinished("q", "k", "succeeded", 0.2))
        events.emit(events.JobFinished("q", "k", "retried", 0.1))
        events.emit(events.JobsRescued("q", 2))
        events.emit(events.JobSnoozed("q", "k", 30.0))
        events.emit(events.JobSnoozed("q", "k", 0.0))
        events.emit(events.InFlightChanged("q", 1))
        events.emit(events.HttpRequestDone("GET", "/v1/jobs/{job_id}", 200, 0.01))
        got = samples((await metrics.render()).decode())
        assert got[("jobq_jobs_enqueued_total", frozenset({("queue", "q"), ("kind", "k")}))] == 3
        key = frozenset({("queue", "q"), ("kind", "k"), ("outcome", "succeeded")})
        assert got[("jobq_jobs_finished_total", key)] == 1
        assert (
            got[("jobq_job_duration_seconds_count", frozenset({("queue", "q"), ("kind", "k")}))]
            == 2
        )
        assert got[("jobq_jobs_rescued_total", frozenset({("queue", "q")}))] == 2
        assert got[("jobq_jobs_snoozed_total", frozenset({("queue", "q"), ("kind", "k")}))] == 2
        assert got[("jobq_jobs_in_flight", frozenset({("queue", "q")}))] == 1
        route = frozenset({("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "200")})
        assert got[("jobq_http_requests_total", route)] == 1
    finally:
        metrics.close()


async def test_database_gauges_are_read_at_scrape_and_cached(app: App, client: Client) -> None:
    metrics = Metrics()
    try:
        await insert_job(client, queue="mq", run_at_offset_s=-5)
        await insert_job(client, queue="mq", status="succeeded", finished_offset_s=0)
        got = samples((await metrics.render(client)).decode())
        assert got[("jobq_queue_jobs", frozenset({("queue", "mq"), ("status", "queued")}))] == 1
        assert got[("jobq_queue_jobs", frozenset({("queue", "mq"), ("status", "succeeded")}))] == 1
        age = got[("jobq_queue_oldest_runnable_age_seconds", frozenset({("queue", "mq")}))]
        assert age >= 4
        assert ("jobq_workers_alive", frozenset()) in got
        assert ("jobq_db_oldest_xact_age_seconds", frozenset()) in got
        assert any(name == "jobq_db_dead_tuples" for name, _ in got)
        assert got[("jobq_db_up", frozenset())] == 1
        assert got[("jobq_queue_paused", frozenset({("queue", "mq")}))] == 0
        # Within the cache window a scrape does not read the database again.
        await insert_job(client, queue="mq")
        again = samples((await metrics.render(client)).decode())
        assert again[("jobq_queue_jobs", frozenset({("queue", "mq"), ("status", "queued")}))] == 1
    finally:
        metrics.close()


async def test_a_database_that_is_down_is_db_up_0_and_the_rest_still_renders(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pool = await asyncpg.create_pool(f"postgresql://nobody@127.0.0.1:{port}/none", min_size=0)
    metrics = Metrics()
    try:
        events.emit(events.JobsEnqueued("mq", "k", 2))
        down = Client(pool, client.settings)
        with caplog.at_level(logging.DEBUG, logger="jobq.metrics"):
            for _ in range(3):
                got = samples((await metrics.render(down)).decode())
                assert got[("jobq_db_up", frozenset())] == 0
                assert (
                    got[("jobq_jobs_enqueued_total", frozenset({("queue", "mq"), ("kind", "k")}))]
                    == 2
                )
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once per streak, not at every scrape
        await client.pool.execute(
            f'INSERT INTO "{client.settings.schema}".queues (name, paused) VALUES ($1, true)',
            "held",
        )
        got = samples((await metrics.render(client)).decode())
        assert got[("jobq_db_up", frozenset())] == 1
        assert got[("jobq_queue_paused", frozenset({("queue", "held")}))] == 1
    finally:
        metrics.close()
        await pool.close()


def _series(
    got: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str
) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in got.items() if n == name}


async def test_client_labels_are_capped_per_label_and_overflow_to_other() -> None:
    """Finding 9: 300 queue names made 300 series; now 100 and one `_other`."""
    metrics = Metrics()
    try:
        for i in range(300):
            events.emit(events.JobsEnqueued(f"q{i}", "k", 1))
            events.emit(events.JobsEnqueued("q0", f"k{i}", 1))
            events.emit(events.JobClaimed(f"q{i}", f"k{i}", 0.01))
            events.emit(events.JobFinished(f"q{i}", f"k{i}", "succeeded", 0.1))
            events.emit(events.JobsRescued(f"q{i}", 1))
            events.emit(events.InFlightChanged(f"q{i}", 1))
        for i in range(300):
            events.emit(events.InFlightChanged(f"q{i}", -1))
        events.emit(events.HttpRequestDone("FOO1", "/v1/jobs", 405, 0.01))
        events.emit(events.HttpRequestDone("FOO2", "/v1/jobs", 405, 0.01))
        got = samples((await metrics.render()).decode())
        for name in (
            "jobq_jobs_enqueued_total",
            "jobq_jobs_finished_total",
            "jobq_job_duration_seconds_count",
            "jobq_job_pickup_delay_seconds_count",
            "jobq_jobs_rescued_total",
            "jobq_jobs_in_flight",
        ):
            series = _series(got, name)
            queues = {dict(labels)["queue"] for labels in series}
            kinds = {dict(labels).get("kind") for labels in series} - {None}
            assert len(queues) == MAX_LABEL_VALUES + 1 and OVERFLOW_LABEL in queues, name
            assert len(kinds) <= MAX_LABEL_VALUES + 1, name
            assert len(series) <= 2 * (MAX_LABEL_VALUES + 1), name
        # Nothing is lost: the overflow counts what the capped values did.
        enqueued = _series(got, "jobq_jobs_enqueued_total")
        assert sum(enqueued.values()) == 600
        other = frozenset({("queue", OVERFLOW_LABEL), ("kind", "k")})
        assert enqueued[other] == 300 - MAX_LABEL_VALUES
        # "k" came first, so k0 to k98 keep their names and k99 to k299 do not.
        assert enqueued[frozenset({("queue", "q0"), ("kind", OVERFLOW_LABEL)})] == 201
        # A gauge's inc and dec meet the same series, capped or not.
        assert set(_series(got, "jobq_jobs_in_flight").values()) == {0}
        methods = {dict(k)["method"] for k in _series(got, "jobq_http_requests_total")}
        assert methods == {OVERFLOW_LABEL}
        # The cache of label children is bounded too.
        assert len(metrics._children) < 10 * (MAX_LABEL_VALUES + 1)
    finally:
        metrics.close()


async def test_database_gauges_cap_queue_names_and_merge_the_rest(app: App, client: Client) -> None:
    n = MAX_LABEL_VALUES + 20
    await client.enqueue_many([JobRequest(kind="noop", queue=f"cap-{i:03d}") for i in range(n)])
    await insert_job(client, queue="cap-old", run_at_offset_s=-3600)
    metrics = Metrics()
    try:
        got = samples((await metrics.render(client)).decode())
        queued = {
            dict(labels)["queue"]: value
            for labels, value in _series(got, "jobq_queue_jobs").items()
            if dict(labels)["status"] == "queued"
        }
        assert len(queued) == MAX_LABEL_VALUES + 1
        assert sum(queued.values()) == n + 1
        ages = _series(got, "jobq_queue_oldest_runnable_age_seconds")
        assert len(ages) == MAX_LABEL_VALUES + 1
        # cap-old sorts after cap-NNN and is merged: _other's age is the oldest.
        assert ages[frozenset({("queue", OVERFLOW_LABEL)})] >= 3600
    finally:
        metrics.close()


def _referenced_metrics(text: str) -> set[str]:
    return set(re.findall(r"\b(jobq_[a-z_]+)", text))


HISTOGRAMS = {
    "jobq_job_duration_seconds",
    "jobq_job_pickup_delay_seconds",
    "jobq_http_request_duration_seconds",
    "jobq_schedule_lag_seconds",
}


def _known_series() -> set[str]:
    known = set(SPEC_METRICS)
    for name in HISTOGRAMS:
        known.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return known


def test_alert_rules_reference_only_existing_metrics() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "JobqQueueBacklogGrowing",
        "JobqOldestRunnableJobTooOld",
        "JobqHighFailureRatio",
        "JobqNoWorkerHeartbeat",
    } <= names
    used = set().union(*(_referenced_metrics(e) for e in exprs))
    assert used and used <= _known_series(), used - _known_series()


def test_grafana_dashboard_references_only_existing_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/jobq.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(_referenced_metrics(e) for e in exprs))
    assert used <= _known_series(), used - _known_series()
    # Every SPEC metric is on the dashboard somewhere.
    bases = {re.sub(r"_(bucket|sum|count)$", "", u) for u in used}
    assert set(SPEC_METRICS) <= bases, set(SPEC_METRICS) - bases


async def _scrape(port: int, path: str = "/metrics") -> tuple[int, str]:
    import httpx

    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    return response.status_code, response.text


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_known_mix_gives_exact_counters(database_url: str, schema: str) -> None:
    """Run demo-style jobs through a real worker, scrape, and compare with the database."""
    from jobq import JobContext, Settings
    from jobq.worker.options import WorkerOptions
    from jobq.worker.runtime import Worker
    from tests.conftest import drop_schema
    from tests.support import wait_for

    settings = Settings(
        database_url=database_url,
        schema=schema,
        retry_base_ms=10,
        retry_cap_ms=20,
        poll_interval_ms=50,
    )
    app = App(settings)

    @app.task("ok")
    async def ok(ctx: JobContext, payload: dict[str, object]) -> None:
        return None

    @app.task("bad", max_attempts=2)
    async def bad(ctx: JobContext, payload: dict[str, object]) -> None:
        raise RuntimeError("no")

    metrics = Metrics()
    client = await app.client()
    queue = f"mix-{schema[-6:]}"
    try:
        await app.enqueue_many([{"kind": "ok", "queue": queue} for _ in range(7)])
        await app.enqueue_many([{"kind": "bad", "queue": queue} for _ in range(3)])
        worker = Worker(app.registry, client, WorkerOptions(concurrency=4))

        async def all_finished() -> bool:
            infos = {q.name: q for q in await client.queues()}
            counts = infos[queue].counts
            return counts.get("succeeded", 0) == 7 and counts.get("failed_permanent", 0) == 3

        import asyncio

        running = asyncio.create_task(worker.run())
        await wait_for(all_finished, timeout=20)
        worker.request_stop()
        await asyncio.wait_for(running, 20)
        got = samples((await metrics.render(client)).decode())

        def value(name: str, **labels: str) -> float:
            return got.get((name, frozenset(labels.items())), 0.0)

        assert value("jobq_jobs_enqueued_total", queue=queue, kind="ok") == 7
        assert value("jobq_jobs_enqueued_total", queue=queue, kind="bad") == 3
        assert value("jobq_jobs_finished_total", queue=queue, kind="ok", outcome="succeeded") == 7
        assert value("jobq_jobs_finished_total", queue=queue, kind="bad", outcome="retried") == 3
        assert (
            value("jobq_jobs_finished_total", queue=queue, kind="bad", outcome="failed_permanent")
            == 3
        )
        assert value("jobq_job_duration_seconds_count", queue=queue, kind="ok") == 7
        assert value("jobq_job_duration_seconds_count", queue=queue, kind="bad") == 6
        assert value("jobq_job_pickup_delay_seconds_count", queue=queue, kind="ok") == 7
        assert value("jobq_jobs_in_flight", queue=queue) == 0
        assert value("jobq_queue_jobs", queue=queue, status="succeeded") == 7
        assert value("jobq_queue_jobs", queue=queue, status="failed_permanent") == 3
    finally:
        metrics.close()
        await app.close()
        await drop_schema(database_url, schema)


async def test_worker_metrics_port_aggregates_every_process(database_url: str, schema: str) -> None:
    """`jobq worker --processes 2 --metrics-port P`: one scrape sums both children."""
    import asyncio
    import os
    import signal
    import sys

    from jobq import Settings
    from tests.conftest import drop_schema
    from tests.support import wait_for

    settings = Settings(database_url=database_url, schema=schema, poll_interval_ms=50)
    app = App(settings)
    app.register("noop", lambda ctx, payload: None)
    await app.enqueue_many([{"kind": "noop", "queue": "agg"} for _ in range(40)])
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "JOBQ_SCHEMA": schema}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobq",
        "worker",
        "--processes",
        "2",
        "--concurrency",
        "5",
        "--metrics-port",
        str(port),
        "--metrics-host",
        "127.0.0.1",
        "--no-migrate",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def scraped_all() -> bool:
            import httpx

            try:
                status, text = await _scrape(port)
            except httpx.HTTPError:
                return False
            if status != 200:
                # Seen once in a matrix leg: a 500 "metrics unavailable" while the
                # children start; the scrape after it is the one that counts.
                return False
            got = samples(text)
            key = frozenset({("queue", "agg"), ("kind", "noop"), ("outcome", "succeeded")})
            done = frozenset({("queue", "agg"), ("status", "succeeded")})
            # The database gauges lag by up to their one-second cache.
            return (
                got.get(("jobq_jobs_finished_total", key)) == 40
                and got.get(("jobq_queue_jobs", done)) == 40
                and got.get(("jobq_workers_alive", frozenset())) == 2
            )

        await wait_for(scraped_all, timeout=30, interval=0.2)
        _status, text = await _scrape(port)
        got = samples(text)
        key = frozenset({("queue", "agg"), ("kind", "noop"), ("outcome", "succeeded")})
        assert got[("jobq_jobs_finished_total", key)] == 40
        assert (
            got[("jobq_queue_jobs", frozenset({("queue", "agg"), ("status", "succeeded")}))] == 40
        )
        assert (await _scrape(port, "/healthz"))[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await app.close()
        await drop_schema(database_url, schema)


async def test_a_multi_process_scrape_skips_a_child_file_not_yet_sized(tmp_path: Path) -> None:
    # prometheus_client creates a child's file, then sizes it: a scrape in between
    # met a 0-byte file, and its reader failed the whole answer (client_python#1199).
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    child = MmapedDict(str(tmp_path / "counter_101.db"))  # type: ignore[no-untyped-call]
    key = mmap_key(
        "jobq_jobs_enqueued",
        "jobq_jobs_enqueued_total",
        ["queue", "kind"],
        ["emails", "send_email"],
        "Jobs enqueued.",
    )
    child.write_value(key, 3.0, 0.0)  # type: ignore[no-untyped-call]
    child.close()  # type: ignore[no-untyped-call]
    (tmp_path / "counter_102.db").touch()  # a child that is starting (or was killed then)

    text = (await Metrics(multiprocess_path=str(tmp_path)).render()).decode()

    assert 'jobq_jobs_enqueued_total{kind="send_email",queue="emails"} 3.0' in text


async def test_flow_limits_are_gauges_per_limit_and_kind(app: App, client: Client) -> None:
    from jobq import FlowLimitRequest, JobRequest

    metrics = Metrics()
    try:
        await client.set_limit("both", FlowLimitRequest(max_running=2, rate=5, period_seconds=1))
        await client.enqueue_many([JobRequest(kind="script")] * 3)
        got = samples((await metrics.render(client)).decode())
        for kind in ("concurrency", "rate"):
            labels = frozenset({("limit", "both"), ("kind", kind)})
            assert got[("jobq_limit_waiting", labels)] == 3
            assert got[("jobq_limit_running", labels)] == 0
    finally:
        metrics.close()


async def test_jobs_held_back_are_counted_per_limit_and_kind_of_bound(
    app: App, client: Client
) -> None:
    from tests.support import held_back_scene

    metrics = Metrics()
    try:
        await held_back_scene(client)
        got = samples((await metrics.render(client)).decode())
        held = {
            dict(labels)["limit"] + "/" + dict(labels)["kind"]: value
            for (name, labels), value in got.items()
            if name == "jobq_limit_held_back"
        }
        assert held == {"tenants/concurrency": 4, "paced/rate": 6}
    finally:
        metrics.close()
