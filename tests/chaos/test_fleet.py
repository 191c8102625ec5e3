"""A fleet: three worker hosts and the API, each in its own network namespace, against one
PostgreSQL (the suite's own cluster) (`make chaos`; root).

Every host reaches the database through a delaying proxy on its link's root end (zero delay
but in the latency phase). `test_fleet_scale_out_cut_loss_latency`, under HTTP load: the
drain of a fixed backlog with 1, 2 and 3 hosts (the scale-out figures); host 1's link cut for
3 leases (its jobs rescued by the others, its late acks fenced once the link is back); 10%
packet loss on host 2; 50 ms each way on host 3. `test_fleet_connection_resets`: TCP resets
on host 1. The invariants are checked after each phase and at the end.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos import cluster as pg
from tests.chaos import netns, procs
from tests.chaos.invariants import Report
from tests.chaos.proxy import DelayProxy
from tests.chaos.scenario import (
    RESULTS,
    System,
    assert_clean,
    free_port,
    record,
    summary,
    wait_until,
)
from tests.support import skip_unless_required

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1200)]

LEASE = 3.0
PROXY_PORT = 6432
PROCESSES = 2  # per host
CONCURRENCY = 5


@pytest.fixture
def fleet() -> Iterator[netns.Fleet]:
    why = netns.available()
    if why:
        skip_unless_required(why)
    made = netns.Fleet(4)  # hosts 1-3: workers; 4: the API
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def cluster() -> Iterator[pg.Cluster]:
    if not pg.available():
        skip_unless_required("PostgreSQL 15's initdb/pg_ctl are not installed")
    made = pg.Cluster(free_port())
    try:
        made.start()
        yield made
    finally:
        made.close()


class Run:
    def __init__(self, system: System, hosts: list[netns.Host], proxies: list[DelayProxy]):
        self.system = system
        self.hosts = hosts
        self.proxies = proxies
        self.workers: list[procs.Proc] = []
        self.figures: dict[str, Any] = {}

    def url(self, host: netns.Host) -> str:
        return f"postgresql://postgres@{host.root_ip}:{PROXY_PORT}/postgres"

    async def add_host(self, host: netns.Host) -> None:
        self.workers.append(self.system.start_workers(
            f"host{host.index}", PROCESSES, url=self.url(host), netns=host.ns,
            concurrency=CONCURRENCY,
        ))  # fmt: skip
        want = PROCESSES * len(self.workers)

        async def registered() -> bool:
            return bool(await self.system.fetchval("SELECT count(*) FROM {s}.workers") >= want)

        await wait_until(registered, 60, f"{want} worker processes registered")

    async def drain(self, queue: str, jobs: int, ms: int) -> float:
        """`jobs` enqueued to a paused queue, released: jobs per second to drain them."""
        system = self.system
        async with httpx.AsyncClient(base_url=system.api_url, timeout=30) as http:
            (await http.post(f"/v1/queues/{queue}/pause")).raise_for_status()
            load = system.enqueuer(jobs_per_second=1e6, batch=500, ms=ms, queue=queue)
            await load.run(total=jobs)
            start = time.monotonic()
            (await http.post(f"/v1/queues/{queue}/resume")).raise_for_status()
        await system.wait_drained(timeout=300)
        return round(jobs / (time.monotonic() - start), 1)

    async def check_between(self, phase: str) -> None:
        report = await self.system.check(drained=False)
        assert not report.violations, (phase, report.violations)

    async def window_rate(self, start: datetime) -> float:
        return round(await self.system.throughput(start, datetime.now(UTC)), 1)


async def fleet_run(fleet: netns.Fleet, cluster: pg.Cluster, name: str, phases: Any) -> None:
    """Hosts 1-3 and the API up, `phases(run)` under load, then the drain and the checks.
    Process logs go to build/chaos/logs/<name>/ (kept after the run)."""
    hosts, api_host = fleet.hosts[:3], fleet.hosts[3]
    proxies = [
        DelayProxy((h.root_ip, PROXY_PORT), ("127.0.0.1", cluster.port)) for h in fleet.hosts
    ]
    for proxy in proxies:
        await proxy.start()
    system = System(cluster.url(), log_dir(name), lease=LEASE)
    run = Run(system, hosts, proxies)
    try:
        await system.setup()
        await system.start_api(api_host.ip, url=run.url(api_host), netns=api_host.ns)
        await phases(run)
        try:
            await system.wait_drained(timeout=120)
        except AssertionError as exc:
            record(name, Report(figures=run.figures, violations=[str(exc)]))
            raise AssertionError(f"{exc}\nsockets:\n{sockets(run.hosts)}") from None
        report = await system.check()
        await system.check_metrics(report)
        record(name, report, **run.figures)
        assert_clean(report, system)
    finally:
        for proc in system.procs:
            proc.stop()
        # The proxies go before the schema is dropped: a server session whose client
        # vanished behind a proxy (a reset) holds its locks until the proxy lets go.
        for proxy in proxies:
            await proxy.close()
        await system.close()


def log_dir(name: str) -> Path:
    folder = RESULTS / "logs" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def sockets(hosts: list[netns.Host]) -> str:
    """Each host's TCP sockets with their timers and queues (what a stuck one waits on)."""
    out = []
    for host in hosts:
        done = subprocess.run(["ip", "netns", "exec", host.ns, "ss", "-tnpoi"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        out.append(f"--- host{host.index}\n{done.stdout}")
    return "\n".join(out)


async def test_fleet_scale_out_cut_loss_latency(fleet: netns.Fleet, cluster: pg.Cluster) -> None:
    async def phases(run: Run) -> None:
        await scale_out(run)
        load = run.system.enqueuer(jobs_per_second=100, ms=300)
        loading = asyncio.create_task(load.run())
        await asyncio.sleep(5)
        await link_cut(run)
        hosts, proxies = run.hosts, run.proxies
        await degraded(run, hosts[1], "loss", lambda: hosts[1].loss(0.10))
        await degraded(run, hosts[2], "latency", lambda: setattr(proxies[2], "delay", 0.05))
        proxies[2].delay = 0.0
        load.stop()
        await loading

    await fleet_run(fleet, cluster, "fleet", phases)


async def test_fleet_connection_resets(fleet: netns.Fleet, cluster: pg.Cluster) -> None:
    """5% of host 1's TCP packets, each way, answered by a reset for 20 s: each end of a
    connection may learn of the reset while the other does not (a half-open connection)."""

    async def phases(run: Run) -> None:
        for host in run.hosts:
            await run.add_host(host)
        load = run.system.enqueuer(jobs_per_second=100, ms=300)
        loading = asyncio.create_task(load.run())
        await asyncio.sleep(5)
        host = run.hosts[0]
        await degraded(run, host, "resets", lambda: host.resets(0.05))
        await asyncio.sleep(10)
        load.stop()
        await loading

    await fleet_run(fleet, cluster, "fleet-resets", phases)


async def scale_out(run: Run) -> None:
    for n, host in enumerate(run.hosts, start=1):
        await run.add_host(host)
        # I/O-bound jobs (200 ms of waiting each): a host's 2 x 5 slots run 50 a second.
        run.figures[f"drain_io_{n}_hosts_per_s"] = await run.drain(f"io{n}", 1000 * n, 200)
        # CPU-bound jobs (no waiting): all hosts share this machine's 2 cores.
        run.figures[f"drain_cpu_{n}_hosts_per_s"] = await run.drain(f"cpu{n}", 3000, 0)
    await run.check_between("scale-out")


async def link_cut(run: Run) -> None:
    """Host 1's link cut for 3 leases: its jobs are rescued by hosts 2 and 3; once the link is
    back its handlers' late results are fenced (side rows whose attempt is lease_expired)."""
    host, supervisor = run.hosts[0], run.workers[0]
    pids = supervisor.children()
    start = datetime.now(UTC)
    host.cut()
    try:
        await asyncio.sleep(3 * LEASE)  # the fault's length
        run.figures["link_cut_rate_others_per_s"] = await run.window_rate(start)
    finally:
        host.heal()
    healed = datetime.now(UTC)
    await asyncio.sleep(15)
    rescue: list[float] = []
    for pid in pids:
        rescue += await run.system.rescue_times(start, pid)
    late = await run.system.fetch(
        """SELECT count(*) AS n FROM {s}.chaos_runs r JOIN {s}.job_attempts a
             ON a.job_id = r.job_id AND a.seq = r.attempt
           WHERE r.host = 'host1' AND a.outcome = 'lease_expired'"""
    )
    back = await run.system.fetchval(
        "SELECT count(*) FROM {s}.chaos_runs WHERE host = 'host1' AND started_at > $1", healed
    )
    run.figures["link_cut"] = {
        "cut_s": 3 * LEASE, "rescued_after_cut_s": summary(rescue),
        "host1_late_results_fenced": late[0]["n"], "host1_jobs_after_heal_15s": back,
    }  # fmt: skip
    assert rescue, "host 1 held jobs when its link was cut; they were rescued"
    assert back > 0, "host 1 works again once its link is back"
    await run.check_between("link cut")


async def degraded(run: Run, host: netns.Host, name: str, fault: Any, seconds: float = 20) -> None:
    before = datetime.now(UTC)
    await asyncio.sleep(10)
    rate_before = await run.window_rate(before)
    start = datetime.now(UTC)
    fault()
    try:
        await asyncio.sleep(seconds)
        during = await run.window_rate(start)
        host_rate = await run.system.fetchval(
            "SELECT count(*) FROM {s}.chaos_runs WHERE host = $1 AND finished_at >= $2",
            f"host{host.index}", start,
        )  # fmt: skip
    finally:
        host.heal()
    run.figures[name] = {
        "seconds": seconds, "rate_before_per_s": rate_before, "rate_during_per_s": during,
        "faulty_host_completions": host_rate,
    }  # fmt: skip
    await asyncio.sleep(5)
    await run.check_between(name)
