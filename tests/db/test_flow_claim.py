"""The limited claim (migration 0007's job_claim_limited) in one process: what it
takes, what it leaves queued, and the finish-and-claim round trip it rides on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from jobq import FlowLimitRequest, InvalidRequestError, JobRequest, JobStatus
from jobq.client import Client
from jobq.db.records import Claimed, FinishRow
from jobq.errors import LimitNotFoundError
from jobq.types import AttemptOutcome


async def claim_limited(
    client: Client, worker: str, limit: int, rows: Sequence[FinishRow] = ()
) -> list[Claimed]:
    _, claimed = await client.queries.job_finish_and_claim(
        client.pool, rows, worker, None, limit, 30.0, None, limited=True
    )
    return claimed


async def enqueue_keyed(client: Client, keys: Sequence[str | None]) -> None:
    await client.enqueue_many([JobRequest(kind="noop", concurrency_key=k) for k in keys])


async def test_at_most_the_limit_per_key_and_the_rest_stay_queued_unspent(client: Client) -> None:
    await client.set_limit("per-key", FlowLimitRequest(key_pattern="k%", max_running=2))
    await enqueue_keyed(client, ["ka"] * 5 + ["kb"] * 5 + [None] * 2)
    claimed = await claim_limited(client, "w1", 20)
    keys = sorted(c.job.concurrency_key or "-" for c in claimed)
    assert keys == ["-", "-", "ka", "ka", "kb", "kb"]
    assert await claim_limited(client, "w2", 20) == []
    waiting = await client.pool.fetch(
        f'SELECT status, attempts FROM "{client.settings.schema}".jobs WHERE status = $1',
        "queued",
    )
    assert len(waiting) == 6 and {r["attempts"] for r in waiting} == {0}


async def test_a_finish_in_the_same_statement_frees_its_slot_for_the_next_claim(
    client: Client,
) -> None:
    await client.set_limit("one", FlowLimitRequest(key_pattern="%", max_running=1))
    await enqueue_keyed(client, ["k", "k"])
    [first] = await claim_limited(client, "w", 5)
    done = FinishRow(
        first.job.id,
        first.job.attempt_seq,
        "w",
        JobStatus.SUCCEEDED,
        AttemptOutcome.SUCCEEDED,
        None,
        None,
        0,
    )
    # The count runs in a snapshot that may or may not see this statement's own
    # finish: either way never two at once. The next claim surely takes it.
    claimed = await claim_limited(client, "w", 5, [done])
    if not claimed:
        claimed = await claim_limited(client, "w", 5)
    assert len(claimed) == 1 and claimed[0].job.id != first.job.id


async def test_a_queue_wide_limit_counts_every_running_job_of_the_queue(client: Client) -> None:
    await client.set_limit("q", FlowLimitRequest(queue="default", max_running=3))
    await enqueue_keyed(client, [None] * 10)
    assert len(await claim_limited(client, "w1", 2)) == 2
    assert len(await claim_limited(client, "w2", 5)) == 1
    assert await claim_limited(client, "w3", 5) == []


async def test_concurrent_claimers_never_exceed_the_limit(client: Client) -> None:
    await client.set_limit("per-key", FlowLimitRequest(key_pattern="%", max_running=3))
    await enqueue_keyed(client, [f"k{i % 4}" for i in range(200)])
    answers = await asyncio.gather(*(claim_limited(client, f"w{i}", 10) for i in range(16)))
    per_key: dict[str, int] = {}
    for claimed in answers:
        for c in claimed:
            key = c.job.concurrency_key or ""
            per_key[key] = per_key.get(key, 0) + 1
    assert max(per_key.values()) <= 3


async def test_limits_are_listed_with_their_use(client: Client) -> None:
    await client.set_limit("per-key", FlowLimitRequest(key_pattern="k%", max_running=2))
    await enqueue_keyed(client, ["ka"] * 3 + ["kb"])
    await claim_limited(client, "w", 10)
    [use] = await client.limits()
    assert (use.running, use.busiest_key_running, use.waiting) == (3, 2, 1)
    await client.delete_limit("per-key")
    assert await client.limits() == []
    with pytest.raises(LimitNotFoundError):
        await client.delete_limit("per-key")


@pytest.mark.parametrize(
    ("name", "request_", "message"),
    [
        ("Bad Name", FlowLimitRequest(max_running=1), "limit name"),
        ("x", FlowLimitRequest(), "give max_running"),
        ("x", FlowLimitRequest(rate=5), "go together"),
    ],
)
async def test_bad_limits_are_refused(
    client: Client, name: str, request_: FlowLimitRequest, message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        await client.set_limit(name, request_)


async def test_a_per_key_limit_lets_a_small_tenant_through_a_large_backlog(
    client: Client,
) -> None:
    # Fairness as far as it is built: with a per-key limit at half the slots,
    # tenant A's 10,000-job backlog holds at most half of a worker's claims, so
    # B's 10 jobs, enqueued after, all start within 2 x concurrency starts.
    concurrency = 10
    await client.set_limit("tenants", FlowLimitRequest(key_pattern="%", max_running=5))
    for _ in range(10):
        await enqueue_keyed(client, ["a"] * 1000)
    await enqueue_keyed(client, ["b"] * 10)
    started: list[str] = []
    running: list[Claimed] = []
    while started.count("b") < 10:
        # A worker's round trip: finish what runs, claim into the free slots.
        rows = [
            FinishRow(
                c.job.id,
                c.job.attempt_seq,
                "w",
                JobStatus.SUCCEEDED,
                AttemptOutcome.SUCCEEDED,
                None,
                None,
                0,
            )
            for c in running
        ]
        running = await claim_limited(client, "w", concurrency, rows)
        started += [c.job.concurrency_key or "" for c in running]
        assert len(started) <= 4 * concurrency, started
    last_b = max(i for i, key in enumerate(started) if key == "b")
    assert last_b < 2 * concurrency, started


async def test_the_task_names_the_concurrency_key_and_the_enqueue_overrides_it(
    client: Client,
) -> None:
    from jobq import App

    app = App(client.settings)
    app.register("by_field", lambda ctx, payload: None, concurrency_key="tenant")
    app.register(
        "by_function", lambda ctx, payload: None, concurrency_key=lambda p: f"org:{p['org']}"
    )
    keyed = Client(client.pool, client.settings, app)
    field = await keyed.enqueue(JobRequest(kind="by_field", payload={"tenant": "t1"}))
    function = await keyed.enqueue(JobRequest(kind="by_function", payload={"org": 7}))
    given = await keyed.enqueue(
        JobRequest(kind="by_field", payload={"tenant": "t1"}, concurrency_key="vip")
    )
    missing = await keyed.enqueue(JobRequest(kind="by_field", payload={}))
    assert field.job.concurrency_key == "t1"
    assert function.job.concurrency_key == "org:7"
    assert given.job.concurrency_key == "vip"
    assert missing.job.concurrency_key is None
    with pytest.raises(InvalidRequestError, match="concurrency key"):
        await keyed.enqueue(JobRequest(kind="by_field", payload={"tenant": ""}))


async def test_the_previous_releases_function_still_claims_within_the_limits(
    client: Client,
) -> None:
    """A worker of the release before migration 0013 calls job_claim_limited, which
    now picks through job_flow_pick: same rows, same limits, same rate marker."""
    schema = client.settings.schema
    await client.set_limit("per-key", FlowLimitRequest(key_pattern="k%", max_running=1))
    await client.set_limit("rate", FlowLimitRequest(queue="default", rate=3, period_seconds=60))
    await enqueue_keyed(client, ["ka", "ka", "kb", "kc", "kd"])
    rows = await client.pool.fetch(
        f'SELECT * FROM "{schema}".job_claim_limited($1, NULL, NULL, 10, 30, $2, false)',
        "old-worker",
        [],
    )
    claimed = [r for r in rows if r["id"] is not None]
    [marker] = [r for r in rows if r["id"] is None]
    # Three starts under the rate, at most one of `ka`: the rest stay queued.
    keys = [r["concurrency_key"] for r in claimed]
    assert len(keys) == 3 and len(set(keys)) == 3
    assert {r["status"] for r in claimed} == {"running"}
    assert {r["locked_by"] for r in claimed} == {"old-worker"}
    assert all(r["started_at"] is not None and r["attempts"] == 1 for r in claimed)
    # The marker: the window opens a period after the first of the three starts.
    wait = (marker["run_at"] - marker["updated_at"]).total_seconds()
    assert 50 < wait <= 60
