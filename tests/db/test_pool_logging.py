"""asyncpg's pool-floor warning during a restart: one line per failure kind, no traceback."""

from __future__ import annotations

import inspect
import logging

import asyncpg.pool
import pytest

from jobq.db.pool import PoolFloorFilter, quiet_pool_floor_warnings

ASYNCPG_MESSAGE = "Failed to restore the pool connection floor; retrying"


def asyncpg_warns(exc: BaseException) -> None:
    """What asyncpg's Pool._maintain_min_size logs for each failed reconnect."""
    try:
        raise exc
    except BaseException:
        logging.getLogger("asyncpg.pool").warning(ASYNCPG_MESSAGE, exc_info=True)


def test_asyncpg_still_logs_the_message_the_filter_knows() -> None:
    assert "Failed to restore the pool connection " in inspect.getsource(asyncpg.pool)


def test_a_restart_logs_one_line_per_failure_kind(caplog: pytest.LogCaptureFixture) -> None:
    pool_log = logging.getLogger("asyncpg.pool")
    quiet_pool_floor_warnings()
    quiet_pool_floor_warnings()  # installing twice keeps one filter
    assert sum(isinstance(f, PoolFloorFilter) for f in pool_log.filters) == 1
    pool_log.filters[:] = [PoolFloorFilter()]  # a fresh window for this test
    with caplog.at_level(logging.WARNING, logger="asyncpg.pool"):
        for _ in range(6):
            asyncpg_warns(ConnectionRefusedError(111, "Connect call failed"))
        asyncpg_warns(asyncpg.CannotConnectNowError("the database system is starting up"))
        asyncpg_warns(asyncpg.CannotConnectNowError("the database system is starting up"))
        pool_log.info("an unrelated line")
    lines = [r for r in caplog.records if r.name == "asyncpg.pool"]
    assert [r.getMessage() for r in lines[:2]] == [
        "the pool cannot restore its idle connections yet "
        "(ConnectionRefusedError: [Errno 111] Connect call failed); retrying",
        "the pool cannot restore its idle connections yet "
        "(CannotConnectNowError: the database system is starting up); retrying",
    ]
    assert all(r.exc_info is None for r in lines[:2])
    assert len(lines) == 2  # INFO is below the captured level; the repeats were dropped


def test_the_window_lets_a_later_failure_through() -> None:
    def record() -> logging.LogRecord:
        return logging.LogRecord("asyncpg.pool", logging.WARNING, "", 0, ASYNCPG_MESSAGE, (), None)

    assert PoolFloorFilter(window=0.0).filter(record())
    quiet, within = PoolFloorFilter(window=0.0), PoolFloorFilter(window=3600.0)
    assert quiet.filter(record()) and quiet.filter(record())
    assert within.filter(record()) and not within.filter(record())
