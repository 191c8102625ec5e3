"""Progress reported by a running handler, end to end: a real worker and its heartbeat,
the database row, the HTTP API and the CLI."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from jobq import App, JobContext, JobStatus, Settings
from jobq.client import Client
from tests.api.support import http_client
from tests.cli.run import ok
from tests.support import wait_for
from tests.worker.support import build_worker_app, is_status, running


@dataclass
class Script:
    """What the test and its handlers share (they run in the same event loop)."""

    reported: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def app(settings: Settings, script: Script) -> App:
    app = build_worker_app(settings)

    async def hold(ctx: JobContext) -> None:
        """Wait for the test's release, or for a cancel (a lost lease asks for one)."""
        release = asyncio.ensure_future(script.release.wait())
        cancel = asyncio.ensure_future(ctx.cancel_event.wait())
        await asyncio.wait({release, cancel}, return_when=asyncio.FIRST_COMPLETED)
        release.cancel()
        cancel.cancel()

    @app.task("report_burst")
    async def report_burst(ctx: JobContext, payload: dict[str, Any]) -> None:
        n = int(payload["n"])
        for i in range(1, n + 1):
            await ctx.progress(i / n, {"done": i})
            script.calls += 1
            await asyncio.sleep(0)  # the heartbeat may run between any two reports
        script.reported.set()
        await hold(ctx)

    @app.task("report_and_wait")
    async def report_and_wait(ctx: JobContext, payload: dict[str, Any]) -> None:
        await ctx.progress(0.4, {"step": "resize"})
        script.reported.set()
        await hold(ctx)
        # Reported after the last heartbeat: the outcome's write carries it.
        await ctx.progress(0.9, {"step": "upload"})

    @app.task("sync_reports")
    def sync_reports(ctx: JobContext, payload: dict[str, Any]) -> None:
        for i in range(1, 101):
            ctx.set_progress(i / 100)

    @app.task("bad_progress", max_attempts=1)
    async def bad_progress(ctx: JobContext, payload: dict[str, Any]) -> None:
        await ctx.progress(payload["fraction"], payload.get("details"))

    return app


@pytest.fixture
async def notes(settings: Settings, client: Client) -> AsyncIterator[list[str]]:
    """The payloads of the events channel's notifications, as they arrive: a
    job's state changes (the trigger) and its progress writes (the heartbeat), for
    the jobs a test records as watched (`watched`; migration 0016)."""
    seen: list[str] = []
    conn = await asyncpg.connect(settings.database_url)
    await conn.add_listener(client.queries.events_channel, lambda *a: seen.append(a[3]))
    try:
        yield seen
    finally:
        await conn.close()


async def watched(client: Client, job_id: uuid.UUID) -> None:
    """Record the job as a wait hub does: its changes are notified from now on."""
    await client.queries.job_watch(client.pool, [job_id], "test", 60.0)


async def progress_of(client: Client, job_id: uuid.UUID) -> float | None:
    return (await client.get(job_id)).progress


async def test_a_thousand_reports_are_written_once_per_heartbeat_tick(
    app: App, client: Client, script: Script, notes: list[str]
) -> None:
    job = await app.enqueue("report_burst", {"n": 1000})
    await watched(client, job.id)
    async with running(app, client) as worker:
        await asyncio.wait_for(script.reported.wait(), 30)
        worker.heartbeat.trigger()
        await wait_for(lambda: _is(progress_of(client, job.id), 1.0))
        script.release.set()
        await wait_for(lambda: is_status(client, job.id, JobStatus.SUCCEEDED))
        writes, ticks = worker.heartbeat.progress_writes, worker.heartbeat.ticks
    assert script.calls == 1000
    # At most one write per tick (the 30 s lease's ticks are 10 s apart, so a
    # handful at most), whatever the call rate; the database saw each one.
    assert 1 <= writes <= ticks < 1000
    # One notification per write, besides the claim's and the success's state changes
    # (delivered asynchronously: waited for, then checked for no more).
    await wait_for(lambda: _heard(notes, str(job.id), writes + 2))
    assert notes.count(str(job.id)) == writes + 2
    final = await client.get(job.id)
    assert final.progress == 1.0 and final.progress_details == {"done": 1000}


async def _heard(notes: list[str], payload: str, count: int) -> bool:
    return notes.count(payload) >= count


