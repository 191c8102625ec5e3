"""Helpers shared by the tests: a scriptable app, factories, waiting on conditions."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import pytest

from jobq import App, Job, JobContext, JobStatus, Settings
from jobq.client import Client
from jobq.db.outcomes import PolicyFor, rescue_expired_leases
from jobq.db.records import Claimed, Finished, FinishRow
from jobq.db.stats import rollup_minutes
from jobq.ids import uuid7
from jobq.stats import SETTLE_SECONDS


def build_test_app(settings: Settings) -> App:
    """An app with a scriptable handler, as Oban's test worker:
    payload {"action": "ok" | "fail" | "sleep" | "cancel", "seconds": float}; any
    action returns payload["result"] (None when absent) unless it fails."""
    app = App(settings)

    @app.task("script", max_attempts=3)
    async def script(ctx: JobContext, payload: dict[str, Any]) -> Any:
        action = payload.get("action", "ok")
        if action == "fail":
            raise RuntimeError(payload.get("message", "scripted failure"))
        if action == "sleep":
            await ctx.sleep(float(payload.get("seconds", 60)))
        if action == "cancel":
            from jobq import Cancelled

            return Cancelled
        return payload.get("result")

    @app.task("noop")
    async def noop(ctx: JobContext, payload: dict[str, Any]) -> None:
        return None

    return app


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - a deadline for the condition, not for a call
    interval: float = 0.02,
) -> None:
    """Poll an async condition until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if await condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def insert_job(
    client: Client,
    *,
    status: str = "queued",
    kind: str = "script",
    queue: str = "default",
    payload: dict[str, Any] | None = None,
    attempts: int = 0,
    max_attempts: int = 3,
    priority: int = 0,
    run_at_offset_s: float = 0.0,
    locked_by: str | None = None,
    lease_offset_s: float | None = None,
    cancel_requested: bool = False,
    finished_offset_s: float | None = None,
) -> uuid.UUID:
    """A factory that writes a job row in any state, bypassing the API
    (e.g. "running, lease expired two minutes ago": lease_offset_s=-120)."""
    import json

    job_id = uuid7()
    s = f'"{client.settings.schema}"'
    await client.pool.execute(
        f"""INSERT INTO {s}.jobs (id, queue, kind, payload, status, priority, attempts,
               max_attempts, run_at, locked_by, lease_expires_at, cancel_requested,
               attempt_seq, started_at, finished_at)
            VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8,
                    now() + make_interval(secs => $9::float8), $10,
                    CASE WHEN $11::float8 IS NULL THEN NULL
                         ELSE now() + make_interval(secs => $11::float8) END,
                    $12, $7, CASE WHEN $5 = 'running' THEN now() END,
                    CASE WHEN $13::float8 IS NULL THEN NULL
                         ELSE now() + make_interval(secs => $13::float8) END)""",
        job_id,
        queue,
        kind,
        json.dumps(payload or {}),
        status,
        priority,
        attempts,
        max_attempts,
        run_at_offset_s,
        locked_by,
        lease_offset_s,
        cancel_requested,
        finished_offset_s,
    )
    return job_id


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


REQUIRE_ALL = os.environ.get("JOBQ_TESTS_REQUIRE_ALL") == "1"


def skip_unless_required(reason: str, *, module: bool = False) -> NoReturn:
    """Skip a test whose tool is missing here, or fail it where everything must run
    (CI sets JOBQ_TESTS_REQUIRE_ALL=1, so a missing tool cannot pass as a skip)."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (JOBQ_TESTS_REQUIRE_ALL=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


async def claim_jobs(
    client: Client,
    worker_id: str,
    queues: Sequence[str] | None = None,
    limit: int = 1,
    kinds: Sequence[str] | None = None,
) -> list[Claimed]:
    """Claim as a worker does: `job_finish_and_claim` with no outcomes to carry
    (of `kinds` only; None: any kind)."""
    _, claimed = await finish_and_claim(client, (), worker_id, queues, limit, kinds)
    return claimed


async def finish_and_claim(
    client: Client,
    rows: Sequence[FinishRow],
    worker_id: str,
    queues: Sequence[str] | None,
    limit: int,
    kinds: Sequence[str] | None = None,
) -> tuple[list[Finished], list[Claimed]]:
    """A worker's round trip: write `rows` and claim up to `limit` jobs of `kinds`."""
    return await client.queries.job_finish_and_claim(
        client.pool, rows, worker_id, queues, limit, client.settings.lease_seconds, kinds
    )


