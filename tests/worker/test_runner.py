"""`JobRunner`: every way a job's task ends settles it once, to a storable Outcome (no I/O)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from jobq import CancelledOutcome, Failed, JobContext, Succeeded
from jobq.registry import TaskRegistry, TaskSpec
from jobq.types import Interrupted, Job, Outcome
from jobq.worker.runner import MAX_ERROR_CHARS, JobRunner, RunningJob, storable
from tests.support import make_job


class Settled:
    """Collects what the runner settles, and lets a test wait for it."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[RunningJob, Outcome]] = []
        self.event = asyncio.Event()

    def __call__(self, running: RunningJob, outcome: Outcome) -> None:
        self.outcomes.append((running, outcome))
        self.event.set()

    async def one(self) -> Outcome:
        await asyncio.wait_for(self.event.wait(), 10)
        assert len(self.outcomes) == 1
        return self.outcomes[0][1]


def running_job(spec: TaskSpec | None) -> RunningJob:
    job = make_job()
    return RunningJob(job, spec, JobContext(job, "w", None), datetime.now(UTC))


def spec_of(fn: Any) -> TaskSpec:
    return TaskRegistry().register("k", fn)


async def test_a_handlers_outcome_is_settled() -> None:
    async def ok(ctx: JobContext, payload: dict[str, Any]) -> None:
        return None

    settled = Settled()
    running = running_job(spec_of(ok))
    JobRunner(5.0, settled).start(running)
    assert await settled.one() == Succeeded()
    assert running.settled and running.duration >= 0


async def test_an_unregistered_kind_is_released_not_failed() -> None:
    settled = Settled()
    JobRunner(5.0, settled).start(running_job(None))
    assert await settled.one() == Interrupted(
        "kind 'k' is not registered in this worker's app; released to the queue"
    )


async def test_an_executor_that_raises_fails_with_the_error() -> None:
    class Raises:
        async def execute(self, ctx: JobContext, job: Job) -> Outcome:
            raise LookupError("from the executor")

    settled = Settled()
    JobRunner(5.0, settled).start(running_job(spec_of(Raises())))
    assert await settled.one() == Failed("LookupError: from the executor")


async def test_a_cancel_ignored_past_its_grace_settles_cancelled() -> None:
    async def ignores(ctx: JobContext, payload: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    settled = Settled()
    runner = JobRunner(0.01, settled)
    running = running_job(spec_of(ignores))
    runner.start(running)
    runner.request_cancel(running)
    assert running.ctx.cancel_requested
    assert await settled.one() == CancelledOutcome()
    assert running.task is not None
    await asyncio.wait({running.task})
    assert running.task.cancelled()


async def test_force_settles_once_and_cancels_the_task() -> None:
    async def waits(ctx: JobContext, payload: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    settled = Settled()
    runner = JobRunner(5.0, settled)
    running = running_job(spec_of(waits))
    runner.start(running)
    runner.force(running, Interrupted())
    runner.force(running, Succeeded())  # already settled: ignored
    assert await settled.one() == Interrupted()
    assert running.task is not None
    await asyncio.wait({running.task})
    assert len(settled.outcomes) == 1  # the cancelled task does not settle it again


def test_storable_makes_failures_fit_a_text_column() -> None:
    assert storable(Succeeded()) == Succeeded()
    assert storable(Failed("a\x00b")) == Failed("a\\x00b")
    long = storable(Failed("x" * (MAX_ERROR_CHARS + 10)))
    assert isinstance(long, Failed)
    assert len(long.message) <= MAX_ERROR_CHARS and long.message.endswith("… (truncated)")
    same = Failed("short")
    assert storable(same) is same


def test_storable_serialises_a_result_once_or_fails_the_attempt() -> None:
    kept = storable(Succeeded({"a": [1, "é"]}), 100)
    assert isinstance(kept, Succeeded) and kept.encoded == '{"a":[1,"é"]}'
    assert storable(kept, 100) is kept  # already serialised: left alone
    assert storable(Succeeded(), 100) == Succeeded()  # no result: nothing to do
    too_big = storable(Succeeded("é" * 60), 100)  # 122 bytes in UTF-8, 62 characters
    assert too_big == Failed(
        "the handler's result is 122 bytes serialised, over JOBQ_MAX_RESULT_BYTES (100)"
    )
    assert storable(Succeeded(b"bytes"), 100) == Failed(
        "the handler returned a bytes that is not JSON: "
        "Object of type bytes is not JSON serializable"
    )
    surrogate = storable(Succeeded({"k": "\ud800"}), 100)
    assert surrogate == Failed(
        "the handler's result cannot be stored: contains a lone UTF-16 surrogate at k"
    )
