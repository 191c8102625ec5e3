"""`jobq.handlers`: how a handler function's result or error becomes one Outcome (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest

from jobq import Cancelled, CancelledOutcome, Executor, Failed, JobCancelled, JobContext, Succeeded
from jobq.handlers import (
    MAX_TRACEBACK_CHARS,
    MAX_TRACEBACK_FRAMES,
    FunctionHandler,
    describe_error,
    describe_traceback,
    outcome_of,
)
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
        (returns_value, Succeeded(42)),
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
    assert outcome_of({"any": "value"}) == Succeeded({"any": "value"})
    assert outcome_of(Failed("x")) == Failed("x")
    assert describe_error(ValueError()) == "ValueError"
    assert describe_error(ValueError("v")) == "ValueError: v"


def _parse_the_row(payload: dict[str, Any]) -> None:
    raise ValueError(f"row {payload['n']} has no id")


async def raises_nested(ctx: JobContext, payload: dict[str, Any]) -> None:
    _parse_the_row(payload)


def sync_raises_nested(ctx: JobContext, payload: dict[str, Any]) -> None:
    _parse_the_row(payload)


def _recurse(depth: int) -> None:
    if depth == 0:
        raise RuntimeError("x" * 20_000)
    _recurse(depth - 1)


async def raises_deep_and_long(ctx: JobContext, payload: dict[str, Any]) -> None:
    _recurse(200)


@pytest.mark.parametrize("fn", [raises_nested, sync_raises_nested])
async def test_a_failure_keeps_the_users_frames_of_its_traceback(fn: Any) -> None:
    outcome = await run(fn)
    assert isinstance(outcome, Failed) and outcome.traceback is not None
    trace = outcome.traceback
    assert trace.startswith("Traceback (most recent call last):")
    assert f"in {fn.__name__}" in trace and "in _parse_the_row" in trace
    assert trace.rstrip().endswith("ValueError: row 1 has no id")
    # jobq's and asyncio's frames between the worker and the handler are left out.
    assert "jobq/handlers.py" not in trace and "asyncio" not in trace


async def test_a_huge_traceback_is_capped_and_keeps_its_end() -> None:
    outcome = await run(raises_deep_and_long)
    assert isinstance(outcome, Failed) and outcome.traceback is not None
    trace = outcome.traceback
    # The 20,000-character message is cut; the frame that raised stays.
    assert len(trace) < 5000 and trace.rstrip().endswith("x… (cut)")
    assert 'raise RuntimeError("x" * 20_000)' in trace
    # 200 frames deep: the innermost MAX_TRACEBACK_FRAMES (3 shown, the repeats
    # counted, and the one that raised).
    deep = describe_traceback(_caught(lambda: _recurse(200)))
    assert f"[Previous line repeated {MAX_TRACEBACK_FRAMES - 4} more times]" in deep
    chained = describe_traceback(_caught(lambda: _chain(100)))
    assert len(chained) <= MAX_TRACEBACK_CHARS and chained.startswith("… (truncated)\n")
    assert chained.rstrip().endswith("LookupError: link 100")


def _chain(links: int) -> None:
    try:
        if links == 0:
            raise ValueError("the first")
        _chain(links - 1)
    except Exception as exc:
        raise LookupError(f"link {links}") from exc


def _caught(fn: Any) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def test_a_chained_traceback_shows_both_exceptions() -> None:
    def wrap() -> None:
        try:
            _parse_the_row({"n": 2})
        except ValueError as exc:
            raise LookupError("while importing") from exc

    trace = describe_traceback(_caught(wrap))
    assert "ValueError: row 2 has no id" in trace and "LookupError: while importing" in trace
    assert "direct cause" in trace
