"""A running system to break: a migrated schema, the API, workers, the load, and the checks.

``System`` owns what it starts: ``close`` stops every process (SIGCONT first, so a stopped
one can exit) and drops the schema. Scenario figures go to ``$JOBQ_CHAOS_RESULTS``
(default build/chaos/), one JSON file per scenario, which docs/RELIABILITY.md quotes.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from jobq import Settings
from tests.chaos import procs
from tests.chaos.app import build_chaos_app, side_table_ddl
from tests.chaos.invariants import Report, check
from tests.chaos.load import Enqueuer, Ledger

RESULTS = Path(os.environ.get("JOBQ_CHAOS_RESULTS", procs.ROOT / "build" / "chaos"))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def wait_until(
    condition: Callable[[], Awaitable[bool]],
    timeout: float,  # noqa: ASYNC109 - a deadline for the condition, not for a call
    what: str,
    interval: float = 0.1,
) -> float:
    """Seconds until `condition` holds; AssertionError naming `what` after `timeout`."""
    start = time.monotonic()
    while not await condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(interval)
    return time.monotonic() - start


class System:
    def __init__(
        self,
        direct_url: str,
        log_dir: Path,
        *,
        lease: float = 3.0,
        worker_url: str | None = None,
        schema: str | None = None,
        **env: str,
    ) -> None:
        self.direct_url = direct_url  # the checks' own connection, straight to PostgreSQL
        self.worker_url = worker_url or direct_url
        self.schema = schema or f"chaos_{uuid.uuid4().hex[:10]}"
        self.lease = lease
        self.log_dir = log_dir
        self.extra_env = env
        self.ledger = Ledger()
        self.procs: list[procs.Proc] = []
        self.api: procs.Proc | None = None
        self.api_url = ""

    def env(self, url: str | None = None, **more: str) -> dict[str, str]:
        return procs.base_env(
            url or self.worker_url, self.schema, self.lease, **{**self.extra_env, **more}
        )

    async def setup(self) -> None:
        app = build_chaos_app(Settings(database_url=self.direct_url, schema=self.schema))
        await app.client()  # migrates
        await app.close()
        conn = await asyncpg.connect(self.direct_url)
        try:
            await conn.execute(side_table_ddl(self.schema))
        finally:
            await conn.close()

    def start_workers(
        self,
        name: str,
        processes: int,
        *,
        url: str | None = None,
        netns: str | None = None,
        concurrency: int = 10,
        **env: str,
    ) -> procs.Proc:
        env_ = self.env(url, JOBQ_CHAOS_HOST=name, **env)
        proc = procs.worker(name, env_, self.log_dir, processes, concurrency, netns)
        self.procs.append(proc)
        return proc

    async def start_api(
        self,
        host: str = "127.0.0.1",
        *,
        url: str | None = None,
        netns: str | None = None,
        name: str = "api",
    ) -> procs.Proc:
        port = free_port() if netns is None else 8000
        env = self.env(url, JOBQ_ALLOWED_HOSTS="*") if host != "127.0.0.1" else self.env(url)
        self.api = procs.api(name, env, self.log_dir, host, port, netns)
        self.procs.append(self.api)
        self.api_url = f"http://{host}:{port}"
        await self.wait_api()
        return self.api

    async def wait_api(self, timeout: float = 30) -> float:  # noqa: ASYNC109 - a deadline
        async def ready() -> bool:
            assert self.api is not None
            if not self.api.alive():
                raise AssertionError(f"api exited:\n{self.api.output[-3000:]}")
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(f"{self.api_url}/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        return await wait_until(ready, timeout, "the API answers /readyz")

    def enqueuer(
        self, jobs_per_second: float, *, batch: int = 20, ms: int = 20, queue: str = "default"
    ) -> Enqueuer:
        return Enqueuer(
            self.api_url,
            self.ledger,
            jobs_per_second=jobs_per_second,
            batch=batch,
            ms=ms,
            queue=queue,
        )

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.direct_url)
        try:
            return list(await conn.fetch(sql.replace("{s}", f'"{self.schema}"'), *args))
        finally:
            await conn.close()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None

    async def wait_drained(self, timeout: float = 300) -> float:  # noqa: ASYNC109 - a deadline
        """Seconds until every accepted job is terminal."""
        ids = list(self.ledger.accepted)

        async def drained() -> bool:
            left = await self.fetchval(
                "SELECT count(*) FROM {s}.jobs WHERE id = ANY($1) "
                "AND status NOT IN ('succeeded', 'failed_permanent', 'cancelled')",
                ids,
            )
            return bool(left == 0)

        try:
            return await wait_until(drained, timeout, "every accepted job is terminal", 0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await self.diagnosis(ids)}") from None

    async def diagnosis(self, ids: list[uuid.UUID]) -> str:
        """What holds the queue up: jobs not terminal, and sessions open in a transaction."""
        jobs = await self.fetch(
            "SELECT id, status, attempts, locked_by, lease_expires_at - now() AS lease_left "
            "FROM {s}.jobs WHERE id = ANY($1) "
            "AND status NOT IN ('succeeded', 'failed_permanent', 'cancelled') LIMIT 10",
            ids,
        )
        sessions = await self.fetch(
            "SELECT pid, state, now() - xact_start AS age, left(query, 120) AS query "
            "FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() "
            "ORDER BY xact_start LIMIT 10"
        )
        return (
            "not terminal:\n"
            + "\n".join(map(str, jobs))
            + "\nopen transactions:\n"
            + ("\n".join(map(str, sessions)))
        )

    async def check(self, *, drained: bool = True) -> Report:
        conn = await asyncpg.connect(self.direct_url)
        try:
            grace = 0.0 if drained else 2 * self.lease
            return await check(conn, self.schema, self.ledger, drained=drained, grace_s=grace)
        finally:
            await conn.close()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(f"{self.api_url}/metrics")).text
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    async def check_metrics(self, report: Report, *, api_restarted: bool = False) -> None:
        """What /metrics must agree with: the state gauges (read from the database at scrape)
        with the table, once quiet; and, when one API process served the whole run, its
        enqueued counter with the jobs the run made and its 201 count with the answers seen.
        Worker counters are per process and die with a killed process: not compared."""
        counts = {
            r["status"]: r["n"]
            for r in await self.fetch("SELECT status, count(*) AS n FROM {s}.jobs GROUP BY 1")
        }
        metrics = await self.metrics()
        gauges: dict[str, float] = {}  # summed over queues
        for (name, labels), value in metrics.items():
            if name == "jobq_queue_jobs":
                status = dict(labels)["status"]
                gauges[status] = gauges.get(status, 0.0) + value
        for status, n in counts.items():
            if gauges.get(status, 0) != n:
                report.violations.append(
                    f"jobq_queue_jobs{{status={status}}} {gauges.get(status)} != {n}"
                )
        report.figures["metrics_state_gauges_checked"] = True
        if api_restarted or self.ledger.answers.get("dropped"):
            return
        enqueued = sum(v for k, v in metrics.items() if k[0] == "jobq_jobs_enqueued_total")
        made = sum(counts.values())
        if enqueued != made:
            report.violations.append(f"jobq_jobs_enqueued_total {enqueued} != {made} jobs made")
        created = sum(
            v
            for k, v in metrics.items()
            if k[0] == "jobq_http_requests_total" and dict(k[1]).get("status") == "201"
        )
        if created != self.ledger.answers.get("201", 0):
            report.violations.append(
                f"jobq_http_requests_total{{status=201}} {created} != {self.ledger.answers['201']}"
            )
        report.figures["metrics_counters_checked"] = True

    async def rescue_times(self, at: datetime, pid: int) -> list[float]:
        """For the attempts lost when process `pid` was killed at `at`: seconds from the kill
        to the job's next claim (worker ids are host:pid:suffix)."""
        rows = await self.fetch(
            """SELECT extract(epoch FROM n.started_at - $1::timestamptz) AS s
               FROM {s}.job_attempts a JOIN {s}.job_attempts n
                 ON n.job_id = a.job_id AND n.seq = a.seq + 1
               WHERE a.outcome = 'lease_expired' AND split_part(a.worker_id, ':', 2) = $2""",
            at,
            str(pid),
        )
        return sorted(float(r["s"]) for r in rows)

    async def throughput(self, start: datetime, end: datetime) -> float:
        n = await self.fetchval(
            "SELECT count(*) FROM {s}.chaos_runs WHERE finished_at >= $1 AND finished_at < $2",
            start,
            end,
        )
        return float(n) / max((end - start).total_seconds(), 1e-9)

    async def close(self) -> None:
        for proc in self.procs:
            proc.stop()
        try:
            conn = await asyncpg.connect(self.direct_url)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            pass  # the throwaway cluster is gone with its folder


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def record(name: str, report: Report, **figures: Any) -> None:
    """Write the scenario's figures and violations to RESULTS/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "scenario": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **report.figures,
        **figures,
        "violations": report.violations,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")


def assert_clean(report: Report, system: System) -> None:
    if report.violations:
        logs = "\n".join(f"--- {p.name}\n{p.output[-2000:]}" for p in system.procs)
        raise AssertionError("invariants broken:\n" + "\n".join(report.violations) + "\n" + logs)
