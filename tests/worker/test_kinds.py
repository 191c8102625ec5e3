"""Two workers with different apps on one database: each claims only the kinds it registers.

One is `jobq worker` with no --app (the demo app), the other runs a user's app in
this process, as in issue 14: the demo worker used to claim the user's jobs and
fail them as unknown. A kind that neither registers stays queued, unspent, and
is counted as `unclaimable` by GET /v1/queues and `jobq queues --json`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobq import App, JobContext, JobStatus, Settings
from jobq.client import Client
from jobq.worker.runtime import Worker
from tests.api.support import http_client
from tests.cli.run import jobq
from tests.support import insert_job, wait_for
from tests.worker.support import all_status
from tests.worker.test_worker_process import worker_process

pytestmark = pytest.mark.slow


def user_app(settings: Settings) -> App:
    """A user's app: kinds the demo app does not have."""
    app = App(settings)

    @app.task("fetch_price")
    async def fetch_price(ctx: JobContext, payload: dict[str, Any]) -> None:
        return None

    @app.task("send_invoice")
    def send_invoice(ctx: JobContext, payload: dict[str, Any]) -> None:
        return None

    return app


async def test_each_job_runs_only_on_a_worker_that_registers_its_kind(
    client: Client, settings: Settings
) -> None:
    mine = user_app(settings)
    # Oldest first: were kinds not filtered by the claim, these would be taken first.
    strangers = [
        await insert_job(client, kind="nobody_knows", run_at_offset_s=-60) for _ in range(3)
    ]
    demo_jobs = [await insert_job(client, kind="noop") for _ in range(20)]
    user_jobs = await mine.enqueue_many(
        [{"kind": ("fetch_price", "send_invoice")[i % 2], "payload": {"i": i}} for i in range(20)]
    )
    user_client = Client(client.pool, settings, mine, url=client.url)
    user_worker = Worker(mine.registry, user_client)
    async with worker_process(settings, "--concurrency", "4") as demo:
        task = asyncio.create_task(user_worker.run())
        try:
            ids = demo_jobs + [j.id for j in user_jobs]
            await wait_for(lambda: all_status(client, ids, JobStatus.SUCCEEDED), timeout=30)
            kinds_of = {w.id: set(w.kinds or ()) for w in await client.workers()}
            assert kinds_of[user_worker.id] == {"fetch_price", "send_invoice"}
            (demo_id,) = set(kinds_of) - {user_worker.id}
            assert "noop" in kinds_of[demo_id] and "fetch_price" not in kinds_of[demo_id]

            # While both live: the strangers are visible as jobs nobody can run.
            async with http_client(mine, client) as http:
                listed = (await http.get("/v1/queues")).json()["queues"]
            assert [(q["name"], q["unclaimable"]) for q in listed] == [("default", 3)]
            cli = await jobq(settings, "queues", "--json")
            assert cli.code == 0, cli.err
            assert [(q["name"], q["unclaimable"]) for q in cli.json()["queues"]] == [("default", 3)]
        finally:
            user_worker.request_stop()
            await asyncio.wait_for(task, 30)
        assert not demo.said("not register"), demo.output()

    for job_id in ids:
        job = await client.get(job_id)
        assert (job.attempts, job.last_error) == (1, None)
        (attempt,) = await client.attempts(job_id)
        assert attempt.outcome == "succeeded"
        assert job.kind in kinds_of[attempt.worker_id or ""], (job.kind, attempt.worker_id)
    assert {(await client.get(j)).kind for j in demo_jobs} == {"noop"}
    for job_id in strangers:
        job = await client.get(job_id)
        assert (job.status, job.attempts, job.last_error) == (JobStatus.QUEUED, 0, None)
        assert await client.attempts(job_id) == []
