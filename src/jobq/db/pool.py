"""Connects to PostgreSQL: the URL (DATABASE_URL or the embedded server), pools and sessions."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, NoReturn

import asyncpg

from jobq.config import Settings, redact
from jobq.db.loader import load_sql, read_package_sql
from jobq.db.outage import OUTAGE, OUTAGE_LOG_WINDOW_SECONDS, OutageLog
from jobq.errors import DatabaseUnavailableError, EmbeddedDatabaseError

log = logging.getLogger("jobq.db")

CONNECT_DEADLINE_SECONDS = 10.0
# Retrying longer than this says what it waits for, rather than stay silent to the deadline.
CONNECT_QUIET_SECONDS = 1.0
POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10

# Errors that mean "not reachable (yet)", worth retrying until the deadline:
# refused or reset sockets, a server still starting or shutting down.
_TRANSIENT = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.TooManyConnectionsError,
)


# asyncpg's pool logs "Failed to restore the pool connection floor" with a full
# traceback at every reconnect attempt while the server is down (5-7 per
# restart). Once per kind of failure in the process (jobq.db.outage) is enough:
# the loops that use the pool say the same failure through the same log.
POOL_FLOOR_LOG_WINDOW_SECONDS = OUTAGE_LOG_WINDOW_SECONDS


class PoolFloorFilter(logging.Filter):
    """Turns asyncpg's pool-floor warning into one line per failure kind per window,
    shared with every other report of the outage (`outage`, default the process's)."""

    def __init__(self, window: float | None = None, outage: OutageLog | None = None) -> None:
        super().__init__()
        self.outage = outage or (OUTAGE if window is None else OutageLog(window))

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("Failed to restore the pool connection floor"):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        kind = type(exc).__name__ if exc is not None else "unknown"
        if not self.outage.first(kind):
            return False
        record.failure_kind = kind
        record.msg = "the pool cannot restore its idle connections yet (%s: %s); retrying"
        record.args = (kind, exc)
        record.exc_info = None
        record.exc_text = None
        return True


def quiet_pool_floor_warnings() -> None:
    """Install PoolFloorFilter on asyncpg's pool logger, once per process."""
    pool_log = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, PoolFloorFilter) for f in pool_log.filters):
        pool_log.addFilter(PoolFloorFilter())


async def resolve_database_url(settings: Settings, *, start_embedded: bool) -> str:
    """DATABASE_URL when set; else the embedded server, started only if asked."""
    if settings.database_url:
        return settings.database_url
    from jobq.db import embedded

    home = settings.home.resolve()
    if start_embedded:
        return await asyncio.to_thread(embedded.start, home)
    url = await asyncio.to_thread(embedded.attach, home)
    if url is None:
        raise EmbeddedDatabaseError(
            f"no embedded jobq database is running in {home}; start one with "
            "`jobq serve`, `jobq worker` or `jobq migrate`, or set DATABASE_URL"
        )
    return url


def connect_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "statement_cache_size": settings.statement_cache,
        "server_settings": {"application_name": f"jobq[{os.getpid()}]"},
    }


