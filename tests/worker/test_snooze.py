"""A handler returning jobq.Snooze, end to end: a real worker puts the job back in its
queue without spending an attempt, and runs it again once its run_at comes."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from jobq import App, JobContext, JobStatus, Settings, Snooze, events
from jobq.client import Client
from jobq.testing import DrainResult, drain
from tests.api.support import http_client
from tests.support import wait_for
from tests.worker.support import build_worker_app, is_status, running

RUNS: Counter[uuid.UUID] = Counter()


@pytest.fixture
def app(settings: Settings) -> App:
    app = build_worker_app(settings)

    @app.task("snooze_then_ok", max_attempts=1)
    async def snooze_then_ok(ctx: JobContext, payload: dict[str, Any]) -> Any:
        """Snoozes `times` times for `seconds`, then succeeds."""
        RUNS[ctx.job.id] += 1
        if RUNS[ctx.job.id] <= int(payload["times"]):
            return Snooze(timedelta(seconds=float(payload["seconds"])))
        return None

    @app.task("snooze_after_cancel")
    async def snooze_after_cancel(ctx: JobContext, payload: dict[str, Any]) -> Snooze:
        await ctx.cancel_event.wait()
        return Snooze(60)

    @app.task("bad_snooze", max_attempts=1)
    async def bad_snooze(ctx: JobContext, payload: dict[str, Any]) -> Snooze:
        return Snooze(payload["seconds"])

    return app


async def test_a_one_attempt_job_snoozes_three_times_and_still_succeeds(
    app: App, client: Client, captured: list[events.Event]
) -> None:
    job = await app.enqueue("snooze_then_ok", {"times": 3, "seconds": 0})
    assert await drain(app) == DrainResult(succeeded=1, snoozed=3)
    final = await client.get(job.id)
    assert final.status is JobStatus.SUCCEEDED
    assert final.attempts == 1 and final.max_attempts == 1
    history = await client.attempts(job.id)
    assert [(a.seq, a.outcome) for a in history] == [
        (1, "snoozed"),
        (2, "snoozed"),
        (3, "snoozed"),
        (4, "succeeded"),
    ]
    assert all(a.error is None for a in history)
    snoozes = [e for e in captured if isinstance(e, events.JobSnoozed)]
    assert snoozes == [events.JobSnoozed("default", "snooze_then_ok", 0.0)] * 3
    finished = [e.outcome for e in captured if isinstance(e, events.JobFinished)]
    assert finished == ["succeeded"]


async def test_a_snoozed_job_runs_again_once_the_delay_has_passed(app: App, client: Client) -> None:
    job = await app.enqueue("snooze_then_ok", {"times": 1, "seconds": 0.3})
    async with running(app, client):
        await wait_for(lambda: is_status(client, job.id, JobStatus.SUCCEEDED))
    snoozed, succeeded = await client.attempts(job.id)
    assert (snoozed.outcome, succeeded.outcome) == ("snoozed", "succeeded")
    # The database's clock throughout: run_at was the snooze's write time + 0.3 s,
    # and nothing claims a job before its run_at.
    assert snoozed.finished_at is not None
    assert succeeded.started_at - snoozed.finished_at >= timedelta(seconds=0.3)
    assert (await client.get(job.id)).attempts == 1

    async with http_client(app, client) as http:
        attempts = (await http.get(f"/v1/jobs/{job.id}/attempts")).json()["attempts"]
    assert [a["outcome"] for a in attempts] == ["snoozed", "succeeded"]


async def test_a_snooze_after_a_cancel_request_ends_the_job_cancelled(
    app: App, client: Client
) -> None:
    job = await app.enqueue("snooze_after_cancel")
    async with running(app, client):
        await wait_for(lambda: is_status(client, job.id, JobStatus.RUNNING))
        await client.cancel(job.id)
        await wait_for(lambda: is_status(client, job.id, JobStatus.CANCELLED))
    final = await client.get(job.id)
    assert final.finished_at is not None and final.attempts == 0
    assert [a.outcome for a in await client.attempts(job.id)] == ["snoozed"]


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (-1, "Snooze seconds must be finite, between 0 and 3.1536e+07 (a year), not -1"),
        (40_000_000, "between 0 and 3.1536e+07 (a year), not 40000000"),
        ("soon", "Snooze takes seconds or a timedelta, not str"),
    ],
)
async def test_a_bad_snooze_fails_the_attempt_with_a_clear_error(
    app: App, client: Client, seconds: Any, message: str
) -> None:
    job = await app.enqueue("bad_snooze", {"seconds": seconds})
    assert await drain(app) == DrainResult(failed_permanent=1)
    error = (await client.get(job.id)).last_error
    assert error is not None and error.startswith("ValueError: ") and message in error


async def test_a_long_snooze_leaves_the_job_queued_for_later_and_counts_as_snoozed(
    app: App, client: Client
) -> None:
    job = await app.enqueue("snooze_then_ok", {"times": 1, "seconds": 3600})
    async with running(app, client) as worker:
        await wait_for(lambda: _counted(worker.counts, "snoozed"))
        row = await client.get(job.id)
        assert row.status is JobStatus.QUEUED and row.attempts == 0
        assert row.locked_by is None and row.finished_at is None
        assert row.run_at - row.updated_at == timedelta(hours=1)
    assert worker.counts["interrupted"] == 0


async def _counted(counts: Counter[str], label: str) -> bool:
    return counts[label] > 0
