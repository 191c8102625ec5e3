"""`jobq bench` with tiny numbers: the real command, its JSON line and its self-check.

Speed is never asserted here (docs/BENCHMARKS.md holds the measurements); these
tests check that the benchmark runs end to end, reports every measure, cleans
up its scratch schema, and that its self-check would catch a job run twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from jobq import Settings
from jobq.bench.report import percentile
from jobq.bench.runner import scratch_schema
from jobq.bench.store import BenchStore
from jobq.client import Client
from jobq.db.outcomes import finish_row
from jobq.job_request import parse_request
from jobq.retry import RetryPolicy
from jobq.types import Failed, Job, Outcome, Succeeded
from tests.support import claim_jobs, finish_rows

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def bench_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(DATABASE_URL=settings.database_url or "", JOBQ_SCHEMA=settings.schema, NO_COLOR="1")
    return env


async def run_bench(settings: Settings, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobq",
        "bench",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=bench_env(settings),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def bench_schemas(url: str, base: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", base + "_bench_%"
        )
    finally:
        await conn.close()
    return [r["nspname"] for r in rows]


async def test_bench_reports_every_measure_in_one_json_line(settings: Settings) -> None:
    code, out, err = await run_bench(
        settings,
        "--jobs", "60",
        "--single", "10",
        "--batch-size", "25",
        "--processes", "1",
        "--processes", "2",
        "--latency-samples", "5",
        "--in-flight", "20",
        "--in-flight-seconds", "0.5",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    assert "Traceback" not in err
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    result = json.loads(lines[0])
    assert result["system"] == "jobq"
    assert result["enqueue_single_jobs_per_s"] > 0
    assert result["enqueue_batch_jobs_per_s"] > 0
    assert set(result["drain"]) == {"1", "2"}
    for drain in result["drain"].values():
        assert drain["jobs"] == 60 and drain["jobs_per_s"] > 0
    latency = result["pickup_latency_ms"]
    assert latency["samples"] == 5
    assert latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert result["worker_rss"]["jobs_in_flight"] == 20
    assert result["worker_rss"]["busy_mb"] > 0
    check = result["self_check"]
    assert check["ok"] is True
    assert [c["phase"] for c in check["checks"]] == [
        "drain P=1",
        "drain P=2",
        "pickup latency",
        "20 in flight",
    ]
    assert all(c["ok"] and c["succeeded_once"] == c["expected"] for c in check["checks"])
    assert settings.database_url
    assert await bench_schemas(settings.database_url, settings.schema) == []


async def test_bench_prints_a_table_without_json(settings: Settings) -> None:
    code, out, err = await run_bench(
        settings, "--jobs", "20", "--single", "5", "--latency-samples", "0"
    )
    assert code == 0, err
    assert "drain 20 noop jobs" in out
    assert "self-check" in out and "ok" in out


async def test_bench_refuses_to_measure_nothing(settings: Settings) -> None:
    code, _, err = await run_bench(settings, "--jobs", "0", "--latency-samples", "0")
    assert code == 2
    assert err.strip().startswith("error: nothing to measure")


async def test_self_check_catches_a_job_that_ran_twice(client: Client) -> None:
    # The self-check reads jobq's own tables: a job that needed two attempts fails it.
    store = BenchStore(client.settings.schema)
    await client.enqueue_many([parse_request({"kind": "noop"})] * 2)
    worker_id = "bench-test"
    policy = RetryPolicy(1, 1)

    async def finish(job_outcomes: list[tuple[Job, Outcome]]) -> None:
        await finish_rows(
            client, [finish_row(job, worker_id, o, policy) for job, o in job_outcomes]
        )

    first, second = (c.job for c in await claim_jobs(client, worker_id, None, 2))
    await finish([(first, Succeeded()), (second, Failed("boom"))])
    await client.pool.execute(f'UPDATE "{client.settings.schema}".jobs SET run_at = now()')
    (again,) = await claim_jobs(client, worker_id, None, 1)
    await finish([(again.job, Succeeded())])
    check = await store.bench_self_check(client.pool, 2)
    assert not check.ok
    assert (check.jobs, check.succeeded_once, check.attempts) == (2, 1, 3)
    assert "1 succeeded on their first and only attempt" in check.describe()


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0


def test_scratch_schema_is_a_valid_schema_name_beside_the_configured_one() -> None:
    name = scratch_schema("x" * 63)
    assert len(name) <= 63 and "_bench_" in name
    assert scratch_schema("jobq").startswith("jobq_bench_")
