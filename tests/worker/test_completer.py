"""`Completer`: batching, the flush timer, put-back and retries, against a fake writer
(no database; the written rows' SQL is tested in tests/db/test_outcomes.py)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from jobq import Failed, JobContext, JobStatus, Succeeded
from jobq.db.records import Finished, FinishRow
from jobq.retry import RetryPolicy
from jobq.types import Outcome
from jobq.worker.completer import Completer, Pending
from jobq.worker.runner import RunningJob
from tests.support import make_job, wait_for

LONG = 60.0  # a flush timer that never fires within a test


class FakeWriter:
    """The completer's writer: records each batch, can fail its first `fail` calls,
    can be held (`gate`) to observe a write in flight, and drops `lost` ids as the
    lease fence would."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.calls = 0
        self.batches: list[list[FinishRow]] = []
        self.lost: set[uuid.UUID] = set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def job_finish_many(self, rows: Sequence[FinishRow]) -> list[Finished]:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise ConnectionRefusedError("database down")
        self.batches.append(list(rows))
        return [Finished(r.id, "default", "k", r.status) for r in rows if r.id not in self.lost]

    def ids(self) -> list[list[uuid.UUID]]:
        return [[row.id for row in batch] for batch in self.batches]


class Written(list[RunningJob]):
    """The completer's `on_written` callback: the jobs whose outcomes are settled."""

    def __call__(self, running: RunningJob) -> None:
        self.append(running)


def running_job() -> RunningJob:
    job = make_job()
    return RunningJob(job, None, JobContext(job, "w", None), datetime.now(UTC))


def completer_for(
    writer: FakeWriter, *, batch_size: int = 500, flush_seconds: float = LONG
) -> tuple[Completer, Written]:
    written = Written()
    completer = Completer(
        writer,
        lambda kind: RetryPolicy(),
        written,
        batch_size=batch_size,
        flush_seconds=flush_seconds,
    )
    return completer, written


def submit(completer: Completer, n: int, outcome: Outcome = Succeeded()) -> list[uuid.UUID]:
    jobs = [running_job() for _ in range(n)]
    for running in jobs:
        completer.submit(running, outcome)
    return [running.id for running in jobs]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a deadline for the condition
    async def holds() -> bool:
        return predicate()

    await wait_for(holds, timeout=timeout, interval=0.005)


@asynccontextmanager
async def running(completer: Completer) -> AsyncIterator[asyncio.Task[None]]:
    """`completer.run()` as a task, closed (and, if a test failed, cancelled) at the end."""
    task = asyncio.create_task(completer.run())
    try:
        yield task
    finally:
        completer.close()
        done, _ = await asyncio.wait([task], timeout=5)
        if not done:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_a_lone_outcome_is_written_after_flush_seconds_and_not_before() -> None:
    writer = FakeWriter()
    flush_seconds = 0.3
    completer, written = completer_for(writer, flush_seconds=flush_seconds)
    loop = asyncio.get_running_loop()
    async with running(completer):
        submitted_at = loop.time()
        ids = submit(completer, 1)
        for _ in range(10):  # let the run loop go round: it must wait for the timer
            await asyncio.sleep(0)
        assert writer.calls == 0
        assert completer.pending == 1
        await until(lambda: bool(writer.batches))
        elapsed = loop.time() - submitted_at
    # asyncio may wake a timer up to its clock resolution early.
    assert elapsed >= flush_seconds - 0.01
    assert writer.ids() == [ids]
    assert [r.id for r in written] == ids
    assert completer.pending == 0
    assert completer.counts == {"succeeded": 1}


async def test_the_timer_runs_from_the_oldest_outcome_waiting() -> None:
    writer = FakeWriter()
    completer, _ = completer_for(writer, flush_seconds=0.5)
    async with running(completer):
        first = submit(completer, 1)
        await asyncio.sleep(0.05)  # a later arrival, well inside the timer; not a synchronisation
        second = submit(completer, 1)
        await until(lambda: bool(writer.batches))
    # One timer, one batch: the second outcome did not restart it.
    assert writer.ids() == [first + second]


async def test_a_full_batch_waits_for_the_timer_and_more_is_written_at_once() -> None:
    writer = FakeWriter()
    completer, _ = completer_for(writer, batch_size=3)
    async with running(completer):
        ids = submit(completer, 3)
        for _ in range(10):
            await asyncio.sleep(0)
        assert writer.calls == 0  # exactly a batch: the producer's claim may carry it
        ids += submit(completer, 4)
        await until(lambda: len(writer.batches) == 2)
        # Batches split at batch_size; the one left waits for its timer (LONG) ...
        assert writer.ids() == [ids[:3], ids[3:6]]
        assert completer.pending == 1
    # ... and close() writes it.
    assert writer.ids() == [ids[:3], ids[3:6], ids[6:]]
    assert completer.pending == 0


