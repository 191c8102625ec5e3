"""jobq.testing: run a handler without a database; drain a queue in a test."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from jobq import App, Cancelled, CancelledOutcome, Failed, JobContext, Succeeded, UnknownKindError
from jobq.client import Client
from jobq.testing import DrainResult, drain, run_task, run_task_async


def make_app() -> App:
    app = App()
    seen: list[Any] = []

    @app.task("echo")
    async def echo(ctx: JobContext, payload: dict[str, Any]) -> None:
        seen.append((ctx.attempt, ctx.job.payload, ctx.traceparent, ctx.pool))
        if payload.get("fail"):
            raise ValueError("asked to fail")

    @app.task("blocking")
    def blocking(ctx: JobContext, payload: dict[str, Any]) -> Any:
        time.sleep(0.01)
        return Cancelled if ctx.cancel_requested else None

    @app.task("slow", timeout=0.05)
    async def slow(ctx: JobContext, payload: dict[str, Any]) -> None:
        await asyncio.sleep(5)

    app.seen = seen  # type: ignore[attr-defined]
    return app


def test_run_task_returns_the_outcome_without_a_database() -> None:
    app = make_app()
    metadata = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    assert run_task(app, "echo", {"n": (1, 2)}, attempt=3, metadata=metadata) == Succeeded()
    # The payload went through JSON, as through the database: the tuple is a list.
    assert app.seen == [(3, {"n": [1, 2]}, metadata["traceparent"], None)]  # type: ignore[attr-defined]
    assert run_task(app, "echo", {"fail": True}) == Failed("ValueError: asked to fail")


def test_run_task_runs_sync_handlers_honours_cancel_and_timeouts() -> None:
    app = make_app()
    assert run_task(app, "blocking") == Succeeded()
    assert run_task(app, "blocking", cancel=True) == CancelledOutcome()
    assert run_task(app, "slow") == Failed("timed out after 0.05s")


def test_run_task_refuses_an_unknown_kind() -> None:
    with pytest.raises(UnknownKindError, match="known kinds: blocking, echo, slow"):
        run_task(make_app(), "nope")


async def test_in_an_async_test_await_run_task_async() -> None:
    app = make_app()
    with pytest.raises(RuntimeError, match="run_task_async"):
        run_task(app, "echo")
    assert await run_task_async(app, "echo") == Succeeded()


async def test_drain_runs_the_queue_until_empty_and_counts_outcomes(
    app: App, client: Client
) -> None:
    await app.enqueue_many(
        [
            {"kind": "noop"},
            {"kind": "noop"},
            {"kind": "script", "payload": {"action": "ok"}},
            {"kind": "script", "payload": {"action": "fail"}},
            {"kind": "script", "payload": {"action": "cancel"}},
            {"kind": "script", "payload": {"action": "fail"}, "max_attempts": 1},
            {"kind": "noop", "queue": "elsewhere"},
        ]
    )
    result = await asyncio.wait_for(drain(app, queues=["default"]), 30)
    # The failure with attempts left is retried later (retry base 1 s), not in this drain.
    assert result == DrainResult(succeeded=3, retried=1, failed_permanent=1, cancelled=1)
    assert result.total == 6
    assert await drain(app, queues=["elsewhere"]) == DrainResult(succeeded=1)
    assert await drain(app) == DrainResult()


def test_run_task_pins_the_job_id() -> None:
    import uuid

    app = App()
    seen: list[uuid.UUID] = []

    @app.task("who")
    async def who(ctx: JobContext, payload: dict[str, Any]) -> None:
        seen.append(ctx.job.id)

    job_id = uuid.uuid4()
    assert run_task(app, "who", job_id=job_id) == Succeeded()
    assert seen == [job_id]