async def _is(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def test_progress_shows_over_http_and_the_cli_and_the_last_report_outlives_the_job(
    app: App, client: Client, settings: Settings, script: Script, notes: list[str]
) -> None:
    job = await app.enqueue("report_and_wait")
    await watched(client, job.id)
    async with running(app, client) as worker:
        await asyncio.wait_for(script.reported.wait(), 30)
        assert (await client.get(job.id)).progress is None  # not before a heartbeat
        worker.heartbeat.trigger()
        await wait_for(lambda: _is(progress_of(client, job.id), 0.4))
        # The claim's state change, then the write.
        await wait_for(lambda: _heard(notes, str(job.id), 2))
        assert notes == [str(job.id)] * 2

        async with http_client(app, client) as http:
            got = (await http.get(f"/v1/jobs/{job.id}")).json()
            assert got["progress"] == 0.4 and got["progress_details"] == {"step": "resize"}
            assert got["progress_at"].endswith("Z")
            listed = (await http.get("/v1/jobs", params={"summary": "true"})).json()["jobs"]
            assert listed[0]["progress"] == 0.4 and "progress_details" not in listed[0]
            full = (await http.get("/v1/jobs")).json()["jobs"]
            assert full[0]["progress_details"] == {"step": "resize"}

        as_json = (await ok(settings, "get", str(job.id), "--json")).json()
        assert as_json["progress"] == 0.4 and as_json["progress_details"] == {"step": "resize"}
        text = (await ok(settings, "get", str(job.id))).out
        assert "40% (0.4)" in text and '"step": "resize"' in text
        assert "running 40%" in (await ok(settings, "list")).out

        script.release.set()
        await wait_for(lambda: is_status(client, job.id, JobStatus.SUCCEEDED))
    final = await client.get(job.id)
    assert final.progress == 0.9 and final.progress_details == {"step": "upload"}
    assert final.progress_at is not None and final.finished_at is not None
    assert final.progress_at == final.finished_at  # written by the outcome's statement


async def test_a_sync_handler_reports_from_its_thread(app: App, client: Client) -> None:
    job = await app.enqueue("sync_reports")
    async with running(app, client):
        await wait_for(lambda: is_status(client, job.id, JobStatus.SUCCEEDED))
    assert (await client.get(job.id)).progress == 1.0


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"fraction": 1.5}, "progress must be a finite number from 0 to 1, not 1.5"),
        ({"fraction": -0.1}, "progress must be a finite number from 0 to 1, not -0.1"),
        ({"fraction": "half"}, "progress must be a number from 0 to 1, not str"),
        ({"fraction": True}, "progress must be a number from 0 to 1, not bool"),
        ({"fraction": 0.5, "details": ["a"]}, "progress details must be a JSON object, not list"),
        (
            {"fraction": 0.5, "details": {"blob": "x" * 5000}},
            "progress details take 5011 bytes as JSON; at most 4096 are kept",
        ),
    ],
)
async def test_a_bad_report_fails_the_attempt_with_a_clear_error(
    app: App, client: Client, payload: dict[str, Any], message: str
) -> None:
    job = await app.enqueue("bad_progress", payload)
    async with running(app, client):
        await wait_for(lambda: is_status(client, job.id, JobStatus.FAILED_PERMANENT))
    final = await client.get(job.id)
    assert final.last_error == f"ValueError: {message}"
    assert final.progress is None


async def test_progress_is_not_written_once_the_lease_is_lost(
    app: App, client: Client, script: Script
) -> None:
    job = await app.enqueue("report_and_wait")
    async with running(app, client) as worker:
        await asyncio.wait_for(script.reported.wait(), 30)
        # Another worker holds the job now, as after a rescue and a new claim (which
        # clears the progress columns; a tick that ran before wrote to the old attempt).
        await client.pool.execute(
            f"""UPDATE "{client.settings.schema}".jobs
                SET locked_by = 'thief', attempts = attempts + 1, attempt_seq = attempt_seq + 1,
                    progress = NULL, progress_details = NULL, progress_at = NULL
                WHERE id = $1""",
            job.id,
        )
        worker.heartbeat.trigger()
        await wait_for(lambda: _released(worker, job.id))
        # The handler saw the cancel and returned, reporting 0.9: dropped with its outcome.
        await wait_for(lambda: _not_executing(worker, job.id))
        writes = worker.heartbeat.progress_writes
    row = await client.get(job.id)
    assert row.locked_by == "thief" and row.status is JobStatus.RUNNING
    assert row.progress is None and row.progress_at is None
    assert writes <= 1  # at most the one tick that may have run before the theft


async def _released(worker: Any, job_id: uuid.UUID) -> bool:
    return job_id not in worker.held


async def _not_executing(worker: Any, job_id: uuid.UUID) -> bool:
    return job_id not in worker.executing
