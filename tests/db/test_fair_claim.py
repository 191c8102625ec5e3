"""The fair claim (migration 0011's job_fair_candidates): round-robin across
fairness keys, how priority combines with it, and with flow limits; and what the
limited claim says when a rate limit holds jobs back."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from jobq import App, FlowLimitRequest, InvalidRequestError, JobRequest, JobStatus
from jobq.client import Client
from jobq.db.records import Claimed, ClaimPaths, ClaimRound, FinishRow
from jobq.types import AttemptOutcome

BACKLOG = 10_000
CONCURRENCY = 10


async def claim_round(
    client: Client,
    limit: int,
    rows: Sequence[FinishRow] = (),
    *,
    fair: bool = True,
    limited: bool = False,
    worker: str = "w",
) -> ClaimRound:
    return await client.queries.job_claim_round(
        client.pool, rows, worker, None, limit, 30.0, None, limited=limited, fair=fair
    )


def succeeded(running: Sequence[Claimed], worker: str = "w") -> list[FinishRow]:
    return [
        FinishRow(
            c.job.id,
            c.job.attempt_seq,
            worker,
            JobStatus.SUCCEEDED,
            AttemptOutcome.SUCCEEDED,
            None,
            None,
            0,
        )
        for c in running
    ]


async def enqueue_fair(
    client: Client,
    keys: Sequence[str | None],
    *,
    priority: int = 0,
    concurrency_key: str | None = None,
) -> None:
    for start in range(0, len(keys), 1000):
        await client.enqueue_many(
            [
                JobRequest(
                    kind="noop",
                    fairness_key=k,
                    priority=priority,
                    concurrency_key=concurrency_key,
                )
                for k in keys[start : start + 1000]
            ]
        )


async def starts_until_every_b(client: Client, *, limited: bool) -> list[str]:
    """A worker of CONCURRENCY slots in rounds: finish what runs, claim into the
    freed slots. The fairness keys of the jobs started, in order, until the last B."""
    started: list[str] = []
    running: list[Claimed] = []
    while started.count("b") < 10:
        answer = await claim_round(client, CONCURRENCY, succeeded(running), limited=limited)
        running = answer.claimed
        started += [c.job.fairness_key or "" for c in running]
        assert len(started) <= 4 * CONCURRENCY, started
    return started


@pytest.mark.parametrize("limited", [False, True], ids=["fair", "fair-and-limited"])
async def test_a_small_tenant_starts_within_two_rounds_of_a_large_backlog(
    client: Client, limited: bool
) -> None:
    # Issue 18's "done when": 10,000 jobs of tenant A enqueued, then 10 of
    # tenant B; every B job starts within the next 2 x concurrency claims.
    if limited:  # a limit on another key: the claim goes through job_claim_limited
        await client.set_limit("other", FlowLimitRequest(key_pattern="other", max_running=1))
    await enqueue_fair(client, ["a"] * BACKLOG)
    await enqueue_fair(client, ["b"] * 10)
    started = await starts_until_every_b(client, limited=limited)
    last_b = max(i for i, key in enumerate(started) if key == "b")
    assert last_b < 2 * CONCURRENCY, started
    # Round-robin: while B had jobs waiting, A never took more than every other start.
    assert started[: 2 * 5].count("a") == 5, started


async def test_the_plain_claim_takes_the_backlog_first(client: Client) -> None:
    # The baseline fairness fixes (and what a worker whose queues hold no keyed
    # job still does): in order of run_at, B waits behind all of A.
    await enqueue_fair(client, ["a"] * 50)
    await enqueue_fair(client, ["b"] * 5)
    answer = await claim_round(client, CONCURRENCY, fair=False)
    assert {c.job.fairness_key for c in answer.claimed} == {"a"}


async def test_jobs_without_a_key_are_one_more_lane(client: Client) -> None:
    await enqueue_fair(client, ["a"] * 100 + ["b"] * 100)
    await enqueue_fair(client, [None] * 3)
    answer = await claim_round(client, 6)
    keys = sorted(c.job.fairness_key or "-" for c in answer.claimed)
    assert keys == ["-", "-", "a", "a", "b", "b"]


async def test_priority_orders_a_lane_and_each_round_but_not_across_rounds(
    client: Client,
) -> None:
    await enqueue_fair(client, ["a"] * 5)
    await enqueue_fair(client, ["a"] * 2, priority=5)  # A's own urgent jobs go first in A
    await enqueue_fair(client, ["b"] * 5)
    await enqueue_fair(client, ["c"], priority=9)  # C's head goes first in its round
    answer = await claim_round(client, 4)
    order = [(c.job.fairness_key, c.job.priority) for c in answer.claimed]
    # The round's heads by priority: C (9), A's urgent one (5), B's (0); then
    # round two: A's second urgent job before B's second.
    assert sorted(order, key=lambda p: -p[1]) == [("c", 9), ("a", 5), ("a", 5), ("b", 0)]
    assert (
        await client.pool.fetchval(
            f"""SELECT count(*) FROM "{client.settings.schema}".jobs
            WHERE status = 'running' AND fairness_key = 'a' AND priority = 5"""
        )
        == 2
    )


async def test_a_limit_on_the_key_holds_and_the_fair_order_fills_the_rest(
    client: Client,
) -> None:
    # Tenant A's jobs carry a concurrency key limited to 2 running; B's do not.
    await client.set_limit("a-cap", FlowLimitRequest(key_pattern="ka", max_running=2))
    await enqueue_fair(client, ["a"] * 200, concurrency_key="ka")
    await enqueue_fair(client, ["b"] * 200)
    first = await claim_round(client, 10, limited=True)
    keys = sorted(c.job.fairness_key or "" for c in first.claimed)
    assert keys == ["a", "a"] + ["b"] * 8
    second = await claim_round(client, 10, limited=True, worker="w2")
    assert {c.job.fairness_key for c in second.claimed} == {"b"}
    assert len(second.claimed) == 10
    assert first.rate_opens_in is None  # no rate limit held anything back


async def test_a_full_rate_limit_says_when_it_opens(client: Client) -> None:
    await client.set_limit("paced", FlowLimitRequest(queue="default", rate=3, period_seconds=2))
    await enqueue_fair(client, [None] * 10)
    first = await claim_round(client, 5, fair=False, limited=True)
    assert len(first.claimed) == 3
    # Full: the next start is one period after the oldest of the three.
    assert first.rate_opens_in is not None and 1.0 < first.rate_opens_in <= 2.0
    again = await claim_round(client, 5, fair=False, limited=True)
    assert again.claimed == []
    assert again.rate_opens_in is not None and again.rate_opens_in <= first.rate_opens_in


async def test_the_claim_paths_follow_limits_and_keyed_jobs(client: Client) -> None:
    paths = client.queries.flow_claim_paths
    assert await paths(client.pool, None) == ClaimPaths(limited=False, fair=False)
    await enqueue_fair(client, ["t"])
    assert await paths(client.pool, None) == ClaimPaths(limited=False, fair=True)
    assert await paths(client.pool, ["other"]) == ClaimPaths(limited=False, fair=False)
    await client.set_limit("q", FlowLimitRequest(queue="default", max_running=5))
    assert await paths(client.pool, ["default"]) == ClaimPaths(limited=True, fair=True)
    await claim_round(client, 5)  # the keyed job runs: nothing keyed waits now
    assert await paths(client.pool, ["default"]) == ClaimPaths(limited=True, fair=False)


async def test_a_paused_queue_and_unknown_kinds_are_stepped_over(client: Client) -> None:
    await enqueue_fair(client, ["a"] * 3)
    await client.enqueue(JobRequest(kind="noop", queue="held", fairness_key="h"))
    await client.pause("held")
    answer = await client.queries.job_claim_round(
        client.pool, (), "w", None, 10, 30.0, ["other"], fair=True
    )
    assert answer.claimed == []
    answer = await claim_round(client, 10)
    assert sorted(c.job.fairness_key or "" for c in answer.claimed) == ["a"] * 3


async def test_the_task_names_the_fairness_key_and_the_enqueue_overrides_it(
    client: Client,
) -> None:
    app = App(client.settings)
    app.register("by_field", lambda ctx, payload: None, fairness_key="tenant")
    app.register("by_function", lambda ctx, payload: None, fairness_key=lambda p: f"org:{p['org']}")
    keyed = Client(client.pool, client.settings, app)
    field = await keyed.enqueue(JobRequest(kind="by_field", payload={"tenant": "t1"}))
    function = await keyed.enqueue(JobRequest(kind="by_function", payload={"org": 7}))
    given = await keyed.enqueue(
        JobRequest(kind="by_field", payload={"tenant": "t1"}, fairness_key="vip")
    )
    missing = await keyed.enqueue(JobRequest(kind="by_field", payload={}))
    assert field.job.fairness_key == "t1"
    assert function.job.fairness_key == "org:7"
    assert given.job.fairness_key == "vip"
    assert missing.job.fairness_key is None
    with pytest.raises(InvalidRequestError, match="fairness key"):
        await keyed.enqueue(JobRequest(kind="by_field", payload={"tenant": "x" * 256}))
    with pytest.raises(ValueError, match="at most 255 characters"):
        JobRequest(kind="by_field", fairness_key="x" * 256)


async def test_a_job_that_waits_for_another_keeps_its_keys(client: Client) -> None:
    first = await client.enqueue(JobRequest(kind="noop"))
    after = await client.enqueue(
        JobRequest(kind="noop", depends_on=[first.job.id], fairness_key="t", concurrency_key="c")
    )
    stored = await client.get(after.job.id)
    assert (stored.fairness_key, stored.concurrency_key) == ("t", "c")
