"""What a handler sees and how its result becomes an Outcome: JobContext, Executor, FunctionHandler.

A handler is `handler(ctx, payload)`, async or sync. It returns normally
(succeeded; what it returns, a JSON value, is the job's `result`), raises
(failed, then the retry policy), returns `jobq.Snooze(s)` (run again in s
seconds, the attempt not counted), or returns
`jobq.Cancelled` / raises `jobq.JobCancelled` (cancelled). While it runs it may
report progress: `await ctx.progress(0.4, {"step": "resize"})`, or
`ctx.set_progress(...)` from a sync handler (jobq.progress). `FunctionHandler`
maps every one of those to a closed `Outcome` and never touches the database.
An object with `async execute(ctx, job) -> Outcome` (the public `jobq.Executor`
protocol) is the lower-level form of a handler.
Sync handlers run in a thread; a thread cannot be interrupted, so a sync
handler that ignores a cancel keeps running after its job is marked cancelled.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import asyncpg

from jobq.errors import JobCancelled
from jobq.job_request import dump_json, find_unstorable
from jobq.progress import ProgressReport, ProgressSlot
from jobq.types import (
    CancelledOutcome,
    DependencyResult,
    DependencyResults,
    Failed,
    Job,
    Outcome,
    Snooze,
    Succeeded,
)

# A failed attempt keeps its traceback, trimmed: the innermost
# MAX_TRACEBACK_FRAMES frames of each exception in the chain, jobq's and
# asyncio's own frames left out, each line cut at MAX_LINE_CHARS, then the last
# MAX_TRACEBACK_CHARS characters (the end holds the frame that raised and the
# exception's line).
MAX_TRACEBACK_FRAMES = 30
MAX_TRACEBACK_CHARS = 8 * 1024
MAX_LINE_CHARS = 500
_TRUNCATED = "… (truncated)\n"
_JOBQ_DIR = Path(__file__).parent
# Frames of the machinery between the worker and the user's handler.
_MACHINERY = (
    str(_JOBQ_DIR / "handlers.py"),
    str(_JOBQ_DIR / "registry.py"),
    str(_JOBQ_DIR / "worker") + "/",
    str(Path(asyncio.__file__).parent) + "/",
    str(Path(traceback.__file__).parent / "concurrent") + "/",
    str(Path(traceback.__file__).parent / "threading.py"),
)

# Guards the making of a context's ProgressSlot (once per job that reports, so
# one lock for all of them is no contention).
_SLOT_MAKING = threading.Lock()

# W3C Trace Context, version 00's shape: version-trace_id-parent_id-flags.
_TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def valid_traceparent(value: object) -> str | None:
    """`value` if it is a W3C `traceparent`, else None. Version ff and all-zero
    trace or parent ids are invalid (W3C Trace Context §3.2). The metadata is the
    client's: anything else is neither carried to the handler nor logged."""
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT_RE.fullmatch(value)
    if match is None or value.startswith("ff") or not all(int(g, 16) for g in match.groups()):
        return None
    return value


DependencyReader = Callable[[uuid.UUID], Awaitable[list[DependencyResult]]]


