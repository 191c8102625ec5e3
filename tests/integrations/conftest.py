"""Fixtures of the integration tests: a real worker that only NOTIFY can wake.

Polling is set to ten minutes, so a job committed through another driver runs
within a test's deadline only because the COMMIT delivered the insert's
`pg_notify` and woke the worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobq import App, Settings
from jobq.client import Client
from jobq.worker.runtime import Worker
from tests.worker.support import running

NO_POLLING_MS = 600_000


@pytest.fixture
def settings(database_url: str, schema: str) -> Settings:
    return Settings(
        database_url=database_url,
        schema=schema,
        lease_seconds=30.0,
        poll_interval_ms=NO_POLLING_MS,
    )


@pytest.fixture
async def worker(app: App, client: Client) -> AsyncIterator[Worker]:
    """A worker listening in this event loop (start it before the commit under test)."""
    async with running(app, client, concurrency=4) as started:
        yield started
