"""The suite's jobq app: kind ``chaos`` sleeps ``ms`` then records the attempt in a side table.

The side table (``<schema>.chaos_runs``) is the independent evidence: each attempt whose
handler reached its end inserts (job, attempt, worker, pid, started, finished) in its own
transaction, before the worker acknowledges the job. So a row means "the handler ran to
completion"; the job's status and ``job_attempts`` are what jobq recorded about it. An
attempt whose acknowledgement was lost or fenced leaves a row but no success.

Workers load it with ``--app tests.chaos.app:app`` (the repository root on PYTHONPATH).
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import UTC, datetime
from typing import Any

from jobq import App, JobContext, Settings

SIDE_TABLE = "chaos_runs"
KIND = "chaos"
MAX_ATTEMPTS = 100  # faults may fail attempts (the side write itself); none may run out


def side_table_ddl(schema: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS "{schema}".{SIDE_TABLE} (
        job_id uuid NOT NULL, attempt integer NOT NULL, worker_id text NOT NULL,
        pid integer NOT NULL, host text NOT NULL,
        started_at timestamptz NOT NULL, finished_at timestamptz NOT NULL)"""


def build_chaos_app(settings: Settings | None = None) -> App:
    chaos = App(settings)
    schema = chaos.settings.schema
    insert = (
        f'INSERT INTO "{schema}".{SIDE_TABLE} '
        "(job_id, attempt, worker_id, pid, host, started_at, finished_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    host = os.environ.get("JOBQ_CHAOS_HOST", socket.gethostname())

    @chaos.task(KIND, max_attempts=MAX_ATTEMPTS)
    async def run(ctx: JobContext, payload: dict[str, Any]) -> None:
        started = datetime.now(UTC)
        await asyncio.sleep(float(payload.get("ms", 0)) / 1000)
        assert ctx.pool is not None
        # Its own statement and transaction; a failure here fails the attempt (retried).
        await ctx.pool.execute(
            insert,
            ctx.job.id,
            ctx.attempt,
            ctx.worker_id,
            os.getpid(),
            host,
            started,
            datetime.now(UTC),
        )

    return chaos


app = build_chaos_app()