@dataclass
class JobContext:
    """What a handler gets besides its payload."""

    job: Job
    worker_id: str
    pool: asyncpg.Pool | None
    cancel_event: asyncio.Event = field(default_factory=asyncio.Event)
    shutdown_event: asyncio.Event = field(default_factory=asyncio.Event)
    # The latest progress report, which the worker's heartbeat writes. Made at the
    # first report: most jobs never report, and a draining worker makes thousands
    # of contexts a second.
    progress_slot: ProgressSlot | None = None
    # Reads a job's dependencies (the worker passes its client's reader): only a
    # handler that asks pays for the read, so the claim stays as it was.
    dependency_reader: DependencyReader | None = None

    @property
    def cancel_requested(self) -> bool:
        """True once a cancel of this job reached the worker (safe to read from a thread)."""
        return self.cancel_event.is_set()

    @property
    def shutdown_requested(self) -> bool:
        """True once the worker process is shutting down."""
        return self.shutdown_event.is_set()

    @property
    def attempt(self) -> int:
        return self.job.attempts

    @property
    def traceparent(self) -> str | None:
        """The job metadata's `traceparent` when it is a valid W3C one."""
        return valid_traceparent(self.job.metadata.get("traceparent"))

    async def progress(self, fraction: float, details: dict[str, Any] | None = None) -> None:
        """Report progress: `fraction` from 0 to 1 and optional `details`, a small
        JSON object (at most 4 KiB). Cheap to call often: only the latest report is
        kept and written, with the next heartbeat. A bad report raises ValueError."""
        self.set_progress(fraction, details)

    def set_progress(self, fraction: float, details: dict[str, Any] | None = None) -> None:
        """`progress()` for a sync handler (safe to call from its thread)."""
        slot = self.progress_slot
        if slot is None:
            with _SLOT_MAKING:
                slot = self.progress_slot
                if slot is None:
                    slot = self.progress_slot = ProgressSlot()
        slot.report(fraction, details)

    def pending_progress(self) -> ProgressReport | None:
        """The latest report not yet written (for the worker's heartbeat and completer)."""
        slot = self.progress_slot
        return slot.pending() if slot is not None else None

    def progress_written(self, report: ProgressReport) -> None:
        """`report` reached the database (the worker's heartbeat says so)."""
        if self.progress_slot is not None:
            self.progress_slot.written(report)

    async def dependency_results(self) -> DependencyResults:
        """How this job's dependencies ended (`depends_on`, a workflow's `after`,
        a batch's members), with their results; read from the database on each call."""
        if self.dependency_reader is None:
            raise RuntimeError("this context has no database to read dependencies from")
        return DependencyResults(await self.dependency_reader(self.job.id))

    def raise_if_cancelled(self) -> None:
        if self.cancel_requested:
            raise JobCancelled(f"job {self.job.id} was cancelled")

    async def sleep(self, seconds: float) -> None:
        """Sleep, but raise JobCancelled as soon as a cancel arrives."""
        try:
            await asyncio.wait_for(self.cancel_event.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise JobCancelled(f"job {self.job.id} was cancelled")


@runtime_checkable
class Executor(Protocol):
    """The lower-level handler protocol of the seed: one claimed job in, one outcome out."""

    async def execute(self, ctx: JobContext, job: Job) -> Outcome: ...


HandlerFunction = Callable[[JobContext, dict[str, Any]], Any]


class FunctionHandler:
    """The `Executor` of a `handler(ctx, payload)` function: maps what it does to an Outcome."""

    def __init__(self, handler: HandlerFunction) -> None:
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)

    async def execute(self, ctx: JobContext, job: Job) -> Outcome:
        try:
            if self.is_async:
                result = await self.handler(ctx, job.payload)
            else:
                result = await asyncio.to_thread(self.handler, ctx, job.payload)
                if inspect.isawaitable(result):
                    result = await result
        except JobCancelled:
            return CancelledOutcome()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a handler's failure is data, not a crash
            return Failed(describe_error(exc), describe_traceback(exc))
        return outcome_of(result)


# A tuple, built once: `A | B | ...` in isinstance() makes a union at every call.
_RETURNABLE_OUTCOMES = (Succeeded, Failed, CancelledOutcome, Snooze)


def outcome_of(result: Any) -> Outcome:
    if isinstance(result, _RETURNABLE_OUTCOMES):
        return result
    return Succeeded(result)


class UnstorableResult(ValueError):
    """A handler's return value that jobq cannot store as the job's result."""


def encode_result(value: Any, max_bytes: int) -> str | None:
    """`value` as the JSON text stored in the job's `result` (None for None), or
    UnstorableResult saying why not: not JSON (the type), over `max_bytes`
    serialised (JOBQ_MAX_RESULT_BYTES), or JSON that PostgreSQL's jsonb cannot
    hold (U+0000, a lone surrogate; nesting deeper than jobq reads back)."""
    if value is None:
        return None
    try:
        text = dump_json(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise UnstorableResult(
            f"the handler returned a {type(value).__name__} that is not JSON: {exc}"
        ) from None
    try:
        size = len(text.encode())
    except UnicodeEncodeError:
        size = -1  # a lone surrogate: find_unstorable below names where
    if size > max_bytes:
        raise UnstorableResult(
            f"the handler's result is {size} bytes serialised, over "
            f"JOBQ_MAX_RESULT_BYTES ({max_bytes})"
        )
    problem = find_unstorable(value)
    if problem is not None:
        raise UnstorableResult(f"the handler's result cannot be stored: {problem}")
    return text


def describe_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe_traceback(exc: BaseException) -> str:
    """`exc`'s traceback as Python prints it, trimmed for the attempt history: the
    user's frames only (all of them if none is the user's), the innermost
    MAX_TRACEBACK_FRAMES of each exception, lines cut at MAX_LINE_CHARS, the last
    MAX_TRACEBACK_CHARS characters."""
    te = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    pending = [te]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = _trimmed(current.stack)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    # A long line (most often the exception's message, which `error` keeps
    # anyway) is cut so that it cannot crowd the frames out.
    text = "".join(
        line if len(line) <= MAX_LINE_CHARS else f"{line[:MAX_LINE_CHARS]}… (cut)\n"
        for chunk in te.format()
        for line in chunk.splitlines(keepends=True)
    )
    if len(text) > MAX_TRACEBACK_CHARS:
        text = _TRUNCATED + text[-(MAX_TRACEBACK_CHARS - len(_TRUNCATED)) :]
    return text


def _trimmed(stack: traceback.StackSummary) -> traceback.StackSummary:
    frames = [f for f in stack if not f.filename.startswith(_MACHINERY)] or list(stack)
    if len(frames) > MAX_TRACEBACK_FRAMES:
        frames = frames[-MAX_TRACEBACK_FRAMES:]
    return traceback.StackSummary.from_list(frames)
