"""The prune step of jobq.db.outcomes against the real database (rescue: test_claim.py)."""

import pytest

from jobq import App, JobNotFoundError, JobStatus
from jobq.client import Client
from jobq.db.outcomes import prune_finished
from tests.support import insert_job


async def test_prune_deletes_old_finished_jobs_in_batches(app: App, client: Client) -> None:
    old = [
        await insert_job(client, status="succeeded", finished_offset_s=-8 * 86400) for _ in range(7)
    ]
    fresh = await insert_job(client, status="succeeded", finished_offset_s=-60)
    queued = await insert_job(client)
    assert await prune_finished(client.pool, client.queries, 7 * 86400, batch=3) == 7
    for job_id in old:
        with pytest.raises(JobNotFoundError):
            await client.get(job_id)
    assert (await client.get(fresh)).status is JobStatus.SUCCEEDED
    assert (await client.get(queued)).status is JobStatus.QUEUED
