"""The heartbeat renews the leases of the jobs a worker holds, but not of a job
whose outcome has waited over a lease to be written (a statement stuck on a
connection that will never answer): that lease lapses, and the job runs again."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

import pytest

from jobq import App
from jobq.client import Client
from jobq.handlers import JobContext
from jobq.worker.heartbeat import Heartbeat
from jobq.worker.runner import RunningJob
from tests.support import insert_job


async def _held(client: Client, job_id: uuid.UUID, settled_ago: float | None) -> RunningJob:
    job = await client.get(job_id)
    running = RunningJob(job, None, JobContext(job, "w1", None), datetime.now(UTC))
    if settled_ago is not None:
        running.settled = True
        running.settled_at = time.monotonic() - settled_ago
    return running


async def _lease_left(client: Client, job_id: uuid.UUID) -> float:
    left = await client.pool.fetchval(
        f'SELECT extract(epoch FROM lease_expires_at - now()) FROM "{client.settings.schema}".jobs '
        "WHERE id = $1",
        job_id,
    )
    return float(left)


async def test_an_outcome_stuck_for_over_a_lease_lets_its_lease_lapse(
    app: App, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    lease = client.settings.lease_seconds
    ids = [
        await insert_job(client, status="running", attempts=1, locked_by="w1", lease_offset_s=1)
        for _ in range(3)
    ]
    executing, written_soon, stuck = ids
    held = {
        executing: await _held(client, executing, None),
        written_soon: await _held(client, written_soon, 0.0),
        stuck: await _held(client, stuck, 2 * lease),
    }

    async def register() -> None:
        return None

    heartbeat = Heartbeat(
        client,
        "w1",
        1.0,
        held=lambda: held,
        in_flight=lambda: len(held),
        request_cancel=lambda r: None,
        mark_lost=lambda r: None,
        register=register,
    )
    with caplog.at_level(logging.WARNING, logger="jobq.worker"):
        await heartbeat.run_once()
        await heartbeat.run_once()
    assert await _lease_left(client, executing) > lease - 5
    assert await _lease_left(client, written_soon) > lease - 5
    assert await _lease_left(client, stuck) <= 1  # not renewed: the rescuer will take it
    stuck_lines = [r for r in caplog.records if "outcome not written" in r.getMessage()]
    assert [r.job_id for r in stuck_lines] == [str(stuck)]  # type: ignore[attr-defined]
