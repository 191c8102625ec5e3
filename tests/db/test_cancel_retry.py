"""Single and bulk cancel and retry follow one rule: run both over every state and compare."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from jobq import JobStatus
from jobq.client import Client
from jobq.db.loader import quote_schema
from jobq.types import Job, JobFilter
from tests.support import insert_job

# Enough rows that a sequential scan of jobs costs more than an index lookup.
PLAN_ROWS = 20_000

# (status, cancel_requested) of every row a cancel or a retry may meet.
STATES = [
    ("queued", False),
    ("retrying", False),
    ("running", False),
    ("running", True),
    ("succeeded", False),
    ("failed_permanent", False),
    ("cancelled", False),
]


async def _pair(client: Client, status: str, cancel_requested: bool) -> tuple[Job, Job]:
    """Two identical rows in `status`, each of a kind of its own (so a bulk
    filter on kind matches exactly one)."""
    jobs = []
    for _ in range(2):
        job_id = await insert_job(
            client,
            status=status,
            kind=f"k{uuid.uuid4().hex[:8]}",
            attempts=1 if status != "queued" else 0,
            locked_by="w" if status == "running" else None,
            lease_offset_s=30 if status == "running" else None,
            cancel_requested=cancel_requested,
            finished_offset_s=-1
            if status in ("succeeded", "failed_permanent", "cancelled")
            else None,
        )
        jobs.append(await client.get(job_id))
    return jobs[0], jobs[1]


def _effect(before: Job, after: Job) -> dict[str, Any]:
    """What an operation did to a row, in terms that do not depend on its id or clock."""
    return {
        "status": after.status,
        "cancel_requested": after.cancel_requested,
        "attempts": after.attempts,
        "finished": after.finished_at is not None,
        "locked_by": after.locked_by,
        "written": after.updated_at != before.updated_at,
    }


@pytest.mark.parametrize(("status", "cancel_requested"), STATES)
async def test_cancel_and_cancel_many_change_a_row_the_same_way(
    client: Client, status: str, cancel_requested: bool
) -> None:
    one, other = await _pair(client, status, cancel_requested)
    single = await client.queries.job_cancel(client.pool, one.id)
    count = await client.queries.job_cancel_many(client.pool, JobFilter(kind=other.kind))
    assert (single is not None) == (count == 1)
    assert _effect(one, await client.get(one.id)) == _effect(other, await client.get(other.id))


@pytest.mark.parametrize(("status", "cancel_requested"), STATES)
async def test_retry_and_retry_many_change_a_row_the_same_way(
    client: Client, status: str, cancel_requested: bool
) -> None:
    one, other = await _pair(client, status, cancel_requested)
    single = await client.queries.job_retry(client.pool, one.id)
    count = await client.queries.job_retry_many(client.pool, JobFilter(kind=other.kind))
    assert (single is not None) == (count == 1)
    assert _effect(one, await client.get(one.id)) == _effect(other, await client.get(other.id))


async def test_cancelling_a_job_whose_cancel_is_already_requested_writes_nothing(
    client: Client,
) -> None:
    job_id = await insert_job(
        client, status="running", attempts=1, locked_by="w", lease_offset_s=30
    )
    first = await client.cancel(job_id)
    assert first.status is JobStatus.RUNNING and first.cancel_requested
    again = await client.cancel(job_id)  # answered as it stands (the API's 202), not a 409
    assert again == first
    assert await client.cancel_many(JobFilter(kind="script")) == 0
    assert await client.get(job_id) == first


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


@pytest.mark.parametrize(
    ("block", "status"), [("job_cancel", "queued"), ("job_retry", "cancelled")]
)
async def test_the_single_job_form_is_an_index_lookup_under_a_generic_plan(
    client: Client, database_url: str, block: str, status: str
) -> None:
    """asyncpg prepares statements, and PostgreSQL may switch a prepared statement to
    a generic plan, planned without knowing whether $1 is NULL: the one-job form must
    still find its row by the primary key, never by a scan of the table."""
    schema = quote_schema(client.settings.schema)
    job_id = await insert_job(client, status=status, finished_offset_s=-1)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f"INSERT INTO {schema}.jobs (id, queue, kind, payload, status, max_attempts, run_at)"
            f" SELECT gen_random_uuid(), 'q' || g % 10, 'k' || g % 50, '{{}}', $1, 5, now()"
            f" FROM generate_series(1, {PLAN_ROWS}) AS g",
            status,
        )
        await conn.execute(f"ANALYZE {schema}.jobs")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE probe AS {client.queries.sql[block]}")
        # job_cancel also takes the enqueue channel, for the dependents it releases.
        channels = "'c', 'e'" if block == "job_cancel" else "'c'"
        transaction = conn.transaction()
        await transaction.start()
        try:
            explained = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) "
                f"EXECUTE probe('{job_id}', NULL, NULL, NULL, {channels})"
            )
        finally:
            await transaction.rollback()
    finally:
        await conn.close()
    nodes = _nodes(json.loads(explained)[0]["Plan"])
    ran = [n for n in nodes if n.get("Actual Loops", 0) > 0]
    assert not [n for n in ran if n["Node Type"] == "Seq Scan"], nodes
    lookups = [n for n in ran if n.get("Index Name") == "jobs_pkey"]
    # The id branch of `target`, and the UPDATE's own scan of jobs by the ids it found.
    assert any(n["Index Cond"] == "(id = $1)" for n in lookups), nodes
    # (PostgreSQL 17 names the array `(InitPlan 1).col1` where 15 says `$0`.)
    assert any(n["Index Cond"].startswith("(id = ANY (") for n in lookups), nodes
    updated = next(n for n in ran if n["Node Type"] == "ModifyTable")
    assert updated["Actual Rows"] == 1
