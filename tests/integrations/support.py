"""Helpers of the integration tests."""

from __future__ import annotations

import uuid

from jobq import JobStatus
from jobq.client import Client
from tests.support import wait_for


async def job_count(client: Client) -> int:
    return len((await client.list_jobs(limit=500)).jobs)


async def succeeded(client: Client, job_id: uuid.UUID) -> None:
    """Wait (with a deadline) until a real worker ran the job to success."""

    async def done() -> bool:
        return (await client.get(job_id)).status is JobStatus.SUCCEEDED

    await wait_for(done, timeout=20)
