"""Backing off after database errors, shared by every loop of the worker.

A database that restarts, fails over or drops a connection must not crash a
worker: each loop catches the error, reports it to `jobq.db.outage.OUTAGE`
(one warning line per kind of failure for the whole process, not one per loop
or per retry), waits a jittered doubling delay and carries on. Errors that are
not about the connection (a bug, a missing schema) are retried the same way but
logged with a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import random

import asyncpg

from jobq.db.outage import OUTAGE
from jobq.errors import DatabaseUnavailableError
from jobq.worker.config import BACKOFF_MAX_SECONDS, BACKOFF_MIN_SECONDS

# What a lost or refused connection looks like through asyncpg and its pool.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # asyncpg's race on a connection the server just closed (a restart).
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    DatabaseUnavailableError,
)


class Backoff:
    """A jittered doubling delay that resets after a success."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        minimum: float = BACKOFF_MIN_SECONDS,
        maximum: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        self.log = log
        self.what = what
        self.minimum = minimum
        self.maximum = maximum
        self.failures = 0

    def succeeded(self) -> None:
        if self.failures:
            self.log.debug("%s works again after %d failures", self.what, self.failures)
            OUTAGE.recovered(self.log, self.what)
        self.failures = 0

    def delay(self) -> float:
        ceiling = min(self.maximum, self.minimum * 2 ** min(self.failures, 16))
        return random.uniform(ceiling / 2, ceiling)

    async def failed(self, exc: BaseException, extra: dict[str, object] | None = None) -> None:
        """Log the error (quietly after the first of a streak) and wait."""
        self.failures += 1
        if isinstance(exc, CONNECTION_ERRORS):
            OUTAGE.failed(self.log, self.what, exc, extra)
        else:
            self.log.error("%s failed", self.what, exc_info=exc, extra=extra)
        await asyncio.sleep(self.delay())
