"""Enqueue on a caller's DB-API cursor, inside the caller's transaction.

The shared core of the integrations: psycopg 3 (sync and async), psycopg2,
SQLAlchemy (through the driver connection it holds) and Django's cursor all end
here. The rules are `jobq.enqueue_plan`'s and the statements `sql/queries.sql`'s
(translated by `jobq.db.dbapi`), the same as the asyncpg path of `jobq.client`,
so a job enqueued here validates, replays and conflicts as it would there:

    with connection.cursor() as cursor:             # psycopg, psycopg2, Django
        [result] = enqueue_on_cursor(cursor, [request], settings, app)
    connection.commit()                             # the job is visible, workers wake

The wake-up is a `pg_notify` in the insert, so PostgreSQL delivers it at COMMIT
and a rollback leaves neither job nor notification. Validation errors are raised
before any SQL, so the caller's transaction is untouched by them. A batch with
idempotency keys runs in a savepoint (or, on an autocommit connection outside a
transaction, a transaction of its own), so a conflict undoes the whole batch and
leaves the caller's transaction usable. Nothing here imports a driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Protocol

from jobq.config import Settings
from jobq.db.dbapi import FormatQueries, format_queries, jobs_from_rows, jobs_with_hash_from_rows
from jobq.enqueue_plan import (
    EnqueuePlan,
    EnqueueResult,
    KindCatalog,
    is_serialization_failure,
    isolation_conflict,
    plan_enqueue,
    refuse_dependencies,
)
from jobq.job_request import JobRequest
from jobq.types import Job

_TRANSACTION_IDLE = 0  # libpq's PQTRANS_IDLE, as psycopg 3 and psycopg2 report it


class SyncCursor(Protocol):
    """The part of a DB-API 2 cursor (format paramstyle) that an enqueue uses."""

    @property
    def description(self) -> Any: ...
    def execute(self, query: Any, params: Any = ..., /) -> Any: ...
    def fetchall(self) -> Any: ...


class AsyncCursor(Protocol):
    """The same for psycopg 3's AsyncCursor."""

    @property
    def description(self) -> Any: ...
    async def execute(self, query: Any, params: Any = ..., /) -> Any: ...
    async def fetchall(self) -> Any: ...


def enqueue_on_cursor(
    cursor: SyncCursor,
    requests: Sequence[JobRequest],
    settings: Settings,
    catalog: KindCatalog | None = None,
    *,
    batch: bool = False,
) -> list[EnqueueResult]:
    """Enqueue `requests` with `cursor`, in its connection's transaction; one result
    per request, in order (a single enqueue: `batch=False` and one request)."""
    refuse_dependencies(requests)
    plan = plan_enqueue(requests, settings, catalog, batch=batch)
    queries = format_queries(settings.schema)
    if not plan.needs_transaction:
        return _run(cursor, queries, plan)
    with _atomic(cursor, queries):
        return _run(cursor, queries, plan)


async def enqueue_on_async_cursor(
    cursor: AsyncCursor,
    requests: Sequence[JobRequest],
    settings: Settings,
    catalog: KindCatalog | None = None,
    *,
    batch: bool = False,
    trace_carrier: Mapping[str, str] | None = None,
) -> list[EnqueueResult]:
    """`enqueue_on_cursor` for psycopg 3's AsyncCursor (`trace_carrier`: the producer
    span's context, which `jobq.client` adds to each job's metadata when tracing)."""
    refuse_dependencies(requests)
    plan = plan_enqueue(requests, settings, catalog, batch=batch, trace_carrier=trace_carrier)
    queries = format_queries(settings.schema)
    if not plan.needs_transaction:
        return await _run_async(cursor, queries, plan)
    async with _atomic_async(cursor, queries):
        return await _run_async(cursor, queries, plan)


def _run(cursor: SyncCursor, queries: FormatQueries, plan: EnqueuePlan) -> list[EnqueueResult]:
    sql, params = queries.job_insert_many(plan.to_insert)
    try:
        cursor.execute(sql, params)
    except Exception as exc:
        if is_serialization_failure(exc):
            raise isolation_conflict() from exc
        raise
    inserted = jobs_from_rows(cursor.description, cursor.fetchall())
    existing: list[tuple[Job, bytes | None]] = []
    if keys := plan.keys_to_look_up(inserted):
        # A fresh statement: under READ COMMITTED it sees a conflicting commit.
        sql, params = queries.job_get_by_idempotency_keys(keys)
        cursor.execute(sql, params)
        existing = jobs_with_hash_from_rows(cursor.description, cursor.fetchall())
    found: list[Job] = []
    if unique := plan.unique_keys_to_look_up(inserted):
        sql, params = queries.job_get_by_unique_keys(unique)
        cursor.execute(sql, params)
        found = jobs_from_rows(cursor.description, cursor.fetchall())
    return plan.answer(inserted, existing, found)


async def _run_async(
    cursor: AsyncCursor, queries: FormatQueries, plan: EnqueuePlan
) -> list[EnqueueResult]:
    sql, params = queries.job_insert_many(plan.to_insert)
    try:
        await cursor.execute(sql, params)
    except Exception as exc:
        if is_serialization_failure(exc):
            raise isolation_conflict() from exc
        raise
    inserted = jobs_from_rows(cursor.description, await cursor.fetchall())
    existing: list[tuple[Job, bytes | None]] = []
    if keys := plan.keys_to_look_up(inserted):
        sql, params = queries.job_get_by_idempotency_keys(keys)
        await cursor.execute(sql, params)
        existing = jobs_with_hash_from_rows(cursor.description, await cursor.fetchall())
    found: list[Job] = []
    if unique := plan.unique_keys_to_look_up(inserted):
        sql, params = queries.job_get_by_unique_keys(unique)
        await cursor.execute(sql, params)
        found = jobs_from_rows(cursor.description, await cursor.fetchall())
    return plan.answer(inserted, existing, found)


def _steps(cursor: SyncCursor | AsyncCursor) -> tuple[str, str, tuple[str, ...]]:
    """(start, end, undo) blocks of the all-or-nothing part: a savepoint in the caller's
    transaction, or a transaction of its own on an autocommit connection that has none
    open (a SAVEPOINT there would be an error). psycopg 3 and psycopg2 both expose
    `connection.autocommit` and libpq's transaction status; Django's cursor passes
    them through. A cursor without them is taken to be in a transaction."""
    connection = getattr(cursor, "connection", None)
    info = getattr(connection, "info", None)
    status = getattr(info, "transaction_status", None)
    if getattr(connection, "autocommit", False) is True and status == _TRANSACTION_IDLE:
        return "enqueue_begin", "enqueue_commit", ("enqueue_rollback",)
    return (
        "enqueue_savepoint",
        "enqueue_savepoint_release",
        ("enqueue_savepoint_rollback", "enqueue_savepoint_release"),
    )


@contextmanager
def _atomic(cursor: SyncCursor, queries: FormatQueries) -> Iterator[None]:
    start, end, undo = _steps(cursor)
    cursor.execute(queries.plain(start))
    try:
        yield
    except BaseException:
        for name in undo:
            cursor.execute(queries.plain(name))
        raise
    cursor.execute(queries.plain(end))


@asynccontextmanager
async def _atomic_async(cursor: AsyncCursor, queries: FormatQueries) -> AsyncIterator[None]:
    start, end, undo = _steps(cursor)
    await cursor.execute(queries.plain(start))
    try:
        yield
    except BaseException:
        for name in undo:
            await cursor.execute(queries.plain(name))
        raise
    await cursor.execute(queries.plain(end))
