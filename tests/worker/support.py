"""Helpers shared by the worker tests (no tests here): settings for fast runs, an app
with scripted kinds on top of the demo ones, and a worker running in the background."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from jobq import App, Cancelled, JobContext, JobStatus, Settings
from jobq.client import Client
from jobq.demo import build_app
from jobq.worker.options import WorkerOptions
from jobq.worker.runtime import Worker
from tests.support import wait_for

# Handler-side observations, keyed by job id (the handlers run in this process).
CANCEL_SEEN: dict[uuid.UUID, float] = {}
RELEASE_SYNC = threading.Event()


def worker_settings(database_url: str, schema: str, **overrides: Any) -> Settings:
    """Short retries, polls and graces so the tests run in seconds."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "schema": schema,
        "lease_seconds": 30.0,
        "retry_base_ms": 20,
        "retry_cap_ms": 100,
        "poll_interval_ms": 100,
        "cancel_grace_seconds": 0.5,
        "shutdown_grace_seconds": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


def build_worker_app(settings: Settings) -> App:
    """The demo app plus kinds these tests script."""
    app = build_app(settings)

    @app.task("fail_always", max_attempts=3)
    async def fail_always(ctx: JobContext, payload: dict[str, Any]) -> None:
        raise RuntimeError("always fails")

    @app.task("record")
    async def record(ctx: JobContext, payload: dict[str, Any]) -> None:
        assert ctx.pool is not None
        await ctx.pool.execute(
            f'INSERT INTO "{settings.schema}".executions (job_id, worker_id) VALUES ($1, $2)',
            ctx.job.id,
            ctx.worker_id,
        )

    @app.task("until_cancel")
    async def until_cancel(ctx: JobContext, payload: dict[str, Any]) -> Any:
        await ctx.cancel_event.wait()
        CANCEL_SEEN[ctx.job.id] = time.monotonic()
        return Cancelled

    @app.task("sync_ignores_cancel")
    def sync_ignores_cancel(ctx: JobContext, payload: dict[str, Any]) -> None:
        RELEASE_SYNC.wait(20)

    @app.task("too_slow", timeout=0.2)
    async def too_slow(ctx: JobContext, payload: dict[str, Any]) -> None:
        await asyncio.sleep(30)

    return app


@asynccontextmanager
async def running(app: App, client: Client, **options: Any) -> AsyncIterator[Worker]:
    """A worker running in this event loop, listening, stopped cleanly on exit."""
    worker = Worker(app.registry, client, WorkerOptions(**options))
    task = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: _ready(worker, task))
        yield worker
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 30)


async def _ready(worker: Worker, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return worker.listener.listening


async def is_status(client: Client, job_id: uuid.UUID, status: JobStatus) -> bool:
    return (await client.get(job_id)).status is status


async def all_status(client: Client, ids: list[uuid.UUID], status: JobStatus) -> bool:
    return all([(await client.get(i)).status is status for i in ids])


def worker_command(*args: str) -> list[str]:
    """`jobq worker ...` as a subprocess of this interpreter."""
    return [sys.executable, "-m", "jobq", "worker", *args]


def subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(
        {
            "DATABASE_URL": settings.database_url or "",
            "JOBQ_SCHEMA": settings.schema,
            "JOBQ_RETRY_BASE_MS": str(settings.retry_base_ms),
            "JOBQ_RETRY_CAP_MS": str(settings.retry_cap_ms),
            "JOBQ_POLL_INTERVAL_MS": str(settings.poll_interval_ms),
            "JOBQ_LEASE_SECONDS": str(settings.lease_seconds),
            "JOBQ_SHUTDOWN_GRACE_SECONDS": str(settings.shutdown_grace_seconds),
            "JOBQ_CANCEL_GRACE_SECONDS": str(settings.cancel_grace_seconds),
        }
    )
    env.update(extra)
    return env


# For `jobq worker --app tests.worker.support:blocking_app` (settings from the environment).
blocking_app = App()


@blocking_app.task("block")
def block(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A sync handler that ignores cancels and shutdowns alike."""
    time.sleep(float(payload.get("seconds", 60)))


# For `jobq worker --app tests.worker.support:periodic_app`: a schedule every 2 s.
periodic_app = App()


@periodic_app.periodic(every="2s", name="every-2s", payload={"from": "code"})
@periodic_app.task("tick")
async def tick(ctx: JobContext, payload: dict[str, Any]) -> None:
    return None
