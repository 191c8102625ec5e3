"""Enqueue and the idempotency rules of SPEC §3, on a real database."""

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest

from jobq import (
    App,
    IdempotencyConflictError,
    InvalidRequestError,
    IsolationConflictError,
    JobStatus,
    PayloadTooLargeError,
    UnknownKindError,
)
from jobq.client import Client
from jobq.job_request import JobRequest


async def count_jobs(client: Client) -> int:
    return int(await client.pool.fetchval(f'SELECT count(*) FROM "{client.settings.schema}".jobs'))


async def test_enqueue_fills_the_defaults(app: App, client: Client) -> None:
    job = await app.enqueue("script", {"action": "ok"})
    assert job.status is JobStatus.QUEUED
    assert job.queue == "default"
    assert job.priority == 0
    assert job.attempts == 0
    assert job.max_attempts == 3  # the kind's default
    assert job.metadata == {}
    assert job.id.version == 7
    assert job.run_at <= datetime.now(UTC)
    assert (await client.get(job.id)) == job


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "Bad Kind"}, "kind"),
        ({"kind": "script", "queue": "UPPER"}, "queue"),
        ({"kind": "script", "priority": 40000}, "priority"),
        ({"kind": "script", "max_attempts": 0}, "max_attempts"),
        ({"kind": "script", "payload": []}, "payload"),
        ({"kind": "script", "payload": {"a": "nul\x00"}}, "payload"),
        ({"kind": "script", "run_at": "2030-01-01T00:00:00"}, "run_at"),
        ({"kind": "script", "run_at": "1969-12-31T23:00:00Z"}, "run_at"),
        ({"kind": "script", "idempotency_key": ""}, "idempotency_key"),
        ({"kind": "script", "surprise": 1}, "surprise"),
    ],
)
async def test_invalid_requests_name_the_field_and_store_nothing(
    app: App, client: Client, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await app.enqueue_many([fields])
    assert any(field in e.loc for e in info.value.errors), info.value.errors
    assert await count_jobs(client) == 0


async def test_unknown_kind_lists_the_known_kinds(app: App, client: Client) -> None:
    with pytest.raises(UnknownKindError) as info:
        await app.enqueue("nope")
    assert "script" in str(info.value) and "noop" in str(info.value)


async def test_payload_over_the_limit(app: App, client: Client) -> None:
    big = {"blob": "x" * (client.settings.max_payload_bytes + 1)}
    with pytest.raises(PayloadTooLargeError):
        await app.enqueue("script", big)


async def test_replay_returns_the_same_job(app: App, client: Client) -> None:
    first = await client.enqueue(JobRequest(kind="script", payload={"a": 1}, idempotency_key="k"))
    again = await client.enqueue(JobRequest(kind="script", payload={"a": 1}, idempotency_key="k"))
    assert not first.replayed and again.replayed
    assert again.job.id == first.job.id
    assert await count_jobs(client) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"payload": {"x": 1, "y": 2}}, {"payload": {"y": 2, "x": 1.0}}),
        ({"run_at": "2030-01-01T00:00:00Z"}, {"run_at": "2030-01-01T02:00:00+02:00"}),
        ({"payload": {"n": [1, 2.5]}}, {"payload": {"n": [1.0, 2.50]}}),
    ],
)
async def test_same_request_is_compared_by_value(
    client: Client, a: dict[str, Any], b: dict[str, Any]
) -> None:
    base = {"kind": "script", "idempotency_key": "same"}
    first = await client.enqueue(JobRequest.model_validate(base | a))
    second = await client.enqueue(JobRequest.model_validate(base | b))
    assert second.replayed and second.job.id == first.job.id


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"payload": {"x": 1}}, {"payload": {"x": 2}}),
        ({}, {"queue": "default"}),  # omitted equals only omitted
        ({"priority": 0}, {}),
        ({"max_attempts": 2}, {"max_attempts": 3}),
    ],
)
async def test_same_key_with_a_different_request_is_refused(
    client: Client, a: dict[str, Any], b: dict[str, Any]
) -> None:
    base = {"kind": "script", "idempotency_key": "diff"}
    await client.enqueue(JobRequest.model_validate(base | a))
    with pytest.raises(IdempotencyConflictError):
        await client.enqueue(JobRequest.model_validate(base | b))
    assert await count_jobs(client) == 1