async def test_close_writes_what_is_left_and_run_returns() -> None:
    writer = FakeWriter()
    completer, written = completer_for(writer, batch_size=2)
    ids = submit(completer, 3)
    task = asyncio.create_task(completer.run())
    completer.close()
    await asyncio.wait_for(task, 5)
    assert writer.ids() == [ids[:2], ids[2:]]
    assert [r.id for r in written] == ids
    assert completer.pending == 0


async def test_close_with_nothing_pending_returns_at_once() -> None:
    writer = FakeWriter()
    completer, _ = completer_for(writer)
    task = asyncio.create_task(completer.run())
    await asyncio.sleep(0)
    completer.close()
    await asyncio.wait_for(task, 5)
    assert writer.calls == 0


async def test_take_hands_one_batch_to_a_claim_and_landed_settles_it() -> None:
    writer = FakeWriter()
    completer, written = completer_for(writer, batch_size=2)
    ids = submit(completer, 3)
    batch = completer.take()
    assert [p.running.id for p in batch] == ids[:2]
    assert completer.pending == 3  # two in the claim's hands, one waiting
    completer.landed(batch, [Finished(p.row.id, "q", "k", p.row.status) for p in batch])
    assert completer.pending == 1
    assert [r.id for r in written] == ids[:2]
    assert completer.counts == {"succeeded": 2}
    assert writer.calls == 0  # the claim wrote them, not the completer


async def test_put_back_keeps_order_and_the_next_write_carries_them_once() -> None:
    writer = FakeWriter()
    completer, written = completer_for(writer, batch_size=2)
    ids = submit(completer, 3)
    first = completer.take()
    second = completer.take()
    assert completer.pending == 3
    later = submit(completer, 1)
    # The claim carrying them failed: back in front, in their order.
    completer.put_back(second)
    completer.put_back(first)
    assert completer.pending == 4
    async with running(completer):
        # More than a batch waits: one goes at once, the rest at close().
        await until(lambda: len(writer.batches) == 1)
    assert [row for batch in writer.ids() for row in batch] == ids + later
    assert writer.ids() == [ids[:2], [ids[2], later[0]]]
    assert [r.id for r in written] == ids + later


async def test_put_back_restarts_the_timer_for_what_it_returns() -> None:
    writer = FakeWriter()
    completer, _ = completer_for(writer, flush_seconds=0.1)
    async with running(completer):
        ids = submit(completer, 1)
        completer.put_back(completer.take())
        await until(lambda: bool(writer.batches))
    assert writer.ids() == [ids]


async def test_a_failed_write_is_kept_and_retried_until_it_lands() -> None:
    writer = FakeWriter(fail=1_000_000)  # down until the test says otherwise
    completer, written = completer_for(writer, flush_seconds=0.0)
    async with running(completer):
        ids = submit(completer, 2)
        await until(lambda: writer.calls >= 2)  # failed, backed off (~0.1 s), tried again
        assert completer.pending == 2  # kept while the database is down
        assert written == []
        writer.fail = 0
        await until(lambda: completer.pending == 0)
    assert writer.calls >= 3
    assert writer.ids() == [ids]  # written once, in order
    assert [r.id for r in written] == ids


async def test_pending_counts_a_write_in_flight() -> None:
    writer = FakeWriter()
    writer.gate.clear()
    completer, written = completer_for(writer, flush_seconds=0.0)
    async with running(completer):
        submit(completer, 2)
        await until(lambda: writer.calls == 1)
        assert completer.pending == 2
        flushed = asyncio.create_task(completer.flush())
        await asyncio.sleep(0)
        assert not flushed.done()
        writer.gate.set()
        await asyncio.wait_for(flushed, 5)
        assert completer.pending == 0
        assert len(written) == 2


async def test_a_row_the_fence_rejects_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = FakeWriter()
    completer, written = completer_for(writer, flush_seconds=0.0)
    ids = submit(completer, 1, Failed("boom")) + submit(completer, 1)
    writer.lost.add(ids[0])
    with caplog.at_level(logging.WARNING, logger="jobq.worker"):
        async with running(completer):
            await until(lambda: completer.pending == 0)
    assert [r.id for r in written] == ids  # both settled: the slot is free either way
    assert completer.counts == {"succeeded": 1}
    assert [r.getMessage() for r in caplog.records] == [
        "outcome Failed not written: the job's lease was lost and another worker may run it"
    ]


async def test_the_row_follows_the_outcome() -> None:
    writer = FakeWriter()
    completer, _ = completer_for(writer)
    submit(completer, 1, Failed("boom"))
    [pending] = completer.take()
    assert isinstance(pending, Pending)
    assert pending.row.status is JobStatus.RETRYING  # attempt 1 of 3
    assert pending.row.error == "boom"
    assert pending.row.worker_id == "w"
