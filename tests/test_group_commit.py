"""Group commit (jobq.group_commit): concurrent single enqueues share one insert and
one commit, and every caller still gets its own job, idempotency answer and error."""

import asyncio
from typing import Any

import asyncpg
import pytest

from jobq import (
    App,
    ConfigError,
    IdempotencyConflictError,
    PayloadTooLargeError,
    Settings,
    UnknownKindError,
)
from jobq.client import Client, EnqueueResult
from jobq.job_request import JobRequest
from tests.support import wait_for

# A deadline so that a caller left waiting fails the test instead of hanging it.
NO_HANG_SECONDS = 60.0


def script(i: int, **fields: Any) -> JobRequest:
    return JobRequest(kind="script", payload={"i": i}, **fields)


async def gather(client: Client, requests: list[JobRequest]) -> list[Any]:
    """Enqueue each request from its own coroutine, all at once; answers or errors."""
    calls = [client.enqueue(r) for r in requests]
    async with asyncio.timeout(NO_HANG_SECONDS):
        return await asyncio.gather(*calls, return_exceptions=True)


async def stored_payloads(client: Client) -> list[int]:
    rows = await client.pool.fetch(
        f"SELECT (payload->>'i')::int AS i FROM \"{client.settings.schema}\".jobs ORDER BY 1"
    )
    return [r["i"] for r in rows]


async def transactions(client: Client) -> int:
    """How many transactions wrote the jobs (rows of one commit share their xmin)."""
    sql = f'SELECT count(DISTINCT xmin::text) FROM "{client.settings.schema}".jobs'
    return int(await client.pool.fetchval(sql))


async def test_many_concurrent_callers_each_get_their_own_job(client: Client) -> None:
    results = await gather(client, [script(i) for i in range(300)])
    assert all(isinstance(r, EnqueueResult) and not r.replayed for r in results), results
    assert [r.job.payload["i"] for r in results] == list(range(300))
    assert len({r.job.id for r in results}) == 300
    assert await stored_payloads(client) == list(range(300))
    # Gathered: far fewer commits than callers (the first flush takes all 300).
    assert await transactions(client) < 300


@pytest.mark.parametrize("in_flight", [1, 4])
async def test_callers_in_loops_never_wait_for_a_flush_that_ended(
    client: Client, in_flight: int
) -> None:
    """Callers resume when their flush answers and enqueue again at once, in the
    turn of the loop where that flush ends: each must start or join a flush."""
    assert client._group is not None
    client._group._max_in_flight = in_flight

    async def caller(c: int) -> list[int]:
        return [(await client.enqueue(script(c * 100 + i))).job.payload["i"] for i in range(25)]

    async with asyncio.timeout(NO_HANG_SECONDS):
        answered = await asyncio.gather(*(caller(c) for c in range(16)))
    assert sorted(i for chunk in answered for i in chunk) == await stored_payloads(client)
    assert len(await stored_payloads(client)) == 400


async def test_replay_and_conflict_in_one_gathered_batch(client: Client) -> None:
    earlier = await client.enqueue(script(0, idempotency_key="held"))
    results = await gather(
        client,
        [
            script(0, idempotency_key="held"),  # replays the job in the table
            script(1, idempotency_key="held"),  # the key holds another request
            script(2, idempotency_key="fresh"),  # goes in
            script(2, idempotency_key="fresh"),  # its twin in this batch: replays it
            script(3, idempotency_key="fresh"),  # the twin's key, another request
            script(4),  # no key
        ],
    )
    replay, conflict, fresh, twin, twin_conflict, plain = results
    assert isinstance(replay, EnqueueResult) and replay.replayed
    assert replay.job.id == earlier.job.id
    assert isinstance(conflict, IdempotencyConflictError)
    assert conflict.index is None  # a single enqueue names no batch item
    assert isinstance(fresh, EnqueueResult) and not fresh.replayed
    assert isinstance(twin, EnqueueResult) and twin.replayed and twin.job.id == fresh.job.id
    assert isinstance(twin_conflict, IdempotencyConflictError)
    assert isinstance(plain, EnqueueResult) and not plain.replayed
    assert await stored_payloads(client) == [0, 2, 4]


