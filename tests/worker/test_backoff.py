"""A worker loop's error while the database restarts is a warning line, not a traceback."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from jobq.worker.backoff import Backoff


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError("cannot switch to state 12; another operation is in progress"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_a_closed_connection_is_a_connection_error(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("tests.backoff")
    backoff = Backoff(log, "claiming", minimum=0.001, maximum=0.001)
    with caplog.at_level(logging.DEBUG, logger="tests.backoff"):
        await backoff.failed(error)
        await backoff.failed(error)
    first, second = caplog.records
    assert (first.levelno, first.exc_info) == (logging.WARNING, None)
    assert type(error).__name__ in first.getMessage()
    assert second.levelno == logging.DEBUG  # quiet for the rest of the streak


async def test_a_bug_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    backoff = Backoff(logging.getLogger("tests.backoff"), "claiming", minimum=0.001, maximum=0.001)
    with caplog.at_level(logging.DEBUG, logger="tests.backoff"):
        await backoff.failed(KeyError("x"))
    assert caplog.records[0].levelno == logging.ERROR
    assert caplog.records[0].exc_info is not None