async def create_pool(
    url: str,
    settings: Settings,
    *,
    min_size: int = POOL_MIN_SIZE,
    max_size: int = POOL_MAX_SIZE,
    deadline_seconds: float = CONNECT_DEADLINE_SECONDS,
) -> asyncpg.Pool:
    """A pool whose first connection is retried until a deadline (a server that
    has just started, or the embedded one's stale socket, refuses for a moment)."""
    quiet_pool_floor_warnings()
    started = time.monotonic()
    deadline = started + deadline_seconds
    delay = 0.05
    said = False
    while True:
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                reset=_keep_session,
                init=init_connection,
                **connect_kwargs(settings),
            )
            assert pool is not None
            return pool
        except _TRANSIENT as exc:
            if time.monotonic() + delay > deadline:
                raise DatabaseUnavailableError(
                    f"cannot reach PostgreSQL at {redact(url)}: {exc}. "
                    "Is the server running and DATABASE_URL right?"
                ) from exc
            if not said and time.monotonic() - started >= CONNECT_QUIET_SECONDS:
                said = True
                log.info(
                    "waiting for PostgreSQL at %s (up to %gs): %s",
                    redact(url),
                    deadline_seconds,
                    exc,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        except (
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidCatalogNameError,
            asyncpg.InvalidPasswordError,
        ) as exc:
            raise DatabaseUnavailableError(f"PostgreSQL at {redact(url)} refused: {exc}") from exc


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on every release (`RESET ALL; UNLISTEN *; ...`):
    one extra round trip per pool use, measured as a quarter of a single enqueue.
    jobq sets no session state on pooled connections (LISTEN has its own), and
    asyncpg still rolls back a transaction left open. Handlers that use
    `ctx.pool` must likewise leave no session state behind."""


@functools.cache
def _connection_sql() -> dict[str, str]:
    """The schema-free blocks of queries.sql a pool's init runs (before any Queries exists)."""
    return load_sql(read_package_sql("queries.sql"), "")


# A connection whose peer vanished without a reset reaching this end (a cut
# link, a reset dropped on the way, a host gone) is half-open: a statement sent
# on it waits for TCP's retransmissions to give up (~15 minutes on Linux), and
# an idle one never notices. A worker's claim carries finished jobs' outcomes,
# and the heartbeat keeps renewing jobs whose outcome is in flight, so a claim
# stuck that long held its jobs that long (the chaos suite's connection-reset
# fault, docs/RELIABILITY.md). Unacknowledged data now fails the connection
# after TCP_USER_TIMEOUT, and keepalives probe an idle one; the loops' backoff
# then retries on a new connection, carrying the same outcomes.
TCP_USER_TIMEOUT_SECONDS = 20
TCP_KEEPALIVE_IDLE_SECONDS = 15
TCP_KEEPALIVE_INTERVAL_SECONDS = 5
TCP_KEEPALIVE_PROBES = 3


def tune_tcp(conn: asyncpg.Connection) -> bool:
    """Keepalives and a user timeout on `conn`'s socket when it is TCP (a Unix
    socket has no peer to lose); False when there is nothing to tune."""
    # asyncpg exposes no socket options; its transport is a private attribute.
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", None), TCP_KEEPALIVE_IDLE_SECONDS),
        (
            socket.IPPROTO_TCP,
            getattr(socket, "TCP_KEEPINTVL", None),
            TCP_KEEPALIVE_INTERVAL_SECONDS,
        ),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None), TCP_KEEPALIVE_PROBES),
        (
            socket.IPPROTO_TCP,
            getattr(socket, "TCP_USER_TIMEOUT", None),
            TCP_USER_TIMEOUT_SECONDS * 1000,
        ),
    ]
    for level, name, value in options:
        if name is None:  # not every platform has every option (macOS: no user timeout)
            continue
        try:
            sock.setsockopt(level, name, value)
        except OSError as exc:  # a sandbox may refuse one: the connection works without it
            log.debug("cannot set TCP option %s on a database connection: %s", name, exc)
    return True


async def init_connection(conn: asyncpg.Connection) -> None:
    """A new pooled connection: its socket tuned (`tune_tcp`), its types loaded."""
    tune_tcp(conn)
    await load_array_codecs(conn)


async def load_array_codecs(conn: asyncpg.Connection) -> None:
    """Make a new pooled connection look up the array types jobq's statements pass
    (`connection_array_types`) now, with JIT off for this one transaction.

    asyncpg knows text[] but looks the others up in the catalog the first time a
    connection meets them, with a recursive query that JIT compilation can stretch
    past a second (PostgreSQL 15 with jit on, measured: 1.5 s). That landed on a
    worker's first claim and a client's first enqueue."""
    sql = _connection_sql()
    await conn.execute(sql["connection_begin_without_jit"])
    try:
        await conn.fetchrow(sql["connection_array_types"])
    finally:
        await conn.execute(sql["connection_commit"])


# A LISTEN connection's round trip this often finds one that died without a FIN.
LISTEN_KEEPALIVE_SECONDS = 10.0


async def hold_listening(lost: asyncio.Event, ping: Callable[[], Awaitable[object]]) -> NoReturn:
    """Keep a LISTEN connection until it is lost (`lost`, set by its termination
    listener), pinging it every LISTEN_KEEPALIVE_SECONDS; then ConnectionError, for the
    caller's reconnect loop. Shared by the worker's listener and the wait hub."""
    while not lost.is_set():
        with suppress(TimeoutError):
            async with asyncio.timeout(LISTEN_KEEPALIVE_SECONDS):
                await lost.wait()
        if not lost.is_set():
            async with asyncio.timeout(LISTEN_KEEPALIVE_SECONDS):
                await ping()
    raise ConnectionError("the LISTEN connection was closed")


async def connect(url: str, settings: Settings) -> asyncpg.Connection:
    """One session connection (LISTEN needs one of its own)."""
    try:
        conn: asyncpg.Connection = await asyncpg.connect(url, **connect_kwargs(settings))
    except _TRANSIENT as exc:
        raise DatabaseUnavailableError(f"cannot reach PostgreSQL at {redact(url)}: {exc}") from exc
    tune_tcp(conn)
    return conn
