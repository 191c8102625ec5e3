"""Workers ride out a database restart, on a private embedded PostgreSQL that this
test starts and restarts for itself (never the server other tests share)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import JobStatus
from jobq.client import Client
from jobq.db import embedded
from jobq.worker.options import WorkerOptions
from jobq.worker.runtime import Worker
from tests.support import wait_for
from tests.worker.support import all_status, build_worker_app, is_status, worker_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def home() -> Iterator[Path]:
    # Not under pytest's basetemp: as root the server runs as a `pgserver` user that
    # must traverse the folders above its data, and every pytest session that starts
    # (another xdist worker, a colleague's run) makes /tmp/pytest-of-root private again.
    folder = Path(tempfile.mkdtemp(prefix="jobq-restart-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_workers_carry_on_after_the_database_restarts(home: Path) -> None:
    url = await asyncio.to_thread(embedded.start, home)
    try:
        # A 60 s poll: after the restart only a re-established LISTEN wakes a worker fast.
        settings = worker_settings(url, "jobq", lease_seconds=15.0, poll_interval_ms=60_000)
        app = build_worker_app(settings)
        client = await app.client()
        jobs = await app.enqueue_many(
            [{"kind": "sleep", "payload": {"seconds": 0.2}} for _ in range(60)]
        )
        ids = [j.id for j in jobs]
        workers = [Worker(app.registry, client, WorkerOptions(concurrency=4)) for _ in range(2)]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            await wait_for(lambda: _succeeded_at_least(client, ids, 5), timeout=20)
            await asyncio.to_thread(embedded.stop, home)
            assert await asyncio.to_thread(embedded.attach, home) is None  # really down
            await asyncio.to_thread(embedded.start, home)
            assert await _succeeded(client, ids) < len(ids)  # the restart hit mid-run
            await wait_for(lambda: all_status(client, ids, JobStatus.SUCCEEDED), timeout=40)
            await wait_for(lambda: _listening_again(workers), timeout=20)
            began = time.monotonic()
            late = await app.enqueue("noop")
            await wait_for(lambda: is_status(client, late.id, JobStatus.SUCCEEDED), timeout=10)
            assert time.monotonic() - began < 2.0
            assert not any(t.done() for t in tasks)  # nobody crashed
        finally:
            for worker in workers:
                worker.request_stop()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert await client.workers() == []
        page = await client.list_jobs(limit=100)
        assert {j.status for j in page.jobs} == {JobStatus.SUCCEEDED}
        await app.close()
    finally:
        await asyncio.to_thread(embedded.stop, home)


async def _succeeded(client: Client, ids: list[uuid.UUID]) -> int:
    return sum([(await client.get(i)).status is JobStatus.SUCCEEDED for i in ids])


async def _succeeded_at_least(client: Client, ids: list[uuid.UUID], n: int) -> bool:
    return await _succeeded(client, ids) >= n


async def _listening_again(workers: list[Worker]) -> bool:
    return all(w.listener.connects >= 2 and w.listener.listening for w in workers)