async def test_fifty_concurrent_enqueues_with_one_key_create_one_job(client: Client) -> None:
    request = JobRequest(kind="script", payload={"n": 1}, idempotency_key="race")
    results = await asyncio.gather(*(client.enqueue(request) for _ in range(50)))
    assert len({r.job.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert await count_jobs(client) == 1


async def test_batch_returns_jobs_in_request_order(app: App, client: Client) -> None:
    jobs = await app.enqueue_many([{"kind": "script", "payload": {"i": i}} for i in range(20)])
    assert [j.payload["i"] for j in jobs] == list(range(20))
    assert [j.id for j in jobs] == sorted(j.id for j in jobs)


async def test_batch_is_all_or_nothing_and_names_the_bad_index(app: App, client: Client) -> None:
    items: list[dict[str, Any]] = [{"kind": "script"} for _ in range(5)]
    items[3] = {"kind": "unknown"}
    with pytest.raises(UnknownKindError) as info:
        await app.enqueue_many(items)
    assert info.value.errors[0].loc == ("jobs", 3, "kind")
    assert await count_jobs(client) == 0


async def test_batch_replays_items_in_place_and_fails_whole_on_a_mismatch(
    client: Client,
) -> None:
    existing = await client.enqueue(JobRequest(kind="script", idempotency_key="a"))
    results = await client.enqueue_many(
        [
            JobRequest(kind="script", payload={"new": 1}),
            JobRequest(kind="script", idempotency_key="a"),
            JobRequest(kind="script", idempotency_key="b"),
            JobRequest(kind="script", idempotency_key="b"),
        ]
    )
    assert [r.replayed for r in results] == [False, True, False, True]
    assert results[1].job.id == existing.job.id
    assert results[2].job.id == results[3].job.id
    before = await count_jobs(client)
    with pytest.raises(IdempotencyConflictError) as info:
        await client.enqueue_many(
            [JobRequest(kind="script"), JobRequest(kind="script", priority=5, idempotency_key="a")]
        )
    assert info.value.index == 1
    assert await count_jobs(client) == before


async def test_two_items_with_one_key_must_match(client: Client) -> None:
    with pytest.raises(IdempotencyConflictError) as info:
        await client.enqueue_many(
            [
                JobRequest(kind="script", idempotency_key="k", payload={"a": 1}),
                JobRequest(kind="script", idempotency_key="k", payload={"a": 2}),
            ]
        )
    assert info.value.index == 1


async def test_enqueue_inside_the_callers_transaction(app: App, client: Client) -> None:
    conn = await asyncpg.connect(client.url)
    try:
        async with conn.transaction():
            job = await app.enqueue("script", connection=conn)
            assert await count_jobs(client) == 0  # not visible before commit
        assert (await client.get(job.id)).id == job.id
        tx = conn.transaction()
        await tx.start()
        rolled = await app.enqueue("script", connection=conn)
        await tx.rollback()
        assert await client.queries.job_get(client.pool, rolled.id) is None
    finally:
        await conn.close()


async def test_key_conflict_under_repeatable_read_is_a_clear_error(
    app: App, client: Client
) -> None:
    conn = await asyncpg.connect(client.url)
    try:
        async with conn.transaction(isolation="repeatable_read"):
            await conn.fetchval("SELECT 1")  # take the snapshot now
            await app.enqueue("script", idempotency_key="rr")  # committed by another session
            with pytest.raises(IsolationConflictError):
                await app.enqueue("script", idempotency_key="rr", connection=conn)
    finally:
        await conn.close()


async def test_one_notify_per_queue_per_batch(app: App, client: Client) -> None:
    heard: list[str] = []
    conn = await asyncpg.connect(client.url)
    try:
        got = asyncio.Event()

        def on_notify(*args: Any) -> None:
            heard.append(args[3])
            got.set()

        await conn.add_listener(client.queries.enqueue_channel, on_notify)
        items: list[dict[str, Any]] = [{"kind": "script", "queue": q} for q in ["a", "b"] * 50]
        items.append(
            {"kind": "script", "queue": "later", "run_at": datetime.now(UTC) + timedelta(hours=1)}
        )
        await app.enqueue_many(items)
        await asyncio.wait_for(got.wait(), 5)
        # A marker notification proves every earlier one was delivered.
        await client.pool.execute("SELECT pg_notify($1, 'marker')", client.queries.enqueue_channel)

        async def marker_seen() -> bool:
            return "marker" in heard

        from tests.support import wait_for

        await wait_for(marker_seen)
        assert sorted(heard) == ["a", "b", "marker"]
    finally:
        await conn.close()


async def test_run_at_is_stored_as_an_instant(app: App, client: Client) -> None:
    tz = timezone(timedelta(hours=5))
    when = datetime(2031, 5, 1, 12, 0, tzinfo=tz)
    job = await app.enqueue("script", run_at=when)
    assert job.run_at == when
    assert job.to_dict()["run_at"] == "2031-05-01T07:00:00Z"
