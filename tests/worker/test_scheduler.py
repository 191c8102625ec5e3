"""The scheduler service in a worker: code schedules upserted at start, fired, observed."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from jobq import App, JobContext, JobStatus, Settings
from jobq.client import Client
from jobq.metrics import Metrics
from jobq.worker.scheduler import Scheduler
from tests.conftest import drop_schema
from tests.support import wait_for
from tests.worker.support import running

SEEN: list[dict[str, Any]] = []


def periodic_app(settings: Settings) -> App:
    app = App(settings)

    @app.periodic(every="1s", payload={"n": 1})
    @app.task("beat")
    async def beat(ctx: JobContext, payload: dict[str, Any]) -> None:
        SEEN.append(dict(ctx.job.metadata))

    return app


def sample(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_a_worker_upserts_its_code_schedules_fires_them_and_counts_it(
    settings: Settings, database_url: str
) -> None:
    app = periodic_app(settings)
    metrics = Metrics()
    client = await app.client()
    SEEN.clear()
    try:
        async with running(app, client):
            await wait_for(lambda: _exists(client, "beat"))  # upserted at the first tick
            schedule = await client.schedules.get("beat")
            assert schedule.source == "code" and schedule.every_seconds == 1
            await wait_for(lambda: _ran(client, 2), timeout=15)
        text = (await metrics.render()).decode()
    finally:
        metrics.close()
        await app.close()
        await drop_schema(database_url, settings.schema)
    assert len(SEEN) >= 2
    assert all(m["schedule"] == "beat" and m["fire_at"].endswith("Z") for m in SEEN)
    fires = sample(text, "jobq_schedule_fires_total", schedule="beat")
    assert fires >= 2
    assert sample(text, "jobq_schedule_lag_seconds_count") == fires
    assert sample(text, "jobq_jobs_enqueued_total", queue="default", kind="beat") == fires


async def _exists(client: Client, name: str) -> bool:
    return name in [s.name for s in await client.schedules.list()]


async def _ran(client: Client, count: int) -> bool:
    jobs = (await client.list_jobs()).jobs
    done = [j for j in jobs if j.kind == "beat" and j.status is JobStatus.SUCCEEDED]
    return len(done) >= count


async def test_run_once_syncs_first_and_fires_nothing_when_nothing_is_due(
    app: App, client: Client
) -> None:
    scheduler = Scheduler(client, app.registry, "w-test")
    await scheduler.run_once()  # the default app defines no schedule
    assert scheduler.synced and scheduler.fired_total == 0
    assert await client.schedules.list() == []
