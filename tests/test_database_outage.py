"""A lost database (issue 19): one warning line per kind of failure, no tracebacks.

A throwaway embedded cluster is stopped under a running worker, the HTTP API and
a wait, every path retries for a while, and the cluster is started again."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jobq.db import embedded
from jobq.types import JobStatus
from tests.api.support import http_client
from tests.support import build_test_app, wait_for
from tests.worker.support import is_status, running, worker_settings

pytestmark = pytest.mark.slow


def repeats(caplog: pytest.LogCaptureFixture, what: str) -> int:
    """Failures of `what` said at DEBUG: the retries that were kept quiet."""
    return sum(
        r.levelno == logging.DEBUG and r.getMessage().startswith(f"{what} failed:")
        for r in caplog.records
    )


async def test_a_lost_database_logs_one_warning_per_kind_of_failure(
    embedded_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = await asyncio.to_thread(embedded.start, embedded_home)
    # Heartbeats every second, so that loop also retries within the outage.
    settings = worker_settings(url, f"t_{uuid.uuid4().hex[:12]}", lease_seconds=3.0)
    app = build_test_app(settings)
    client = await app.client()
    caplog.set_level(logging.DEBUG, logger="jobq")
    caplog.set_level(logging.DEBUG, logger="asyncpg")
    later = datetime.now(UTC) + timedelta(hours=1)
    try:
        async with running(app, client), http_client(app, client) as http:
            first = await app.enqueue("noop")
            await wait_for(lambda: is_status(client, first.id, JobStatus.SUCCEEDED))
            # A wait in progress: the wait hub holds its LISTEN connection.
            parked = await app.enqueue("noop", run_at=later)
            waiting = asyncio.create_task(client.wait(parked.id, timeout=300))
            await wait_for(lambda: _holds(client.hub.listening))
            caplog.clear()

            await asyncio.to_thread(embedded.stop, embedded_home)
            answers = Counter[int]()
            for _ in range(5):
                answers[(await http.get("/v1/jobs")).status_code] += 1
                answers[(await http.post("/v1/jobs", json={"kind": "noop"})).status_code] += 1
                answers[(await http.get(f"/v1/jobs/{first.id}")).status_code] += 1
            assert answers == {503: 15}
            assert (await http.get("/readyz")).status_code == 503
            # Every loop of the worker retried, quietly, more than once.
            await wait_for(lambda: _holds(repeats(caplog, "claiming jobs") >= 2), timeout=30)
            await wait_for(lambda: _holds(repeats(caplog, "heartbeat") >= 2), timeout=30)

            await asyncio.to_thread(embedded.start, embedded_home)
            created: list[uuid.UUID] = []

            async def enqueued() -> bool:
                # 503 until the pool has a connection again.
                answer = await http.post("/v1/jobs", json={"kind": "noop"})
                if answer.status_code == 201:
                    created.append(uuid.UUID(answer.json()["id"]))
                return bool(created)

            await wait_for(enqueued, timeout=30)
            await wait_for(lambda: is_status(client, created[0], JobStatus.SUCCEEDED), timeout=30)
            waiting.cancel()
    finally:
        await app.close()

    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    kinds = [getattr(r, "failure_kind", None) for r in loud]
    assert None not in kinds, [r.getMessage() for r in loud]
    # One line per kind: refused, shutting down, no socket, a closed LISTEN...
    assert len(kinds) == len(set(kinds)), [r.getMessage() for r in loud]
    assert len(kinds) <= 6, kinds
    assert any("works again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


async def _holds(value: bool) -> bool:
    return value
