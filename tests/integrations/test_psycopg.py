"""psycopg 3 (sync and async) and psycopg2 as `connection=`: the caller's transaction."""

from __future__ import annotations

import asyncio

import psycopg
import psycopg2
import pytest

from jobq import (
    App,
    IdempotencyConflictError,
    InvalidRequestError,
    JobStatus,
    PayloadTooLargeError,
    Settings,
    UnknownKindError,
)
from jobq.client import Client
from jobq.worker.runtime import Worker
from tests.integrations.support import job_count, succeeded


async def test_an_async_psycopg_connection_enqueues_in_its_transaction(
    app: App, client: Client, worker: Worker, database_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await app.enqueue("noop", connection=conn)
        await conn.rollback()
        assert await job_count(client) == 0

        job = await app.enqueue("script", {"result": "done"}, connection=conn)
        assert job.status is JobStatus.QUEUED and job.payload == {"result": "done"}
        assert await job_count(client) == 0  # not visible before COMMIT
        await conn.commit()
    await succeeded(client, job.id)
    assert await app.result(job.id, timeout=5) == "done"


async def test_a_sync_psycopg_connection_enqueues_in_its_transaction(
    app: App, client: Client, worker: Worker, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        app.sync.enqueue("noop", connection=conn)
        conn.rollback()
        assert await job_count(client) == 0
        job = app.sync.enqueue("noop", {"n": 1}, connection=conn)
        conn.commit()
    await succeeded(client, job.id)


async def test_a_psycopg2_connection_enqueues_in_its_transaction(
    app: App, client: Client, worker: Worker, database_url: str
) -> None:
    conn = psycopg2.connect(database_url)
    try:
        app.sync.enqueue("noop", connection=conn)
        conn.rollback()
        assert await job_count(client) == 0
        [first, second] = app.sync.enqueue_many(
            [{"kind": "noop", "idempotency_key": "a"}, {"kind": "noop"}], connection=conn
        )
        conn.commit()
    finally:
        conn.close()
    await succeeded(client, first.id)
    await succeeded(client, second.id)


async def test_idempotency_replays_and_conflicts_as_on_asyncpg(
    app: App, client: Client, database_url: str
) -> None:
    original = await app.enqueue("noop", {"a": 1}, idempotency_key="k")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        replayed = await app.enqueue("noop", {"a": 1}, idempotency_key="k", connection=conn)
        assert replayed.id == original.id
        with pytest.raises(IdempotencyConflictError) as conflict:
            await app.enqueue("noop", {"a": 2}, idempotency_key="k", connection=conn)
        assert conflict.value.errors[0].loc == ("idempotency_key",)
        await conn.rollback()
    with psycopg.connect(database_url) as sync_conn:
        again = app.sync.enqueue("noop", {"a": 1}, idempotency_key="k", connection=sync_conn)
        assert again.id == original.id
        # First of each key in a batch: the twin replays the first item's new job.
        one, twin = app.sync.enqueue_many(
            [{"kind": "noop", "idempotency_key": "n"}, {"kind": "noop", "idempotency_key": "n"}],
            connection=sync_conn,
        )
        assert one.id == twin.id


async def test_a_conflicting_batch_undoes_itself_and_leaves_the_transaction_usable(
    app: App, client: Client, database_url: str
) -> None:
    await app.enqueue("noop", {"a": 1}, idempotency_key="held")
    with psycopg.connect(database_url) as conn:
        kept = app.sync.enqueue("noop", {"kept": True}, connection=conn)
        with pytest.raises(IdempotencyConflictError) as conflict:
            app.sync.enqueue_many(
                [
                    {"kind": "noop"},
                    {"kind": "noop", "payload": {"a": 2}, "idempotency_key": "held"},
                ],
                connection=conn,
            )
        assert conflict.value.errors[0].loc == ("jobs", 1, "idempotency_key")
        assert conn.execute("SELECT 1").fetchone() == (1,)  # still usable
        conn.commit()
    jobs = (await client.list_jobs()).jobs
    assert sorted(j.id for j in jobs if j.idempotency_key is None) == [kept.id]


async def test_a_keyed_batch_on_an_autocommit_connection_gets_its_own_transaction(
    app: App, client: Client, database_url: str
) -> None:
    await app.enqueue("noop", {"a": 1}, idempotency_key="held")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        with pytest.raises(IdempotencyConflictError):
            await app.enqueue_many(
                [
                    {"kind": "noop"},
                    {"kind": "noop", "payload": {"a": 2}, "idempotency_key": "held"},
                ],
                connection=conn,
            )
        assert await job_count(client) == 1  # the first item was undone
        await app.enqueue_many([{"kind": "noop", "idempotency_key": "new"}], connection=conn)
    assert await job_count(client) == 2  # committed on its own


async def test_bad_input_raises_the_usual_errors_before_any_sql(
    app: App, client: Client, settings: Settings, database_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("SELECT 1")
        with pytest.raises(UnknownKindError):
            await app.enqueue("nope", connection=conn)
        too_big = {"x": "y" * settings.max_payload_bytes}
        with pytest.raises(PayloadTooLargeError) as error:
            await app.enqueue("noop", too_big, connection=conn)
        assert error.value.errors[0].loc == ("payload",)
        job = await app.enqueue("noop", connection=conn)  # the transaction is fine
        await conn.commit()
    assert (await client.get(job.id)).kind == "noop"


async def test_the_wake_up_is_delivered_at_commit_and_not_on_rollback(
    app: App, client: Client, database_url: str
) -> None:
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await client.pool.acquire()
    channel = client.queries.enqueue_channel

    def hear(*args: object) -> None:
        heard.put_nowait(str(args[-1]))

    await listener.add_listener(channel, hear)
    try:
        with psycopg.connect(database_url) as conn:
            app.sync.enqueue("noop", queue="q1", connection=conn)
            conn.rollback()
            app.sync.enqueue("noop", queue="q2", connection=conn)
            await listener.execute("SELECT 1")  # a round trip: any early NOTIFY is in
            assert heard.empty()
            conn.commit()
        assert await asyncio.wait_for(heard.get(), 10) == "q2"
    finally:
        await listener.remove_listener(channel, hear)
        await client.pool.release(listener)


async def test_a_client_side_binding_cursor_as_django_uses(
    app: App, client: Client, database_url: str
) -> None:
    with psycopg.connect(database_url, cursor_factory=psycopg.ClientCursor) as conn:
        with conn.cursor() as cursor:
            first = app.sync.enqueue("noop", {"p": "100%s"}, idempotency_key="c", connection=cursor)
            [again, other] = app.sync.enqueue_many(
                [
                    {"kind": "noop", "payload": {"p": "100%s"}, "idempotency_key": "c"},
                    {"kind": "noop"},
                ],
                connection=cursor,
            )
        assert again.id == first.id and other.payload == {}
        conn.commit()
    assert (await client.get(first.id)).payload == {"p": "100%s"}


async def test_a_unique_duplicate_on_a_psycopg_connection_answers_the_holder(
    client: Client, settings: Settings
) -> None:
    from jobq import JobRequest
    from jobq.transactional import enqueue_on_async_cursor

    async with await psycopg.AsyncConnection.connect(settings.database_url or "") as conn:
        async with conn.cursor() as cursor:
            request = JobRequest(kind="noop", unique=True)
            first, again = await enqueue_on_async_cursor(
                cursor, [request, request], settings, None, batch=True
            )
        await conn.commit()
    assert not first.duplicate and again.duplicate and again.job.id == first.job.id


async def test_depends_on_is_refused_on_a_psycopg_connection_rather_than_dropped(
    app: App, client: Client, database_url: str
) -> None:
    # Dependencies are written by the workflows' statements, on jobq's pool or an
    # asyncpg connection: another driver's enqueue must not insert the job as if
    # it depended on nothing.
    first = await app.enqueue("noop")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        with pytest.raises(InvalidRequestError, match="depends_on"):
            await app.enqueue("noop", depends_on=[first.id], connection=conn)
    with psycopg.connect(database_url) as sync_conn, pytest.raises(InvalidRequestError):
        app.sync.enqueue("noop", depends_on=[first.id], connection=sync_conn)
    assert await job_count(client) == 1
    # Without a connection the sync client runs jobq's own pool, where it works.
    dependent = app.sync.enqueue("noop", depends_on=[first.id])
    assert dependent.status is JobStatus.PENDING


async def test_debounce_replaces_the_waiting_job_on_psycopg_and_psycopg2(
    app: App, client: Client, settings: Settings, database_url: str
) -> None:
    from jobq import DebounceOpts, JobRequest
    from jobq.transactional import enqueue_on_async_cursor

    opts = DebounceOpts(key="k", delay_seconds=60)
    requests = [JobRequest(kind="noop", payload={"n": n}, debounce=opts) for n in range(3)]
    async with await psycopg.AsyncConnection.connect(settings.database_url or "") as conn:
        async with conn.cursor() as cursor:
            results = await enqueue_on_async_cursor(cursor, requests, settings, None, batch=True)
        await conn.commit()
    assert [r.replaced for r in results] == [False, True, True]
    assert len({r.job.id for r in results}) == 1 and results[0].job.payload == {"n": 2}
    with psycopg2.connect(database_url) as sync_conn:
        job = app.sync.enqueue("noop", {"n": 3}, debounce=opts, connection=sync_conn)
    assert job.id == results[0].job.id and job.payload == {"n": 3}
    assert await job_count(client) == 1
