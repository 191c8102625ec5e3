"""Workflows and batches on `jobq worker` processes: a SIGKILL in the middle of a
branch, and batch callbacks on four processes, checked from the database."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from jobq import App, JobContext, JobStatus, Settings
from jobq.client import Client
from jobq.worker.runtime import Worker
from tests.support import wait_for
from tests.worker.support import is_status, worker_settings
from tests.worker.test_worker_process import worker_process
from tests.worker.workflow_app import app as workflow_app
from tests.worker.workflow_app import summary

pytestmark = pytest.mark.slow

APP_REF = "tests.worker.workflow_app:app"
LEASE = 2.0


@pytest.fixture
def settings(database_url: str, schema: str) -> Settings:
    return worker_settings(database_url, schema, lease_seconds=LEASE)


@pytest.fixture
def app(settings: Settings) -> App:
    workflow_app.configure(settings)
    return workflow_app


async def _running(client: Client, job_id: Any) -> bool:
    return (await client.get(job_id)).status is JobStatus.RUNNING


async def _attempts(client: Client, job_id: Any) -> list[tuple[str, str | None]]:
    return [(a.outcome or "", a.worker_id) for a in await client.attempts(job_id)]


async def test_a_sigkill_in_the_middle_of_a_branch_reruns_it_and_the_join_runs_once(
    app: App, client: Client, settings: Settings
) -> None:
    submitted = await (
        app.workflow()
        .add("a", "step", {"value": "A"})
        .add("b", "step", {"value": "B", "seconds": 120}, after=["a"])
        .add("c", "step", {"value": "C"}, after=["a"])
        .add("d", "summary", after=["b", "c"])
        .submit()
    )
    jobs = submitted.jobs
    async with worker_process(settings, "--app", APP_REF) as victim:
        await wait_for(lambda: _running(client, jobs["b"].id), timeout=30)
        await wait_for(lambda: is_status(client, jobs["c"].id, JobStatus.SUCCEEDED), timeout=30)
        victim_id = (await client.get(jobs["b"].id)).locked_by
        victim.process.send_signal(signal.SIGKILL)
        await victim.wait(within=10)
    assert (await client.get(jobs["d"].id)).status is JobStatus.PENDING
    # The survivor: the same kinds, but its `step` does not sleep; its own leases
    # are long, so a loaded machine cannot make it lose one as well.
    quick = App(settings.with_overrides(lease_seconds=30.0))

    @quick.task("step")
    async def step(ctx: JobContext, payload: dict[str, Any]) -> Any:
        return payload.get("value")

    quick.register("summary", summary)
    survivor = Worker(quick.registry, await quick.client())
    task = asyncio.create_task(survivor.run())
    try:
        d = await app.wait(jobs["d"].id, timeout=30)
    finally:
        survivor.request_stop()
        await asyncio.wait_for(task, 10)
        await quick.close()
    assert d.status is JobStatus.SUCCEEDED
    assert d.result == {"members": 2, "succeeded": 2, "results": {"b": "B", "c": "C"}}
    assert await _attempts(client, jobs["b"].id) == [
        ("lease_expired", victim_id),
        ("succeeded", survivor.id),
    ]
    assert await _attempts(client, jobs["d"].id) == [("succeeded", survivor.id)]


BATCHES = 100
MEMBERS = 50


async def test_each_batch_callback_is_enqueued_and_run_exactly_once_on_four_processes(
    app: App, client: Client, settings: Settings
) -> None:
    callbacks = []
    unneeded = []  # on_failure: every member succeeds, so each is cancelled, never run
    for b in range(BATCHES):
        batch = app.batch(f"batch-{b}")
        for m in range(MEMBERS):
            batch.add("step", {"value": m})
        submitted = await batch.on_finish("summary").on_failure("summary").submit()
        callbacks.append(submitted.jobs["on_finish"].id)
        unneeded.append(submitted.jobs["on_failure"].id)
    # A long lease: on a loaded machine a 2 s lease can expire under a busy
    # worker, and a rescued callback would (rightly) run twice.
    async with worker_process(
        settings, "--app", APP_REF, "--processes", "4", JOBQ_LEASE_SECONDS="30"
    ) as proc:
        await wait_for(lambda: _all_succeeded(client, callbacks), timeout=240)
        proc.process.send_signal(signal.SIGTERM)
        assert await proc.wait(within=30) == 0, proc.output()
    schema = client.settings.schema
    # From the database: one on_finish per batch, each claimed and run once, after
    # all 50 members; every job of every batch ended.
    rows = await client.pool.fetch(
        f"""SELECT w.name, n.job_id, j.status, j.result,
                   (SELECT count(*) FROM "{schema}".job_attempts AS a WHERE a.job_id = j.id)
                       AS attempts,
                   (SELECT count(*) FROM "{schema}".job_dependencies AS d
                    WHERE d.dependent_id = j.id AND d.resolved) AS resolved
            FROM "{schema}".workflows AS w
            JOIN "{schema}".workflow_nodes AS n ON n.workflow_id = w.id AND n.name = 'on_finish'
            JOIN "{schema}".jobs AS j ON j.id = n.job_id"""
    )
    assert len(rows) == BATCHES
    assert sorted(r["job_id"] for r in rows) == sorted(callbacks)
    for r in rows:
        assert r["status"] == "succeeded" and r["attempts"] == 1 and r["resolved"] == MEMBERS
    counts = await client.pool.fetch(f'SELECT status, count(*) FROM "{schema}".jobs GROUP BY 1')
    assert {r["status"]: r["count"] for r in counts} == {
        "succeeded": BATCHES * (MEMBERS + 1),
        "cancelled": BATCHES,
    }
    never_ran = await client.pool.fetchval(
        f"""SELECT count(*) FROM "{schema}".jobs AS j WHERE j.id = ANY($1)
            AND j.status = 'cancelled' AND j.attempts = 0
            AND NOT EXISTS (SELECT 1 FROM "{schema}".job_attempts AS a WHERE a.job_id = j.id)""",
        unneeded,
    )
    assert never_ran == BATCHES
    results = [await client.get(i) for i in callbacks[:3]]
    assert all(j.result["members"] == MEMBERS == j.result["succeeded"] for j in results)


async def _all_succeeded(client: Client, ids: list[Any]) -> bool:
    schema = client.settings.schema
    done = await client.pool.fetchval(
        f"""SELECT count(*) FROM "{schema}".jobs WHERE id = ANY($1) AND status = 'succeeded'""",
        ids,
    )
    return bool(done == len(ids))
