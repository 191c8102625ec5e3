"""Exactly one job per fire time across worker processes, and through a SIGKILL (issue 17).

Three `jobq worker` processes run `periodic_app` (a schedule every 2 s); every
process ticks its scheduler, so each fire time is raced for three ways. The
jobs' fire times must then be the 2 s grid with no gap and no duplicate over
the whole observed span, and any 20 s window of it holds exactly 10.
"""

from __future__ import annotations

import itertools
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta

import pytest

from jobq import App, Settings
from jobq.client import Client
from tests.support import wait_for
from tests.worker.test_worker_process import Proc, worker_process

pytestmark = pytest.mark.slow

APP = "tests.worker.support:periodic_app"
SPAN = timedelta(seconds=22)  # a 20 s window with a fire time of margin each side
STEP = timedelta(seconds=2)


@pytest.fixture
def app(settings: Settings) -> App:
    # The test's client sees the schedule's jobs; the processes run the handlers.
    bare = App(settings)
    bare.register("tick", lambda ctx, payload: None)
    return bare


async def fire_times(client: Client) -> list[datetime]:
    rows = await client.pool.fetch(
        f"SELECT (metadata->>'fire_at')::timestamptz AS at FROM \"{client.settings.schema}\".jobs "
        "WHERE metadata->>'schedule' = 'every-2s' ORDER BY 1"
    )
    return [r["at"] for r in rows]


async def spans(client: Client, span: timedelta) -> bool:
    times = await fire_times(client)
    return bool(times) and times[-1] - times[0] >= span


@asynccontextmanager
async def three_workers(settings: Settings) -> AsyncIterator[list[Proc]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(worker_process(settings, "--app", APP))
            for _ in range(3)
        ]


def assert_one_per_grid_time(times: list[datetime]) -> None:
    assert len(times) == len(set(times)), "a fire time was enqueued twice"
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == STEP for g in gaps), f"not the 2 s grid: {gaps}"
    assert all(t.timestamp() % 2 == 0 for t in times)
    window = [t for t in times if times[0] + STEP <= t < times[0] + STEP + timedelta(seconds=20)]
    assert len(window) == 10


async def processes_firing(client: Client, procs: list[Proc]) -> bool:
    rows = await client.pool.fetch(f'SELECT pid FROM "{client.settings.schema}".workers')
    return len(rows) == len(procs)


async def test_three_worker_processes_enqueue_each_fire_time_exactly_once(
    app: App, client: Client, settings: Settings
) -> None:
    async with three_workers(settings) as procs:
        await wait_for(lambda: processes_firing(client, procs), timeout=30)
        await wait_for(lambda: spans(client, SPAN), timeout=60)
        for proc in procs:
            proc.process.send_signal(signal.SIGTERM)
        for proc in procs:
            assert await proc.wait(20) == 0, proc.output()
    assert_one_per_grid_time(await fire_times(client))
    schedule = await client.schedules.get("every-2s")
    assert schedule.source == "code" and schedule.payload == {"from": "code"}


async def leader_pid(client: Client) -> int | None:
    holder = await client.pool.fetchval(
        f"SELECT holder FROM \"{client.settings.schema}\".leaders WHERE name = 'maintenance'"
    )
    return int(holder.split(":")[1]) if holder else None


async def test_sigkilling_the_maintenance_leader_mid_run_loses_and_doubles_nothing(
    app: App, client: Client, settings: Settings
) -> None:
    async with three_workers(settings) as procs:
        await wait_for(lambda: processes_firing(client, procs), timeout=30)
        await wait_for(lambda: spans(client, timedelta(seconds=8)), timeout=60)
        pid = await leader_pid(client)
        victim = next(p for p in procs if p.process.pid == pid)
        victim.process.send_signal(signal.SIGKILL)
        killed_at = (await fire_times(client))[-1]
        assert await victim.wait(10) == -signal.SIGKILL
        await wait_for(lambda: spans(client, SPAN), timeout=60)
        survivors = [p for p in procs if p is not victim]
        for proc in survivors:
            proc.process.send_signal(signal.SIGTERM)
        for proc in survivors:
            assert await proc.wait(20) == 0, proc.output()
    times = await fire_times(client)
    assert times[-1] - killed_at >= timedelta(seconds=10)  # the survivors went on firing
    assert_one_per_grid_time(times)
