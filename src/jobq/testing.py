"""Testing your own handlers, in your own test suite (as Oban.Testing, River's rivertest).

Run a handler on a payload, without a database, and look at its outcome (a
success carries the handler's return value, `Succeeded(result)`):

    from jobq import Succeeded, Failed
    from jobq.testing import run_task

    def test_welcome_email() -> None:
        assert run_task(app, "send_email", {"to": "a@example.com"}) == Succeeded()
        assert isinstance(run_task(app, "send_email", {}), Failed)

    # In an async test: `await run_task_async(app, ...)`.

Drain a queue in a test that has a database: a worker in burst mode runs every
runnable job (in this event loop) and returns counts by outcome:

    async def test_signup_enqueues_a_welcome_email() -> None:
        await signup(app, "a@example.com")
        result = await drain(app)
        assert result.succeeded == 1 and result.total == 1

A failed job with attempts left is counted `retried` and scheduled by its
retry policy; a drain runs it again only if it is runnable before the drain
ends (a small JOBQ_RETRY_BASE_MS in tests), so call `drain` again if needed.
A handler's `Snooze` is counted `snoozed`; a drain runs the job again if the
snooze is over before the drain ends (`Snooze(0)` always is).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from jobq.errors import UnknownKindError
from jobq.handlers import JobContext
from jobq.ids import uuid7
from jobq.job_request import DEFAULT_QUEUE, dump_json
from jobq.types import Job, JobStatus, Outcome
from jobq.worker.options import DEFAULT_CONCURRENCY, WorkerOptions
from jobq.worker.runner import storable

if TYPE_CHECKING:
    from jobq.app import App

TESTING_WORKER_ID = "jobq.testing"


def run_task(
    app: App, kind: str, payload: Mapping[str, Any] | None = None, **options: Any
) -> Outcome:
    """Run `kind`'s handler once on `payload` and return its Outcome, for sync
    tests; takes the keyword options of `run_task_async` (an async test awaits
    that instead)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_task_async(app, kind, payload, **options))
    raise RuntimeError("run_task() cannot run inside an event loop: await run_task_async()")


async def run_task_async(
    app: App,
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    attempt: int = 1,
    cancel: bool = False,
    metadata: Mapping[str, Any] | None = None,
    queue: str = DEFAULT_QUEUE,
    pool: asyncpg.Pool | None = None,
    job_id: uuid.UUID | None = None,
) -> Outcome:
    """Run `kind`'s handler once on `payload` and return its Outcome.

    `attempt` is the job's `attempts` as the handler sees it (1 on a first
    run); `cancel=True` runs it with the cancel flag already set; `job_id`
    pins the job's id (default: a new UUIDv7); `pool` is what `ctx.pool` holds
    (default None: no database). The payload goes through JSON first, as it
    would through the database."""
    spec = app.tasks.get(kind)
    if spec is None:
        raise UnknownKindError(kind, app.kinds())
    now = datetime.now(UTC)
    job = Job(
        id=job_id or uuid7(),
        queue=queue,
        kind=kind,
        payload=json.loads(dump_json(dict(payload or {}))),
        metadata=json.loads(dump_json(dict(metadata or {}))),
        status=JobStatus.RUNNING,
        priority=0,
        attempts=attempt,
        max_attempts=max(spec.max_attempts, attempt),
        run_at=now,
        idempotency_key=None,
        cancel_requested=cancel,
        last_error=None,
        locked_by=TESTING_WORKER_ID,
        created_at=now,
        updated_at=now,
        started_at=now,
        finished_at=None,
    )
    ctx = JobContext(job, TESTING_WORKER_ID, pool)
    if cancel:
        ctx.cancel_event.set()
    # What the worker does with the outcome before writing it: a result that
    # cannot be stored (not JSON, too big) fails the attempt here too.
    return storable(await spec.run(ctx, job), app.settings.max_result_bytes)


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What a drain did, by outcome (SPEC §8's labels)."""

    succeeded: int = 0
    retried: int = 0
    failed_permanent: int = 0
    cancelled: int = 0
    # Attempts that returned Snooze (the job went back to its queue).
    snoozed: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.retried + self.failed_permanent + self.cancelled + self.snoozed


async def drain(
    app: App, *, queues: list[str] | None = None, concurrency: int = DEFAULT_CONCURRENCY
) -> DrainResult:
    """Run the queue (or `queues`) until no runnable job is left; count outcomes."""
    from jobq.worker.runtime import Worker

    client = await app.client()
    options = WorkerOptions(concurrency=concurrency, queues=queues, burst=True)
    worker = Worker(app.registry, client, options)
    await worker.run()
    counts = worker.counts
    return DrainResult(
        succeeded=counts["succeeded"],
        retried=counts["retried"],
        failed_permanent=counts["failed_permanent"],
        cancelled=counts["cancelled"],
        snoozed=counts["snoozed"],
    )
