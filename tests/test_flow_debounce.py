"""Debounce (jobq.flow) through the library: enqueues with one key collapse into one
waiting job, which runs after the last enqueue plus the delay with the last payload;
under concurrency, in batches, against idempotency keys, and not once it started."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from jobq import App, DebounceOpts, InvalidRequestError, JobRequest, JobStatus, UniqueOpts
from jobq.client import Client
from jobq.testing import drain
from tests.api.support import claim
from tests.support import wait_for

DELAY = 0.3  # seconds: the jobs become runnable quickly, and the tests wait for that


async def count_jobs(client: Client) -> int:
    return int(await client.pool.fetchval(f'SELECT count(*) FROM "{client.settings.schema}".jobs'))


def debounced(n: int, key: str = "k", delay: float = 60.0, **fields: Any) -> JobRequest:
    return JobRequest(
        kind="script",
        payload={"result": n},
        debounce=DebounceOpts(key=key, delay_seconds=delay),
        **fields,
    )


async def runnable(client: Client) -> bool:
    schema = client.settings.schema
    return bool(
        await client.pool.fetchval(f'SELECT bool_and(run_at <= now()) FROM "{schema}".jobs')
    )


async def test_ten_enqueues_make_one_job_that_runs_once_after_the_last_with_its_payload(
    app: App, client: Client
) -> None:
    results = [await client.enqueue(debounced(n, delay=DELAY)) for n in range(10)]
    assert len({r.job.id for r in results}) == 1
    assert [r.replaced for r in results] == [False] + [True] * 9
    last = results[-1].job
    assert last.payload == {"result": 9}
    assert await count_jobs(client) == 1

    await wait_for(lambda: runnable(client))
    outcome = await drain(app)
    assert outcome.succeeded == 1 and outcome.total == 1
    job = await client.get(last.id)
    assert job.status is JobStatus.SUCCEEDED and job.result == 9
    [attempt] = await client.attempts(last.id)
    # The last enqueue wrote updated_at and run_at in one transaction (now()).
    assert attempt.started_at >= last.updated_at + timedelta(seconds=DELAY)
    assert last.run_at == last.updated_at + timedelta(seconds=DELAY)


async def test_a_batch_of_ten_with_one_key_makes_one_job_with_the_last_payload(
    client: Client,
) -> None:
    results = await client.enqueue_many([debounced(n) for n in range(10)])
    assert len({r.job.id for r in results}) == 1
    assert [r.replaced for r in results] == [False] + [True] * 9
    assert results[0].job.payload == {"result": 9}
    assert await count_jobs(client) == 1
    # A second batch replaces the same job, every item of it.
    again = await client.enqueue_many([debounced(n) for n in range(10, 13)])
    assert {r.job.id for r in again} == {results[0].job.id}
    assert all(r.replaced for r in again)
    assert again[0].job.payload == {"result": 12}


async def test_a_batch_mixes_keys_and_plain_jobs(client: Client) -> None:
    results = await client.enqueue_many(
        [debounced(1, "a"), JobRequest(kind="script"), debounced(2, "b"), debounced(3, "a")]
    )
    assert results[0].job.id == results[3].job.id != results[2].job.id
    assert results[0].job.payload == {"result": 3}
    assert [r.replaced for r in results] == [False, False, False, True]
    assert await count_jobs(client) == 3


async def test_64_concurrent_enqueues_with_one_key_make_one_job(client: Client) -> None:
    results = await asyncio.gather(*(client.enqueue(debounced(n)) for n in range(64)))
    assert len({r.job.id for r in results}) == 1
    assert sum(not r.replaced for r in results) == 1
    assert await count_jobs(client) == 1


async def test_64_concurrent_batches_with_one_key_make_one_job(client: Client) -> None:
    batches = [[debounced(i), debounced(1000 + i, key=f"own-{i}")] for i in range(64)]
    answers = await asyncio.gather(*(client.enqueue_many(b) for b in batches))
    assert len({a[0].job.id for a in answers}) == 1
    assert await count_jobs(client) == 1 + 64


async def test_a_started_job_is_not_replaced(client: Client) -> None:
    first = await client.enqueue(debounced(1, delay=0.05))
    await claim(client, first.job.id)
    after = await client.enqueue(debounced(2, delay=0.05))
    assert not after.replaced and after.job.id != first.job.id
    running = await client.get(first.job.id)
    assert running.status is JobStatus.RUNNING and running.payload == {"result": 1}


async def test_keys_are_scoped_to_the_kind_and_apart_from_each_other(client: Client) -> None:
    a = await client.enqueue(debounced(1, "a"))
    b = await client.enqueue(debounced(2, "b"))
    other_kind = await client.enqueue(
        JobRequest(kind="noop", debounce=DebounceOpts(key="a", delay_seconds=60))
    )
    assert len({a.job.id, b.job.id, other_kind.job.id}) == 3


async def test_the_task_declares_the_key_source_and_the_enqueue_overrides_it(
    app: App, client: Client
) -> None:
    @app.task("digest", debounce=DebounceOpts(delay_seconds=60, key_from="user"))
    async def digest(ctx: Any, payload: dict[str, Any]) -> None:
        return None

    @app.task("by_function", debounce=DebounceOpts(delay_seconds=60, key_from=lambda p: p["t"]))
    async def by_function(ctx: Any, payload: dict[str, Any]) -> None:
        return None

    first = await app.enqueue("digest", {"user": 1, "n": 1})
    same_user = await client.enqueue(JobRequest(kind="digest", payload={"user": 1, "n": 2}))
    other_user = await client.enqueue(JobRequest(kind="digest", payload={"user": 2}))
    no_key = await client.enqueue(JobRequest(kind="digest", payload={"n": 3}))
    off = await client.enqueue(JobRequest(kind="digest", payload={"user": 1}, debounce=False))
    assert same_user.replaced and same_user.job.id == first.id
    assert not other_user.replaced and not no_key.replaced and not off.replaced
    assert await count_jobs(client) == 4

    with pytest.raises(InvalidRequestError, match="declares none"):
        await client.enqueue(JobRequest(kind="script", debounce=True))
    kept = await client.enqueue(JobRequest(kind="digest", payload={"user": 1}, debounce=True))
    assert kept.replaced and kept.job.id == first.id

    one = await app.enqueue("by_function", {"t": "x"})
    two = await client.enqueue(JobRequest(kind="by_function", payload={"t": "x", "n": 2}))
    assert two.replaced and two.job.id == one.id


async def test_an_idempotent_replay_is_a_replay_not_a_replacement(client: Client) -> None:
    first = await client.enqueue(debounced(1, idempotency_key="i-1"))
    replay = await client.enqueue(debounced(1, idempotency_key="i-1"))
    assert replay.replayed and not replay.replaced and replay.job.id == first.job.id
    assert replay.job.run_at == first.job.run_at  # the replay moved nothing
    # Another request replaces it; the first request's retry is still a replay.
    other = await client.enqueue(debounced(2, idempotency_key="i-2"))
    assert other.replaced and other.job.payload == {"result": 2}
    retry = await client.enqueue(debounced(1, idempotency_key="i-1"))
    assert retry.replayed and retry.job.payload == {"result": 2}
    assert await count_jobs(client) == 1
    # The same key with another request is still a conflict.
    with pytest.raises(Exception, match="i-1"):
        await client.enqueue(debounced(3, idempotency_key="i-1"))


async def test_a_batch_replays_its_keyed_items_and_replaces_with_the_rest(client: Client) -> None:
    first = await client.enqueue(debounced(1, idempotency_key="i-1"))
    results = await client.enqueue_many(
        [debounced(1, idempotency_key="i-1"), debounced(2), JobRequest(kind="script")]
    )
    assert results[0].replayed and not results[0].replaced
    assert results[1].replaced and results[1].job.id == first.job.id
    assert results[1].job.payload == {"result": 2}
    assert await count_jobs(client) == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"debounce": {"delay_seconds": 0}}, "greater than 0"),
        ({"debounce": {"delay_seconds": 7 * 86400 + 1}}, "less than or equal"),
        ({"debounce": {"delay_seconds": "nan"}}, "delay_seconds"),
        ({"debounce": {"delay_seconds": 1, "key": "x" * 256}}, "at most 255"),
        ({"debounce": {"delay_seconds": 1, "key": ""}}, "at least 1"),
        ({"debounce": {"delay_seconds": 1, "key": "a\x00"}}, "U\\+0000"),
        ({"debounce": {"delay_seconds": 1, "key_from": 3}}, "key_from"),
        ({"debounce": {"delay_seconds": 1, "other": 1}}, "other"),
        ({"debounce": {"key": "a"}}, "delay_seconds"),
        ({"debounce": {"delay_seconds": 1, "key": "a\ud800"}}, "unicode"),
        ({"debounce": {"delay_seconds": 1, "key": "a", "key_from": "b"}}, "not both"),
    ],
)
def test_bad_debounce_options_are_refused(fields: dict[str, Any], message: str) -> None:
    from jobq.job_request import parse_request

    with pytest.raises(InvalidRequestError, match=message):
        parse_request({"kind": "script", **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {"run_at": "2030-01-01T00:00:00Z"},
        {"unique": UniqueOpts()},
        {"depends_on": ["01964f4e-8c5a-7b3c-9d2e-4f6a8b0c2d4e"]},
    ],
)
async def test_debounce_refuses_what_it_cannot_go_with(
    client: Client, fields: dict[str, Any]
) -> None:
    request = JobRequest.model_validate(
        {"kind": "script", "debounce": {"key": "k", "delay_seconds": 1}, **fields}
    )
    with pytest.raises(InvalidRequestError, match="debounced job cannot have"):
        await client.enqueue(request)
    assert await count_jobs(client) == 0


async def test_a_key_from_the_payload_is_size_limited(app: App, client: Client) -> None:
    @app.task("digest", debounce=DebounceOpts(delay_seconds=60, key_from="user"))
    async def digest(ctx: Any, payload: dict[str, Any]) -> None:
        return None

    with pytest.raises(InvalidRequestError, match="debounce key must be 1 to 255"):
        await client.enqueue(JobRequest(kind="digest", payload={"user": "u" * 256}))


async def test_a_job_retried_by_hand_gives_up_its_key(client: Client) -> None:
    first = await client.enqueue(debounced(1))
    await client.cancel(first.job.id)
    second = await client.enqueue(debounced(2))
    assert not second.replaced
    # Back in the queue, never started, while `second` holds the key: no collision.
    retried = await client.retry(first.job.id)
    assert retried.status is JobStatus.QUEUED and retried.debounce_key is None
    assert (await client.enqueue(debounced(3))).job.id == second.job.id


@pytest.mark.parametrize("limited", [False, True], ids=["plain", "limited"])
async def test_a_claim_never_starts_a_job_a_debounce_pushed_back(
    client: Client, limited: bool
) -> None:
    # The race: a claim picks a runnable job, a debounce pushes its run_at an hour
    # out and commits, then the claim locks the row. The claim must re-read run_at
    # under the lock (the plain claim's FOR UPDATE does; the limited claim's step 5
    # says so), so no job ever starts before its run_at.
    from jobq import FlowLimitRequest

    if limited:
        await client.set_limit("all", FlowLimitRequest(key_pattern="%", max_running=10_000))

    async def push(key: str) -> None:
        for n in range(15):
            await client.enqueue(debounced(n, key=key, delay=0.001, concurrency_key="c"))
            await client.enqueue(debounced(n, key=key, delay=3600, concurrency_key="c"))

    async def claim_all(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await client.queries.job_finish_and_claim(
                client.pool, [], "w", None, 4, 30.0, None, limited=limited
            )

    stop = asyncio.Event()
    claimers = [asyncio.create_task(claim_all(stop)) for _ in range(3)]
    await asyncio.gather(*(push(f"key-{i}") for i in range(8)))
    stop.set()
    await asyncio.gather(*claimers)
    early = await client.pool.fetchval(
        f'SELECT count(*) FROM "{client.settings.schema}".jobs '
        "WHERE started_at IS NOT NULL AND started_at < run_at"
    )
    assert early == 0
