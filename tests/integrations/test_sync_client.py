"""jobq.SyncClient: the blocking API on its own pool, from plain threads."""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from jobq import (
    App,
    Job,
    JobStatus,
    SyncClient,
    UnknownKindError,
    WaitTimeoutError,
)
from jobq.client import Client
from jobq.worker.runtime import Worker
from tests.integrations.support import job_count, succeeded


class Declined(Exception):
    pass


def sync_script(jobs: SyncClient) -> Job:
    """What a plain synchronous script does: its own transaction, no driver of its own."""
    with pytest.raises(Declined), jobs.transaction() as tx:
        tx.enqueue("noop")
        raise Declined
    with jobs.transaction() as tx:
        assert tx.fetch("SELECT 1 AS one")[0]["one"] == 1
        job = tx.enqueue("script", {"result": 42})
        [other] = tx.enqueue_many([{"kind": "noop"}])
        assert other.status is JobStatus.QUEUED
    return job


async def test_a_sync_script_enqueues_in_its_own_transaction(
    app: App, client: Client, worker: Worker
) -> None:
    job = await asyncio.to_thread(sync_script, app.sync)
    assert await job_count(client) == 2  # the declined one rolled back
    await succeeded(client, job.id)
    assert await asyncio.to_thread(app.sync.result, job.id, timeout=10) == 42


def use_from_threads(jobs: SyncClient, threads: int, each: int) -> list[Job]:
    def work(n: int) -> list[Job]:
        made = [jobs.enqueue("script", {"result": n * 100 + i}) for i in range(each)]
        return [jobs.wait(job.id, timeout=20) for job in made]

    with ThreadPoolExecutor(threads) as pool:
        return [job for done in pool.map(work, range(threads)) for job in done]


async def test_the_sync_client_serves_many_threads(
    app: App, client: Client, worker: Worker
) -> None:
    done = await asyncio.to_thread(use_from_threads, app.sync, 6, 5)
    assert len({job.id for job in done}) == 30
    assert all(job.status is JobStatus.SUCCEEDED for job in done)
    assert sorted(job.result for job in done) == sorted(
        n * 100 + i for n in range(6) for i in range(5)
    )


def get_cancel_and_errors(jobs: SyncClient) -> None:
    job = jobs.enqueue("noop", queue="later-queue")
    assert jobs.get(str(job.id)).id == job.id
    assert jobs.cancel(job.id).status is JobStatus.CANCELLED
    assert jobs.cancel(job.id).status is JobStatus.CANCELLED  # again: a no-op
    with pytest.raises(UnknownKindError):
        jobs.enqueue("nope")
    queued = jobs.enqueue("noop", queue="nobody-works-here")
    with pytest.raises(WaitTimeoutError):
        jobs.wait(queued.id, timeout=0.05)


async def test_get_cancel_and_errors(app: App, client: Client) -> None:
    await asyncio.to_thread(get_cancel_and_errors, app.sync)


async def test_close_stops_the_loop_thread_and_a_later_call_reopens(
    app: App, client: Client
) -> None:
    def open_close_reopen() -> uuid.UUID:
        with SyncClient(app.settings, app) as jobs:
            jobs.enqueue("noop")
            assert any(t.name == "jobq-sync" for t in threading.enumerate())
        jobs.close()  # twice is fine
        job = jobs.enqueue("noop")
        jobs.close()
        return job.id

    job_id = await asyncio.to_thread(open_close_reopen)
    assert (await client.get(job_id)).kind == "noop"


FORKED_SCRIPT = """
import os, signal, sys
from jobq import Settings, SyncClient

jobs = SyncClient(Settings(database_url=sys.argv[1], schema=sys.argv[2]), migrate=False)
jobs.open()  # started before the fork, as a preloaded web app's would be
print("before", jobs.enqueue("noop", {"from": "parent"}).id, flush=True)
pid = os.fork()
if pid == 0:
    signal.alarm(30)  # a hang in the child ends it (exit -14), not the test
    print("child", jobs.enqueue("noop", {"from": "child"}).id, flush=True)
    sys.exit(0)  # atexit runs the child's close: it must not hang either
_, status = os.waitpid(pid, 0)
print("child-exit", os.waitstatus_to_exitcode(status), flush=True)
print("after", jobs.enqueue("noop", {"from": "parent"}).id, flush=True)
jobs.close()
"""


@pytest.mark.slow
async def test_a_forked_child_starts_its_own_pool_and_the_parents_keeps_working(
    client: Client, database_url: str
) -> None:
    """Gunicorn's preload_app: a SyncClient opened before the fork, used in both."""
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FORKED_SCRIPT, database_url, client.settings.schema,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(done.communicate(), timeout=90)
    lines = dict(line.split(" ", 1) for line in out.decode().splitlines())
    assert done.returncode == 0, (out, err)
    assert lines.get("child-exit") == "0", (out, err)
    for step in ("before", "child", "after"):
        assert (await client.get(uuid.UUID(lines[step]))).status is JobStatus.QUEUED