async def finish_rows(client: Client, rows: Sequence[FinishRow]) -> list[Finished]:
    """Write outcomes as the worker's completer does (fenced; lost claims are skipped)."""
    return await client.queries.job_finish_many(client.pool, rows)


async def rescue(client: Client, policy_for: PolicyFor) -> list[Finished]:
    """One run of the rescuer over expired leases."""
    return await rescue_expired_leases(client.pool, client.queries, policy_for)


def make_job(**changes: Any) -> Job:
    """A running `Job` value with every field set, for tests that need no database."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "queue": "default",
        "kind": "k",
        "payload": {"n": 1},
        "metadata": {},
        "status": JobStatus.RUNNING,
        "priority": 0,
        "attempts": 1,
        "max_attempts": 3,
        "run_at": now,
        "idempotency_key": None,
        "cancel_requested": False,
        "last_error": None,
        "locked_by": "w",
        "created_at": now,
        "updated_at": now,
        "started_at": now,
        "finished_at": None,
    }
    fields.update(changes)
    return Job(**fields)


async def insert_history(
    conn: Any,
    schema: str,
    *,
    queue: str,
    status: str,
    finished_at: datetime | None,
    failed_attempts: Sequence[tuple[str, datetime]] = (),
) -> uuid.UUID:
    """A factory for the charts' rollup: a job in `status` that finished at
    `finished_at` (None: not finished, e.g. `retrying`), with a history of
    `failed_attempts` ((outcome, finished_at) each). An attempt at `finished_at`
    is the one that ended the job, as the finishing statement writes both."""
    job_id = uuid7()
    s = f'"{schema}"'
    await conn.execute(
        f"""INSERT INTO {s}.jobs (id, queue, kind, payload, status, max_attempts, run_at,
               attempts, attempt_seq, finished_at)
            VALUES ($1, $2, 'script', '{{}}'::jsonb, $3, 5, now(), $4, $4, $5)""",
        job_id,
        queue,
        status,
        len(failed_attempts),
        finished_at,
    )
    for seq, (outcome, at) in enumerate(failed_attempts, start=1):
        await conn.execute(
            f"""INSERT INTO {s}.job_attempts (job_id, seq, started_at, finished_at, outcome)
                VALUES ($1, $2, $3::timestamptz - interval '1 second', $3, $4)""",
            job_id,
            seq,
            at,
            outcome,
        )
    return job_id


async def roll_up(client: Client, *, settle_seconds: float = SETTLE_SECONDS) -> None:
    """Run the charts' rollup until it has counted every settled minute (a first
    run backfills a day an hour per run). settle_seconds=-60 counts the current
    minute too, at once."""
    for _ in range(30):
        plan = await rollup_minutes(client.pool, client.queries, settle_seconds=settle_seconds)
        if plan.count_to == plan.count_from:
            return
    raise AssertionError("the rollup did not catch up in 30 runs")


async def held_back_scene(client: Client) -> None:
    """Key t:1 at its bound (1 running, 3 waiting), key t:2 with room for one of its
    2, one unkeyed job; the queue's rate window already full (2 of 2 starts)."""
    from jobq import FlowLimitRequest

    s = f'"{client.settings.schema}"'
    await client.set_limit("tenants", FlowLimitRequest(key_pattern="t:%", max_running=1))
    await client.set_limit("paced", FlowLimitRequest(queue="default", rate=2, period_seconds=60))
    keys = ["t:1", "t:1", "t:1", "t:2", "t:2", None]
    for key in keys:
        job_id = await insert_job(client)
        await client.pool.execute(
            f"UPDATE {s}.jobs SET concurrency_key = $2 WHERE id = $1", job_id, key
        )
    running = await insert_job(client, status="running")
    await client.pool.execute(f"UPDATE {s}.jobs SET concurrency_key = 't:1' WHERE id = $1", running)
    await client.pool.execute(
        f"INSERT INTO {s}.flow_rate_windows (limit_name, key, starts) "
        "VALUES ('paced', '', ARRAY[now(), now()])"
    )
