"""`jobq worker` as a process: SIGKILL, SIGTERM, a second signal, the supervisor."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest

from jobq import App, JobContext, JobStatus, Settings
from jobq.client import Client
from jobq.worker.runtime import Worker
from tests.support import insert_job, wait_for
from tests.worker.support import (
    all_status,
    build_worker_app,
    is_status,
    subprocess_env,
    worker_command,
    worker_settings,
)

pytestmark = pytest.mark.slow

LEASE = 2.0


@pytest.fixture
def settings(database_url: str, schema: str) -> Settings:
    return worker_settings(database_url, schema, lease_seconds=LEASE, retry_base_ms=50)


@pytest.fixture
def app(settings: Settings) -> App:
    return build_worker_app(settings)


class Proc:
    """A `jobq worker` subprocess whose stderr is collected as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        assert process.stderr is not None
        self._reader = asyncio.create_task(self._read(process.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    async def wait(self, within: float) -> int:
        code = await asyncio.wait_for(self.process.wait(), within)
        await self._reader
        return code

    def output(self) -> str:
        return "\n".join(self.lines[-40:])


@asynccontextmanager
async def worker_process(settings: Settings, *args: str, **env: str) -> AsyncIterator[Proc]:
    process = await asyncio.create_subprocess_exec(
        *worker_command(*args),
        env=subprocess_env(settings, **env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    proc = Proc(process)
    try:
        yield proc
    finally:
        if process.returncode is None:
            with suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        await proc._reader


async def _locked_by_someone(client: Client, job_id: Any) -> bool:
    job = await client.get(job_id)
    return job.status is JobStatus.RUNNING and job.locked_by is not None


async def test_a_sigkilled_workers_job_is_finished_by_another_within_two_leases(
    app: App, client: Client, settings: Settings
) -> None:
    job = await app.enqueue("sleep", {"seconds": 120})
    async with worker_process(settings) as victim:
        await wait_for(lambda: _locked_by_someone(client, job.id), timeout=20)
        victim_id = (await client.get(job.id)).locked_by
        # The other worker: an app whose `sleep` returns at once.
        quick = App(settings)

        @quick.task("sleep")
        async def sleep(ctx: JobContext, payload: dict[str, Any]) -> None:
            return None

        survivor = Worker(quick.registry, client)
        task = asyncio.create_task(survivor.run())
        try:
            await wait_for(lambda: _listening(survivor))
            victim.process.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            await wait_for(lambda: is_status(client, job.id, JobStatus.SUCCEEDED), timeout=10)
            assert time.monotonic() - killed < 2 * LEASE
        finally:
            survivor.request_stop()
            await asyncio.wait_for(task, 10)
    final = await client.get(job.id)
    assert final.attempts == 2
    assert (final.last_error or "").startswith(f"lease expired: worker {victim_id}")
    history = [(a.outcome, a.worker_id) for a in await client.attempts(job.id)]
    assert history == [("lease_expired", victim_id), ("succeeded", survivor.id)]


async def _listening(worker: Worker) -> bool:
    return worker.listener.listening


async def test_sigterm_leaves_no_job_running_and_exits_zero(
    app: App, client: Client, settings: Settings
) -> None:
    short = await app.enqueue("sleep", {"seconds": 0.5})
    long = await app.enqueue_many([{"kind": "sleep", "payload": {"seconds": 60}}] * 2)
    async with worker_process(settings, "--concurrency", "5") as proc:
        ids = [short.id, *(j.id for j in long)]
        await wait_for(lambda: all_status(client, ids, JobStatus.RUNNING))
        proc.process.send_signal(signal.SIGTERM)
        assert await proc.wait(within=15) == 0, proc.output()
    assert await is_status(client, short.id, JobStatus.SUCCEEDED)
    for job in long:
        after = await client.get(job.id)
        assert (after.status, after.attempts) == (JobStatus.QUEUED, 0)
    assert await client.workers() == []


async def test_a_second_signal_stops_at_once(app: App, client: Client, settings: Settings) -> None:
    job = await app.enqueue("sleep", {"seconds": 60})
    async with worker_process(settings, JOBQ_SHUTDOWN_GRACE_SECONDS="60") as proc:
        await wait_for(lambda: is_status(client, job.id, JobStatus.RUNNING), timeout=20)
        proc.process.send_signal(signal.SIGINT)
        await wait_for(lambda: _said(proc, "waiting up to 60s"), timeout=10)
        began = time.monotonic()
        proc.process.send_signal(signal.SIGTERM)
        assert await proc.wait(within=10) == 0, proc.output()
        assert time.monotonic() - began < 5
    assert await is_status(client, job.id, JobStatus.QUEUED)


async def test_a_stop_does_not_wait_for_a_stuck_sync_handler_thread(
    client: Client, settings: Settings
) -> None:
    job_id = await insert_job(client, kind="block", payload={"seconds": 60}, max_attempts=5)
    app_ref = "tests.worker.support:blocking_app"
    async with worker_process(
        settings, "--app", app_ref, JOBQ_SHUTDOWN_GRACE_SECONDS="0.5"
    ) as proc:
        await wait_for(lambda: is_status(client, job_id, JobStatus.RUNNING), timeout=20)
        began = time.monotonic()
        proc.process.send_signal(signal.SIGTERM)
        assert await proc.wait(within=15) == 0, proc.output()
        assert time.monotonic() - began < 5  # not the 60 s the thread still sleeps
        assert proc.said("exiting without waiting"), proc.output()
    assert await is_status(client, job_id, JobStatus.QUEUED)


async def _said(proc: Proc, text: str) -> bool:
    return proc.said(text)


async def test_the_supervisor_restarts_a_dead_child_and_stops_them_all(
    app: App, client: Client, settings: Settings
) -> None:
    async with worker_process(settings, "--processes", "2", "--concurrency", "2") as proc:
        await wait_for(lambda: _worker_count(client, 2), timeout=30)
        first = {w.pid for w in await client.workers()}
        os.kill(next(iter(first)), signal.SIGKILL)
        await wait_for(lambda: _new_pid(client, first), timeout=30)
        jobs = await app.enqueue_many([{"kind": "noop"}] * 20)
        await wait_for(lambda: _all(client, [j.id for j in jobs], JobStatus.SUCCEEDED), timeout=20)
        proc.process.send_signal(signal.SIGTERM)
        assert await proc.wait(within=20) == 0, proc.output()
    alive = [w for w in await client.workers() if w.pid not in first]
    assert alive == []  # the live children deregistered on their way out


async def _worker_count(client: Client, n: int) -> bool:
    return len(await client.workers()) >= n


async def _new_pid(client: Client, old: set[int]) -> bool:
    return any(w.pid not in old for w in await client.workers())


async def _all(client: Client, ids: list[Any], status: JobStatus) -> bool:
    return all([await is_status(client, i, status) for i in ids])


async def test_burst_with_several_processes_drains_and_exits_zero(
    app: App, client: Client, settings: Settings
) -> None:
    jobs = await app.enqueue_many([{"kind": "noop"}] * 40)
    async with worker_process(settings, "--processes", "2", "--burst") as proc:
        assert await proc.wait(within=60) == 0, proc.output()
    assert await _all(client, [j.id for j in jobs], JobStatus.SUCCEEDED)


@pytest.mark.parametrize(
    ("args", "env", "logged"),
    [
        (("--log-level", "debug"), {}, True),
        ((), {}, False),
        # The children of the supervisor get the level through their environment.
        (("--processes", "2"), {"JOBQ_LOG_LEVEL": "DEBUG"}, True),
    ],
)
async def test_a_success_is_logged_at_debug_only(
    app: App,
    client: Client,
    settings: Settings,
    args: tuple[str, ...],
    env: dict[str, str],
    logged: bool,
) -> None:
    jobs = await app.enqueue_many([{"kind": "noop"}] * 2)
    async with worker_process(settings, "--burst", *args, **env) as proc:
        assert await proc.wait(within=60) == 0, proc.output()
    assert await _all(client, [j.id for j in jobs], JobStatus.SUCCEEDED)
    assert proc.said("job succeeded") is logged, proc.output()


async def test_a_stop_after_only_async_jobs_warns_of_no_threads(
    app: App, client: Client, settings: Settings
) -> None:
    """Issue 14 #6: idle pool threads (DNS lookups ran there) were counted as stuck handlers."""
    jobs = await app.enqueue_many([{"kind": "noop"}] * 3)
    # A host name, not an address: asyncio resolves it on a pool thread.
    url = (settings.database_url or "").replace("127.0.0.1", "localhost")
    async with worker_process(settings, DATABASE_URL=url) as proc:
        await wait_for(lambda: _all(client, [j.id for j in jobs], JobStatus.SUCCEEDED), timeout=20)
        proc.process.send_signal(signal.SIGTERM)
        assert await proc.wait(within=15) == 0, proc.output()
    assert not proc.said("threads are still running"), proc.output()
    assert proc.said("worker stopped"), proc.output()
