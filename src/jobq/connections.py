"""The `connection=` objects jobq takes, resolved to the driver connection beneath.

    async (App.enqueue, Client.enqueue):  asyncpg.Connection, psycopg.AsyncConnection
        or AsyncCursor, SQLAlchemy AsyncSession or AsyncConnection (on asyncpg or psycopg)
    sync (SyncClient.enqueue, enqueue_sync): psycopg.Connection or Cursor, psycopg2's,
        any DB-API connection or cursor of format paramstyle, SQLAlchemy Session or
        Connection (on psycopg or psycopg2)

Types are recognised through `sys.modules`: an object of psycopg's or SQLAlchemy's
can only exist once its module was imported, so jobq never imports either to
check (`import jobq` stays free of them; an import-linter contract keeps the
core so). A SQLAlchemy Session is flushed first, so the job row follows the
session's pending writes in its transaction, and the connection is the one of
the session's transaction (begun if it had none).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from jobq.config import Settings
from jobq.enqueue_plan import EnqueueResult, KindCatalog
from jobq.job_request import JobRequest
from jobq.transactional import (
    AsyncCursor,
    SyncCursor,
    enqueue_on_async_cursor,
    enqueue_on_cursor,
)

SYNC_KINDS = (
    "a psycopg or psycopg2 connection or cursor, a DB-API connection or cursor, "
    "or a SQLAlchemy Session or Connection"
)
ASYNC_KINDS = (
    "an asyncpg connection, a psycopg AsyncConnection or AsyncCursor, "
    "or a SQLAlchemy AsyncSession or AsyncConnection"
)


def _module_type(module: str, name: str) -> type | None:
    """`module.name` if that module was imported, else None (then no object is one)."""
    found = sys.modules.get(module)
    value = getattr(found, name, None) if found is not None else None
    return value if isinstance(value, type) else None


def _is(obj: object, module: str, name: str) -> bool:
    cls = _module_type(module, name)
    return cls is not None and isinstance(obj, cls)


# --- sync ---------------------------------------------------------------------
def enqueue_sync(
    connection: object,
    requests: Sequence[JobRequest],
    settings: Settings,
    catalog: KindCatalog | None,
    *,
    batch: bool,
) -> list[EnqueueResult]:
    """Enqueue on a synchronous connection, session or cursor, in its transaction."""
    with sync_cursor(connection) as cursor:
        return enqueue_on_cursor(cursor, requests, settings, catalog, batch=batch)


def sync_driver_connection(connection: object) -> Any:
    """A SQLAlchemy Session or Connection as its DB-API connection; others as they are."""
    if _is(connection, "sqlalchemy.orm", "Session"):
        connection.flush()  # type: ignore[attr-defined]
        connection = connection.connection()  # type: ignore[attr-defined]
    if _is(connection, "sqlalchemy.engine", "Connection"):
        return connection.connection.driver_connection  # type: ignore[attr-defined]
    return connection


@contextmanager
def sync_cursor(connection: object) -> Iterator[SyncCursor]:
    """A cursor of `connection`'s transaction: the caller's own cursor as is, else a new
    one, closed after (the caller's cursor keeps its state)."""
    driver = sync_driver_connection(connection)
    if _is_async(driver):
        raise TypeError(
            f"connection= got {type(connection).__name__}, an async connection: "
            "use `await app.enqueue(...)` with it, or a sync one here"
        )
    if callable(getattr(driver, "cursor", None)):
        cursor = driver.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
    elif callable(getattr(driver, "execute", None)) and callable(getattr(driver, "fetchall", None)):
        yield driver
    else:
        raise TypeError(f"connection= takes {SYNC_KINDS}, not {type(connection).__name__}")


def _is_async(driver: object) -> bool:
    return (
        _is(driver, "psycopg", "AsyncConnection")
        or _is(driver, "psycopg", "AsyncCursor")
        or _is(driver, "asyncpg", "Connection")
    )


# --- async --------------------------------------------------------------------
async def async_driver_connection(connection: object) -> Any:
    """A SQLAlchemy AsyncSession or AsyncConnection as its driver connection (asyncpg's
    or psycopg's); others as they are."""
    if _is(connection, "sqlalchemy.ext.asyncio", "AsyncSession"):
        await connection.flush()  # type: ignore[attr-defined]
        connection = await connection.connection()  # type: ignore[attr-defined]
    if _is(connection, "sqlalchemy.ext.asyncio", "AsyncConnection"):
        raw = await connection.get_raw_connection()  # type: ignore[attr-defined]
        return raw.driver_connection
    return connection


@asynccontextmanager
async def async_cursor(driver: object) -> AsyncIterator[AsyncCursor]:
    """A psycopg AsyncCursor of `driver`'s transaction (a new one for a connection)."""
    if _is(driver, "psycopg", "AsyncCursor"):
        yield driver  # type: ignore[misc]
    elif _is(driver, "psycopg", "AsyncConnection"):
        async with driver.cursor() as cursor:  # type: ignore[attr-defined]
            yield cursor
    else:
        raise TypeError(f"connection= takes {ASYNC_KINDS}, not {type(driver).__name__}")


async def enqueue_async(
    driver: object,
    requests: Sequence[JobRequest],
    settings: Settings,
    catalog: KindCatalog | None,
    *,
    batch: bool,
) -> list[EnqueueResult]:
    """Enqueue with a psycopg async connection or cursor (resolved by
    `async_driver_connection`; asyncpg's is `jobq.client`'s own path)."""
    async with async_cursor(driver) as cursor:
        return await enqueue_on_async_cursor(cursor, requests, settings, catalog, batch=batch)
