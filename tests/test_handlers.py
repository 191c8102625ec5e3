"""`jobq.handlers`: how a handler function's result or error becomes one Outcome (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from jobq import Cancelled, CancelledOutcome, Executor, Failed, JobCancelled, JobContext, Succeeded
from jobq.handlers import FunctionHandler, describe_error, outcome_of
from jobq.types import Outcome
from tests.support import make_job


async def run(fn: Any) -> Outcome:
    job = make_job()
    return await FunctionHandler(fn).execute(JobContext(job, "w", None), job)


async def returns_none(ctx: JobContext, payload: dict[str, Any]) -> None:
    return None


async def returns_value(ctx: JobContext, payload: dict[str, Any]) -> int:
    return 42


async def returns_failed(ctx: JobContext, payload: dict[str, Any]) -> Outcome:
    return Failed("said so")


async def returns_cancelled(ctx: JobContext, payload: dict[str, Any]) -> Outcome:
    return Cancelled


async def raises(ctx: JobContext, payload: dict[str, Any]) -> None:
    raise ValueError(f"bad n={payload['n']}")


async def raises_bare(ctx: JobContext, payload: dict[str, Any]) -> None:
    raise KeyError


async def raises_cancel(ctx: JobContext, payload: dict[str, Any]) -> None:
    raise JobCancelled("stop")


def sync_raises(ctx: JobContext, payload: dict[str, Any]) -> None:
    raise RuntimeError("in a thread")


def sync_returns_awaitable(ctx: JobContext, payload: dict[str, Any]) -> Any:
    return returns_failed(ctx, payload)


@pytest.mark.parametrize(
    ("fn", "outcome"),
    [
        (returns_none, Succeeded()),
        (returns_value, Succeeded()),
        (returns_failed, Failed("said so")),
        (returns_cancelled, CancelledOutcome()),
        (raises, Failed("ValueError: bad n=1")),
        (raises_bare, Failed("KeyError")),
        (raises_cancel, CancelledOutcome()),
        (sync_raises, Failed("RuntimeError: in a thread")),
        (sync_returns_awaitable, Failed("said so")),
    ],
)
async def test_every_result_maps_to_one_outcome(fn: Any, outcome: Outcome) -> None:
    assert await run(fn) == outcome


def test_function_handler_is_an_executor_and_knows_sync_from_async() -> None:
    assert isinstance(FunctionHandler(returns_none), Executor)
    assert FunctionHandler(returns_none).is_async
    assert not FunctionHandler(sync_raises).is_async


def test_outcome_of_and_describe_error() -> None:
    assert outcome_of(None) == Succeeded()
    assert outcome_of({"any": "value"}) == Succeeded()
    assert outcome_of(Failed("x")) == Failed("x")
    assert describe_error(ValueError()) == "ValueError"
    assert describe_error(ValueError("v")) == "ValueError: v"
