"""A list filtered by a state that few rows of a queue are in reads those rows, not the
queue's history (migration 0014): the dashboard's filters on a big table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from jobq import JobFilter, JobStatus
from jobq.client import Client
from jobq.db.loader import quote_schema

HISTORY = 30_000  # finished jobs of `reports`; its queued, running and retrying: none
BACKLOG = 3_000  # queued jobs of `emails`

CASES = [
    ("reports", ["queued"]),
    ("reports", ["queued", "running"]),
    ("reports", ["retrying"]),
    (None, ["retrying"]),
    ("emails", ["retrying"]),
]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


@pytest.fixture
async def history(client: Client, database_url: str) -> AsyncIterator[asyncpg.Connection]:
    schema = quote_schema(client.settings.schema)
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        f"INSERT INTO {schema}.jobs (id, queue, kind, payload, status, max_attempts, run_at,"
        " finished_at)"
        " SELECT gen_random_uuid(), 'reports', 'report', '{}', 'succeeded', 5, now(), now()"
        f" FROM generate_series(1, {HISTORY})"
    )
    await conn.execute(
        f"INSERT INTO {schema}.jobs (id, queue, kind, payload, status, max_attempts, run_at)"
        " SELECT gen_random_uuid(), 'emails', 'send', '{}', 'queued', 5, now()"
        f" FROM generate_series(1, {BACKLOG})"
    )
    await conn.execute(f"ANALYZE {schema}.jobs")
    yield conn
    await conn.close()


@pytest.mark.parametrize(("queue", "statuses"), CASES)
async def test_a_state_filter_reads_the_rows_in_that_state_not_the_history(
    client: Client, history: asyncpg.Connection, queue: str | None, statuses: list[str]
) -> None:
    """Each list as `GET /v1/jobs` runs it (its plan made for its filters): no scan
    reads more than a few rows, where the queue's history is 30,000."""
    explained: Any
    async with history.transaction():
        await history.execute(client.queries.sql["job_list_plan_per_call"])
        explained = await history.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {client.queries.sql['job_list']}",
            None,
            statuses,
            queue,
            None,
            50,
            False,
            1_000_000,
        )
    plan = json.loads(explained)[0]["Plan"]
    scans = [n for n in _nodes(plan) if "Scan" in n["Node Type"]]
    read = sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in scans)
    assert read < 100, [(n["Node Type"], n.get("Index Name")) for n in scans]


async def test_the_lists_still_find_the_rows_in_those_states(
    client: Client, history: asyncpg.Connection
) -> None:
    page = await client.list_jobs(
        JobFilter(statuses=(JobStatus.QUEUED,), queue="emails"), summary=True
    )
    assert len(page.jobs) == 50 and {j.status for j in page.jobs} == {JobStatus.QUEUED}