async def test_one_invalid_request_among_valid_ones(client: Client) -> None:
    too_big = {"blob": "x" * (client.settings.max_payload_bytes + 1)}
    requests = [script(i) for i in range(10)]
    requests[3] = JobRequest(kind="nope", payload={"i": 3})
    requests[7] = JobRequest(kind="script", payload=too_big)
    results = await gather(client, requests)
    assert isinstance(results[3], UnknownKindError)
    assert isinstance(results[7], PayloadTooLargeError)
    ok = [i for i in range(10) if i not in (3, 7)]
    assert all(isinstance(results[i], EnqueueResult) for i in ok)
    assert await stored_payloads(client) == ok


async def test_a_row_the_database_refuses_fails_only_its_caller(client: Client) -> None:
    schema = client.settings.schema
    await client.pool.execute(
        f"""
        CREATE FUNCTION "{schema}".refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.payload ? 'refuse' THEN RAISE EXCEPTION 'refused by the test'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_marked BEFORE INSERT ON "{schema}".jobs
            FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_marked();
        """
    )
    requests = [script(i) for i in range(20)]
    requests[5] = JobRequest(kind="script", payload={"i": 5, "refuse": True})
    results = await gather(client, requests)
    assert isinstance(results[5], asyncpg.RaiseError)
    assert all(isinstance(r, EnqueueResult) for i, r in enumerate(results) if i != 5)
    assert await stored_payloads(client) == [i for i in range(20) if i != 5]


async def test_the_connection_killed_mid_flush(client: Client, database_url: str) -> None:
    """The flush's backend is terminated while its insert waits on a row lock: each
    caller gets an error or its job, none hangs, and the table holds exactly the jobs
    answered (one statement: all of the batch or none)."""
    blocker = await asyncpg.connect(database_url)
    try:
        blocking = blocker.transaction()
        await blocking.start()
        # An uncommitted job holding the key: the batch's insert of that key waits.
        await client.enqueue(script(-1, idempotency_key="blocked"), connection=blocker)
        requests = [script(i) for i in range(10)] + [script(10, idempotency_key="blocked")]
        calls = asyncio.ensure_future(gather(client, requests))

        async def flush_backend() -> int | None:
            pid: int | None = await client.pool.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND pid <> $1 AND pid <> pg_backend_pid() AND query LIKE '%INSERT INTO%jobs%'",
                blocker.get_server_pid(),
            )
            return pid

        await wait_for(lambda: _is_set(flush_backend()), timeout=NO_HANG_SECONDS)
        pid = await flush_backend()
        await client.pool.execute("SELECT pg_terminate_backend($1)", pid)
        results = await calls
        await blocking.rollback()
    finally:
        await blocker.close()
    answered = [r.job.payload["i"] for r in results if isinstance(r, EnqueueResult)]
    assert all(isinstance(r, EnqueueResult | Exception) for r in results)
    assert await stored_payloads(client) == sorted(answered)
    assert len(answered) < len(results)  # the batch with the killed flush failed
    # The client goes on: the pool replaced the connection.
    after = await client.enqueue(script(99))
    assert after.job.payload == {"i": 99}


async def _is_set(value: Any) -> bool:
    return (await value) is not None


async def test_a_callers_transaction_is_never_gathered(client: Client) -> None:
    async with client.pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        inside, outside = await asyncio.gather(
            client.enqueue(script(1), connection=conn), client.enqueue(script(2))
        )
        await transaction.rollback()
    assert await stored_payloads(client) == [2]
    assert inside.job.payload == {"i": 1} and outside.job.payload == {"i": 2}


async def test_off_inserts_each_enqueue_alone(settings: Settings, database_url: str) -> None:
    app = App(settings.with_overrides(group_commit="off"))

    @app.task("script")
    async def handler(ctx: object, payload: dict[str, Any]) -> None:
        return None

    client = await app.client()
    try:
        results = await gather(client, [script(i) for i in range(20)])
        assert all(isinstance(r, EnqueueResult) for r in results)
        assert await transactions(client) == 20
    finally:
        await app.close()
        conn = await asyncpg.connect(database_url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
        await conn.close()


def test_the_setting_is_on_or_off() -> None:
    assert Settings.from_env({}).group_commit == "on"
    assert Settings.from_env({"JOBQ_GROUP_COMMIT": "OFF"}).group_commit == "off"
    with pytest.raises(ConfigError, match="JOBQ_GROUP_COMMIT"):
        Settings.from_env({"JOBQ_GROUP_COMMIT": "sometimes"})
