"""Single and bulk cancel and retry follow one rule: run both over every state and compare."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from jobq import JobStatus
from jobq.client import Client
from jobq.types import Job, JobFilter
from tests.support import insert_job

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
