"""The prune step of jobq.db.outcomes against the real database (rescue: test_claim.py)."""

import uuid

import pytest

from jobq import App, JobNotFoundError, JobRequest, JobStatus
from jobq.client import Client
from jobq.db.loader import quote_schema
from jobq.db.outcomes import prune_finished, prune_workflows
from jobq.errors import WorkflowNotFoundError
from jobq.graph import GraphNode
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


async def _workflow(client: Client, name: str, *, ended_days_ago: float | None) -> uuid.UUID:
    """A two-node workflow made 8 days ago; its jobs ended `ended_days_ago`, or still wait."""
    nodes = [
        GraphNode("a", JobRequest(kind="script")),
        GraphNode("b", JobRequest(kind="script"), after=("a",)),
    ]
    submitted = await client.workflows.submit(nodes, name=name)
    assert submitted.workflow_id is not None
    schema = quote_schema(client.settings.schema)
    async with client.pool.acquire() as conn:
        await conn.execute(
            f"UPDATE {schema}.workflows SET created_at = now() - interval '8 days' WHERE id = $1",
            submitted.workflow_id,
        )
        if ended_days_ago is not None:
            await conn.execute(
                f"UPDATE {schema}.jobs SET status = 'succeeded',"
                " finished_at = now() - make_interval(days => $2) WHERE id = ANY ($1)",
                [job.id for job in submitted.jobs.values()],
                ended_days_ago,
            )
    return submitted.workflow_id


async def test_a_workflow_goes_once_the_prune_took_all_its_jobs(client: Client) -> None:
    gone = await _workflow(client, "gone", ended_days_ago=8)
    recent = await _workflow(client, "recent", ended_days_ago=1)  # jobs within the retention
    waiting = await _workflow(client, "waiting", ended_days_ago=None)
    assert await prune_finished(client.pool, client.queries, 7 * 86400) == 2
    assert await prune_workflows(client.pool, client.queries, 7 * 86400, batch=1) == 1
    with pytest.raises(WorkflowNotFoundError):
        await client.workflows.get(gone)
    for kept in (recent, waiting):
        assert len((await client.workflows.get(kept)).nodes) == 2
