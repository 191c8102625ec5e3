"""Unique jobs (jobq.flow) through the library: one job per unique key among jobs
in their unique states, under concurrency and in batches; duplicates answer the holder."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobq import App, InvalidRequestError, JobRequest, JobStatus, UniqueOpts
from jobq.client import Client
from jobq.flow import ACTIVE_STATES as ACTIVE
from jobq.flow import unique_key


async def count_jobs(client: Client) -> int:
    return int(await client.pool.fetchval(f'SELECT count(*) FROM "{client.settings.schema}".jobs'))


def unique_request(payload: dict[str, Any], **unique: Any) -> JobRequest:
    return JobRequest(kind="script", payload=payload, unique=UniqueOpts(**unique))


async def test_64_concurrent_enqueues_of_one_unique_key_make_one_job(client: Client) -> None:
    request = unique_request({"report": 7})
    results = await asyncio.gather(*(client.enqueue(request) for _ in range(64)))
    ids = {r.job.id for r in results}
    assert len(ids) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert sum(r.duplicate for r in results) == 63
    assert await count_jobs(client) == 1


async def test_64_concurrent_batches_with_one_unique_key_make_one_job(client: Client) -> None:
    def batch(i: int) -> list[JobRequest]:
        # Each batch: the shared unique job twice, and one job of its own.
        return [
            unique_request({"report": 7}),
            unique_request({"own": i}),
            unique_request({"report": 7}),
        ]

    answers = await asyncio.gather(*(client.enqueue_many(batch(i)) for i in range(64)))
    shared = {a[0].job.id for a in answers} | {a[2].job.id for a in answers}
    assert len(shared) == 1
    assert all(a[2].duplicate for a in answers)  # its twin in the batch, or the table's
    assert sum(not a[0].duplicate for a in answers) == 1
    assert all(not a[1].duplicate for a in answers)
    assert await count_jobs(client) == 1 + 64


async def test_the_payload_fields_chosen_decide_what_is_a_duplicate(client: Client) -> None:
    first = await client.enqueue(unique_request({"user": 1, "at": 1}, by_args=["user"]))
    same_user = await client.enqueue(unique_request({"user": 1, "at": 2}, by_args=["user"]))
    other_user = await client.enqueue(unique_request({"user": 2, "at": 1}, by_args=["user"]))
    assert same_user.duplicate and same_user.job.id == first.job.id
    assert not other_user.duplicate


async def test_by_queue_makes_each_queue_its_own_key(client: Client) -> None:
    a = JobRequest(kind="script", queue="a", unique=UniqueOpts(by_queue=True))
    b = JobRequest(kind="script", queue="b", unique=UniqueOpts(by_queue=True))
    assert not (await client.enqueue(a)).duplicate
    assert not (await client.enqueue(b)).duplicate
    assert (await client.enqueue(a)).duplicate


async def test_a_finished_job_frees_its_key_unless_its_state_is_chosen(client: Client) -> None:
    first = await client.enqueue(unique_request({"x": 1}))
    await client.cancel(first.job.id)
    again = await client.enqueue(unique_request({"x": 1}))
    assert not again.duplicate and again.job.id != first.job.id

    kept = await client.enqueue(
        unique_request({"y": 1}, states=["queued", "retrying", "running", "cancelled"])
    )
    await client.cancel(kept.job.id)
    refused = await client.enqueue(
        unique_request({"y": 1}, states=["queued", "retrying", "running", "cancelled"])
    )
    assert refused.duplicate and refused.job.id == kept.job.id
    assert refused.job.status is JobStatus.CANCELLED


async def test_a_job_retried_by_hand_gives_up_its_key(client: Client) -> None:
    first = await client.enqueue(unique_request({"z": 1}))
    await client.cancel(first.job.id)
    second = await client.enqueue(unique_request({"z": 1}))
    # Back in the queue while `second` holds the key: no collision, no error.
    retried = await client.retry(first.job.id)
    assert retried.status is JobStatus.QUEUED
    assert retried.unique_key is None
    assert (await client.enqueue(unique_request({"z": 1}))).job.id == second.job.id


async def test_the_task_declares_uniqueness_and_the_enqueue_overrides_it(
    app: App, client: Client
) -> None:
    @app.task("digest", unique=UniqueOpts(by_args=["user"]))
    async def digest(ctx: Any, payload: dict[str, Any]) -> None:
        return None

    first = await app.enqueue("digest", {"user": 1, "n": 1})
    again = await client.enqueue(JobRequest(kind="digest", payload={"user": 1, "n": 2}))
    assert again.duplicate and again.job.id == first.id
    forced = await client.enqueue(
        JobRequest(kind="digest", payload={"user": 1, "n": 3}, unique=False)
    )
    assert not forced.duplicate


async def test_an_idempotent_replay_is_not_a_duplicate(client: Client) -> None:
    request = JobRequest(kind="script", idempotency_key="k", unique=True)
    first = await client.enqueue(request)
    again = await client.enqueue(request)
    assert again.replayed and not again.duplicate and again.job.id == first.job.id


@pytest.mark.parametrize(
    ("unique", "message"),
    [
        ({"states": ["queued"]}, "must include queued, retrying, running"),
        ({"period_seconds": 0}, "greater than 0"),
        ({"by_args": "user"}, "by_args"),
    ],
)
def test_bad_unique_options_are_refused(unique: dict[str, Any], message: str) -> None:
    from jobq.job_request import parse_request

    with pytest.raises(InvalidRequestError, match=message):
        parse_request({"kind": "script", "unique": unique})


async def test_a_period_keeps_the_first_and_drops_the_rest_within_it(client: Client) -> None:
    # Throttle: unique by user within each period (a long one, so the two
    # enqueues cannot straddle a period's edge).
    opts = {"by_args": ["user"], "period_seconds": 366 * 86400}
    kept = await client.enqueue(
        unique_request({"user": 2, "n": 1}, states=[*ACTIVE, "succeeded", "cancelled"], **opts)
    )
    await client.cancel(kept.job.id)
    dropped = await client.enqueue(
        unique_request({"user": 2, "n": 2}, states=[*ACTIVE, "succeeded", "cancelled"], **opts)
    )
    assert dropped.duplicate and dropped.job.id == kept.job.id


async def test_the_throttle_shorthand_keeps_the_first_of_each_period(client: Client) -> None:
    opts = UniqueOpts.throttle(366 * 86400, by_args=["user"])
    assert opts.states == sorted(["cancelled", "failed_permanent", "succeeded", *ACTIVE])
    kept = await client.enqueue(unique_request({"user": 3, "n": 1}, **opts.model_dump()))
    await client.cancel(kept.job.id)
    dropped = await client.enqueue(unique_request({"user": 3, "n": 2}, **opts.model_dump()))
    other = await client.enqueue(unique_request({"user": 4}, **opts.model_dump()))
    assert dropped.duplicate and dropped.job.id == kept.job.id
    assert not other.duplicate


def test_the_period_is_part_of_the_key() -> None:
    opts = UniqueOpts(period_seconds=60)
    at = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)
    key = unique_key(opts, "k", "q", {"a": 1}, at)
    assert unique_key(opts, "k", "q", {"a": 1}, at + timedelta(seconds=29)) == key
    assert unique_key(opts, "k", "q", {"a": 1}, at + timedelta(seconds=30)) != key
    assert unique_key(opts, "k", "q", {"a": 2}, at) != key
    assert unique_key(UniqueOpts(by_args=False, period_seconds=60), "k", "q", {"a": 2}, at) == (
        unique_key(UniqueOpts(by_args=False, period_seconds=60), "k", "q", {"a": 1}, at)
    )
