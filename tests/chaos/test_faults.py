"""The full reliability suite's single-host faults (`make chaos`; root; minutes).

Each scenario runs against the suite's own PostgreSQL 15 cluster (tests.chaos.cluster), so
restarts and kills touch nothing shared. Figures go to build/chaos/<scenario>.json.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
import yaml

from tests.chaos import bouncer as pgbouncer
from tests.chaos import cluster as pg
from tests.chaos import faults, procs
from tests.chaos.scenario import (
    System,
    assert_clean,
    free_port,
    record,
    summary,
    wait_until,
)
from tests.support import skip_unless_required

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1500)]

LEASE = 3.0
ALERTS = procs.ROOT / "deploy" / "prometheus" / "alerts.yml"


@pytest.fixture(scope="module")
def cluster() -> Iterator[pg.Cluster]:
    if not pg.available():
        skip_unless_required("PostgreSQL 15's initdb/pg_ctl are not installed")
    made = pg.Cluster(free_port())
    try:
        made.start()
        yield made
    finally:
        made.close()


@pytest.fixture
async def system(cluster: pg.Cluster, tmp_path: Path) -> AsyncIterator[System]:
    made = System(cluster.url(), tmp_path, lease=LEASE)
    await made.setup()
    try:
        yield made
    finally:
        await made.close()


async def finish(system: System, name: str, **figures: object) -> None:
    await system.wait_drained(timeout=300)
    report = await system.check()
    await system.check_metrics(report, api_restarted=bool(figures.get("api_restarted")))
    record(name, report, **figures)
    assert_clean(report, system)


async def test_workers_sigkilled_repeatedly_and_one_stopped_past_its_lease(system: System) -> None:
    await system.start_api()
    workers = system.start_workers("host", processes=3)
    procs.wait_children(workers, 3)
    load = system.enqueuer(jobs_per_second=100, ms=300)  # ~10 jobs held per process
    run = asyncio.create_task(load.run())
    await asyncio.sleep(5)  # a steady state first
    kill_times = await faults.kill_workers(system, workers, kills=15, every=3.0, processes=3)
    stopped = await faults.stop_worker(system, workers, processes=3, leases=3)
    await asyncio.sleep(5)
    load.stop()
    await run
    rescue: list[float] = []
    for at, pid in kill_times:
        rescue += await system.rescue_times(at, pid)
    await finish(
        system, "worker-kills", lease_s=LEASE, sigkills=len(kill_times), sigstopped_pid=stopped,
        sigstop_s=3 * LEASE, rescue_after_kill_s=summary(rescue),
    )  # fmt: skip


async def test_postgres_restarted_and_crashed(system: System, cluster: pg.Cluster) -> None:
    await system.start_api()
    workers = system.start_workers("host", processes=3)
    procs.wait_children(workers, 3)
    load = system.enqueuer(jobs_per_second=100, ms=20)
    run = asyncio.create_task(load.run())
    figures: dict[str, object] = {}
    for how in ("restart", "crash"):
        await asyncio.sleep(10)  # a steady state to compare with
        before = (datetime.fromtimestamp(time.time() - 8, UTC), datetime.now(UTC))
        if how == "restart":
            cluster.stop()  # fast shutdown: sessions ended, transactions rolled back
            await asyncio.sleep(3)  # down for 3 s
        else:
            cluster.kill()  # SIGKILL of the postmaster; crash recovery at start
        cluster.start()
        await cluster.wait_ready()
        ready_at = datetime.now(UTC)
        await asyncio.sleep(15)
        figures[how] = await faults.recovery(system, before, ready_at)
    load.stop()
    await run
    await finish(system, "postgres-restart", lease_s=LEASE, **figures)


async def test_api_killed_in_the_middle_of_batches(system: System) -> None:
    workers = system.start_workers("host", processes=2)
    procs.wait_children(workers, 2)
    report = await faults.api_kill_rounds(system, rounds=10)
    assert not report.violations, report.violations
    await finish(system, "api-kill", api_restarted=True, **report.figures)


async def test_pgbouncer_restarted_in_transaction_mode(system: System, cluster: pg.Cluster) -> None:
    if pgbouncer.binary() is None:
        skip_unless_required("pgbouncer is not installed (make chaos installs it)")
    bouncer = pgbouncer.Bouncer(cluster.port, free_port())
    bouncer.start()
    try:
        pooled = {"JOBQ_STATEMENT_CACHE": "0", "JOBQ_LISTEN_DATABASE_URL": system.direct_url}
        system.extra_env.update(pooled)
        await system.start_api(url=bouncer.url)
        workers = system.start_workers("host", processes=3, url=bouncer.url)
        procs.wait_children(workers, 3)
        load = system.enqueuer(jobs_per_second=100, ms=20)
        run = asyncio.create_task(load.run())
        restarts = []
        for _ in range(3):
            await asyncio.sleep(8)
            before = (datetime.fromtimestamp(time.time() - 6, UTC), datetime.now(UTC))
            bouncer.stop()  # SIGTERM: immediate shutdown, every connection dropped
            bouncer.start()
            ready_at = datetime.now(UTC)
            await asyncio.sleep(12)  # the window the recovery is measured over
            restarts.append(await faults.recovery(system, before, ready_at))
        load.stop()
        await run
        await finish(system, "pgbouncer-restart", restarts=restarts)
    finally:
        await system.close()  # before the pooler goes
        bouncer.close()


@pytest.fixture
def chaos_home() -> Iterator[Path]:
    """A JOBQ_HOME under /tmp, 0711: the server account reaches <home>/pgdata, so the data
    goes with the home (under pytest's 0700 folders jobq would put it in
    /var/lib/jobq-postgres/data, where it would stay after the test)."""
    from jobq.db import embedded

    home = Path(tempfile.mkdtemp(prefix="jobq-chaos-home-"))
    home.chmod(0o711)
    try:
        yield home
        assert embedded.data_dir(home) == home.resolve() / "pgdata"
    finally:
        embedded.stop(home)
        shutil.rmtree(home, ignore_errors=True)


async def test_embedded_server_killed(chaos_home: Path, tmp_path: Path) -> None:
    from jobq.db import embedded

    home = chaos_home
    url = embedded.start(home)
    system = System(url, tmp_path, lease=LEASE)
    system.extra_env["JOBQ_HOME"] = str(home)
    try:
        await system.setup()
        system.worker_url = ""  # the processes find the embedded server through JOBQ_HOME
        await system.start_api()
        workers = system.start_workers("host", processes=2)
        procs.wait_children(workers, 2)
        load = system.enqueuer(jobs_per_second=100, ms=20)
        run = asyncio.create_task(load.run())
        await asyncio.sleep(8)
        before = (datetime.fromtimestamp(time.time() - 6, UTC), datetime.now(UTC))
        pid = int((embedded.data_dir(home) / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        killed = datetime.now(UTC)
        await asyncio.sleep(3)
        # What brings it back: any jobq command that starts it (the runbook's `jobq migrate`).
        started = await asyncio.create_subprocess_exec(str(procs.JOBQ), "migrate", env=system.env())
        assert await started.wait() == 0
        ready_at = datetime.now(UTC)
        await asyncio.sleep(15)
        figures = await faults.recovery(system, before, ready_at)
        load.stop()
        await run
        await finish(system, "embedded-kill", killed_at=killed, **figures)
    finally:
        await system.close()


def alert_threshold() -> float:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    rule = next(r for r in rules if "jobq_db_oldest_xact_age_seconds" in r["expr"])
    match = re.search(r">\s*([0-9.]+)", rule["expr"])
    assert match, rule
    return float(match[1])


async def test_long_repeatable_read_transaction(system: System) -> None:
    """A REPEATABLE READ reader holds its snapshot (xmin) past the alert's threshold while a
    modest load runs; a backlog of 2,000 jobs is drained before, at the end of, and after the
    hold, and /metrics shows the transaction's age over the threshold."""
    threshold = alert_threshold()
    hold = float(os.environ.get("JOBQ_CHAOS_XACT_HOLD_SECONDS", threshold + 20))
    await system.start_api()
    workers = system.start_workers("host", processes=2, concurrency=20)
    procs.wait_children(workers, 2)

    async def drain_rate() -> float:
        """2,000 jobs enqueued to a paused queue, then released: jobs per second to drain."""
        async with httpx.AsyncClient(base_url=system.api_url, timeout=10) as http:
            (await http.post("/v1/queues/burst/pause")).raise_for_status()
            load = system.enqueuer(jobs_per_second=1e6, batch=500, ms=0, queue="burst")
            await load.run(total=2000)
            start = time.monotonic()
            (await http.post("/v1/queues/burst/resume")).raise_for_status()
        await system.wait_drained(timeout=300)
        return 2000 / (time.monotonic() - start)

    figures: dict[str, object] = {"baseline_drain_per_s": round(await drain_rate(), 1)}
    reader = await asyncpg.connect(system.direct_url)
    background = system.enqueuer(jobs_per_second=50, ms=0)
    run = asyncio.create_task(background.run())
    try:
        await reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        await reader.fetchval(f'SELECT count(*) FROM "{system.schema}".jobs')
        opened = time.monotonic()
        await asyncio.sleep(max(0.0, hold - 30))
        figures["dead_tuples_during_hold"] = await system.fetchval(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'",
            system.schema,
        )
        figures["held_drain_per_s"] = round(await drain_rate(), 1)

        async def age_over() -> bool:
            metrics = await system.metrics()
            age = metrics.get(("jobq_db_oldest_xact_age_seconds", ()), 0.0)
            figures["metric_age_s"] = age
            return age > min(threshold, hold - 10)  # a shorter hold (a trial) shows its age

        await wait_until(age_over, max(60.0, hold - (time.monotonic() - opened) + 60), "age")
        figures["crossed_alert_threshold"] = figures["metric_age_s"] > threshold  # type: ignore[operator]
        figures["held_s"] = round(time.monotonic() - opened, 1)
    finally:
        await reader.execute("ROLLBACK")
        await reader.close()
    await asyncio.sleep(5)  # let autovacuum see the horizon move
    figures["after_drain_per_s"] = round(await drain_rate(), 1)
    background.stop()
    await run
    figures["alert_threshold_s"] = threshold
    held, baseline = figures["held_drain_per_s"], figures["baseline_drain_per_s"]
    assert isinstance(held, float) and isinstance(baseline, float)
    figures["drop_ratio"] = round(held / baseline, 2)
    await finish(system, "long-transaction", **figures)
