"""Migration 0016: a change of a job's state is notified only while a wait hub
records the job as watched, so the claims and finishes of jobs no one watches
run no NOTIFY (which would line their commits up one behind another)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from jobq.client import Client
from jobq.db.outcomes import finish_row
from jobq.retry import RetryPolicy
from jobq.types import Succeeded
from tests.support import claim_jobs, finish_rows, insert_job, wait_for

PROBE = "probe"


@pytest.fixture
async def heard(client: Client) -> AsyncIterator[list[str]]:
    notes: list[str] = []
    conn = await asyncpg.connect(client.settings.database_url)
    await conn.add_listener(client.queries.events_channel, lambda *a: notes.append(a[3]))
    try:
        yield notes
    finally:
        await conn.close()


async def _all_heard(client: Client, notes: list[str]) -> list[str]:
    """What was notified before now: a probe sent after the changes committed
    arrives after their notifications, so once it is heard they all were."""
    await client.queries.listener_probe(client.pool, client.queries.events_channel, PROBE)

    async def probe_heard() -> bool:
        return PROBE in notes

    await wait_for(probe_heard)
    return [n for n in notes if n != PROBE]


async def _claim_and_finish(client: Client) -> uuid.UUID:
    (claimed,) = await claim_jobs(client, "w1")
    await finish_rows(client, [finish_row(claimed.job, "w1", Succeeded(None), RetryPolicy(1, 1))])
    return claimed.job.id


async def test_a_job_no_one_watches_is_claimed_and_finished_without_a_notification(
    client: Client, heard: list[str]
) -> None:
    await insert_job(client)
    await _claim_and_finish(client)
    assert await _all_heard(client, heard) == []


async def test_a_watched_job_is_notified_until_its_record_expires(
    client: Client, heard: list[str]
) -> None:
    watched = await insert_job(client)
    await client.queries.job_watch(client.pool, [watched], "hub-a", 60.0)
    assert await _claim_and_finish(client) == watched
    assert await _all_heard(client, heard) == [str(watched)] * 2  # running, succeeded
    heard.clear()
    expired = await insert_job(client)
    await client.queries.job_watch(client.pool, [expired], "hub-a", -1.0)
    assert await _claim_and_finish(client) == expired
    assert await _all_heard(client, heard) == []
