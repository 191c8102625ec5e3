"""Flow limits across worker processes (issue 18's "Done when").

Concurrency: 4 `jobq worker` processes x 20 slots, 2,000 jobs over 10 keys,
at most 3 running per key: no key's attempt history (nor its handlers' own
clocks) ever shows more than 3 overlapping attempts, and all succeed.
Rate: 600 jobs, at most 20 starts a second across 3 processes: no 1-second
window of recorded starts holds more than 20.
Fairness: 10,000 jobs of tenant A, then 10 of tenant B, one `jobq worker` of
10 slots: every B job starts within the first 2 x 10 starts.
"""

from __future__ import annotations

import bisect
import json
import statistics
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta

import pytest

from jobq import App, FlowLimitRequest, JobRequest, JobStatus, Settings
from jobq.client import Client
from tests.support import wait_for
from tests.worker.flow_support import register_flow_tasks
from tests.worker.test_worker_process import Proc, worker_process

pytestmark = pytest.mark.slow

APP = "tests.worker.flow_support:flow_app"


@pytest.fixture
def app(settings: Settings) -> App:
    # The test's client validates against flow_app's kinds, and so takes the
    # task's concurrency key (the payload's "tenant") as an enqueue does.
    return register_flow_tasks(App(settings))


@asynccontextmanager
async def workers(settings: Settings, count: int, concurrency: int) -> AsyncIterator[list[Proc]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                worker_process(settings, "--app", APP, "--concurrency", str(concurrency))
            )
            for _ in range(count)
        ]


async def all_succeeded(client: Client, total: int) -> bool:
    counts = (await client.queues())[0].counts
    return counts.get(JobStatus.SUCCEEDED.value, 0) == total


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals [start, end) that hold one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


async def test_four_processes_never_run_more_than_the_limit_per_key(
    client: Client, settings: Settings
) -> None:
    await client.set_limit("tenants", FlowLimitRequest(key_pattern="tenant-%", max_running=3))
    requests = [
        JobRequest(kind="keyed", payload={"tenant": f"tenant-{i % 10}", "seconds": 0.01})
        for i in range(2000)
    ]
    for start in range(0, 2000, 1000):
        await client.enqueue_many(requests[start : start + 1000])
    async with workers(settings, 4, 20):
        await wait_for(lambda: all_succeeded(client, 2000), timeout=240, interval=0.5)

    schema = settings.schema
    history = await client.pool.fetch(
        f"""SELECT j.concurrency_key AS key, a.started_at, a.finished_at, a.outcome
            FROM "{schema}".job_attempts AS a JOIN "{schema}".jobs AS j ON j.id = a.job_id"""
    )
    assert len(history) == 2000
    assert {r["outcome"] for r in history} == {"succeeded"}
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in history:
        by_key[r["key"]].append((r["started_at"].timestamp(), r["finished_at"].timestamp()))
    assert len(by_key) == 10
    peaks = {key: max_overlap(spans) for key, spans in by_key.items()}
    print("peak running per key, from the history:", peaks)
    assert max(peaks.values()) <= 3, peaks

    handlers: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in await client.pool.fetch(f'SELECT concurrency_key, result FROM "{schema}".jobs'):
        result = json.loads(r["result"])
        handlers[r["concurrency_key"]].append((result["started"], result["finished"]))
    assert max(max_overlap(spans) for spans in handlers.values()) <= 3


async def test_three_processes_start_at_most_the_rate_in_any_second(
    client: Client, settings: Settings
) -> None:
    await client.set_limit("paced", FlowLimitRequest(queue="default", rate=20, period_seconds=1))
    await client.enqueue_many([JobRequest(kind="paced") for _ in range(600)])
    async with workers(settings, 3, 10):
        await wait_for(lambda: all_succeeded(client, 600), timeout=120, interval=0.5)

    rows = await client.pool.fetch(
        f'SELECT started_at FROM "{settings.schema}".job_attempts ORDER BY started_at'
    )
    starts: list[datetime] = [r["started_at"] for r in rows]
    assert len(starts) == 600
    # Every window of one second that opens at a start (the densest ones do).
    busiest = max(
        bisect.bisect_left(starts, s + timedelta(seconds=1)) - i for i, s in enumerate(starts)
    )
    assert busiest <= 20
    # The property is about time: 600 starts at 20 a second need 29 s at least
    # (30 windows); a generous bound says the workers were not idling on it.
    took = (starts[-1] - starts[0]).total_seconds()
    # How long each start came after the rate let it (its token freed when the
    # start 20 before it left the window): the workers' reaction, for the report.
    late = [(starts[i] - starts[i - 20]).total_seconds() - 1.0 for i in range(20, len(starts))]
    print(
        f"600 starts at 20/s: {took:.1f} s first to last; a start came a mean "
        f"{statistics.mean(late) * 1000:.0f} ms after the rate let it"
    )
    assert 29.0 <= took < 90.0, took


async def test_a_worker_starts_a_small_tenant_within_two_rounds_of_a_large_backlog(
    client: Client, settings: Settings
) -> None:
    concurrency = 10
    for _ in range(10):
        await client.enqueue_many(
            [JobRequest(kind="fair", payload={"tenant": "a"}) for _ in range(1000)]
        )
    await client.enqueue_many([JobRequest(kind="fair", payload={"tenant": "b"}) for _ in range(10)])
    schema = settings.schema

    async def every_b_succeeded() -> bool:
        done = await client.pool.fetchval(
            f"""SELECT count(*) FROM "{schema}".jobs
                WHERE fairness_key = 'b' AND status = 'succeeded'"""
        )
        return int(done) == 10

    async with workers(settings, 1, concurrency):
        await wait_for(every_b_succeeded, timeout=60, interval=0.2)
    # Each B job's place among the starts: the attempts that started before it
    # (a claim's jobs share one start time, so a tie is not "before").
    before = await client.pool.fetch(
        f"""SELECT (SELECT count(*) FROM "{schema}".job_attempts AS o
                    WHERE o.started_at < a.started_at) AS earlier
            FROM "{schema}".job_attempts AS a JOIN "{schema}".jobs AS j ON j.id = a.job_id
            WHERE j.fairness_key = 'b'"""
    )
    places = sorted(int(r["earlier"]) for r in before)
    print("starts before each B job:", places)
    assert len(places) == 10
    assert max(places) < 2 * concurrency, places
