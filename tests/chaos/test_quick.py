"""The cut of the reliability suite that `make test` runs (the full one: `make chaos`).

On the shared server in a schema of its own (nothing here restarts PostgreSQL): workers
SIGKILLed and SIGSTOPped past their lease under HTTP load, the API SIGKILLed in the middle of
batch enqueues, and the checker shown to catch each kind of broken invariant.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from datetime import UTC, datetime

import pytest

from tests.chaos import procs
from tests.chaos.app import SIDE_TABLE
from tests.chaos.faults import api_kill_rounds
from tests.chaos.scenario import System, assert_clean, record, summary, wait_until

pytestmark = pytest.mark.slow


async def test_kill_and_stop_workers_under_load(system: System) -> None:
    await system.start_api()
    workers = system.start_workers("host", processes=3)
    kids = procs.wait_children(workers, 3)
    load = system.enqueuer(jobs_per_second=150, ms=200)
    run = asyncio.create_task(load.run())
    await wait_until(lambda: _accepted(system, 300), 30, "300 jobs accepted")

    # One worker process SIGKILLed while it holds jobs; the supervisor starts another.
    killed_at = datetime.now(UTC)
    procs_killed = [kids[0]]
    os.kill(kids[0], signal.SIGKILL)
    # Another SIGSTOPped for three leases: its jobs are rescued, its late acks fenced.
    os.kill(kids[1], signal.SIGSTOP)
    await asyncio.sleep(3 * system.lease)  # the fault's length, not a synchronisation
    os.kill(kids[1], signal.SIGCONT)
    target = len(system.ledger.accepted) + 200
    await wait_until(lambda: _accepted(system, target), 30, "load goes on")
    load.stop()
    await run
    await system.wait_drained(timeout=90)
    report = await system.check()
    await system.check_metrics(report)
    rescue = await system.rescue_times(killed_at, kids[0])
    record("quick-workers", report, sigkill=procs_killed, rescue_seconds=summary(rescue))
    assert_clean(report, system)
    assert report.figures["attempt_outcomes"].get("lease_expired", 0) > 0, report.figures


async def _accepted(system: System, n: int) -> bool:
    return len(system.ledger.accepted) >= n


async def test_api_killed_mid_batch_is_all_or_nothing(system: System) -> None:
    report = await api_kill_rounds(system, rounds=3)
    record("quick-api-kill", report)
    assert_clean(report, system)
    assert report.figures["batches_cut_by_a_kill"] >= 1, report.figures


async def test_the_checker_catches_broken_invariants(system: System) -> None:
    await system.start_api()
    load = system.enqueuer(jobs_per_second=1000, batch=10)
    await load.run(total=20)
    assert not (await system.check(drained=False)).violations
    ids = list(system.ledger.accepted)
    s = f'"{system.schema}"'
    # A second claim of one attempt, a success without evidence, a lost job, a bad history.
    await system.fetch(
        f"INSERT INTO {s}.{SIDE_TABLE} VALUES ($1, 1, 'w1', 1, 'h', now(), now()),"
        " ($1, 1, 'w2', 2, 'h', now(), now())",
        ids[0],
    )
    await system.fetch(
        "UPDATE {s}.jobs SET status = 'succeeded', attempts = 1 WHERE id = $1", ids[1]
    )
    await system.fetch("DELETE FROM {s}.jobs WHERE id = $1", ids[2])
    await system.fetch(
        "UPDATE {s}.jobs SET status = 'running', lease_expires_at = now() "
        "- interval '1 minute' WHERE id = $1",
        ids[3],
    )
    system.ledger.accepted[uuid.uuid4()] = "b-never"
    found = "\n".join((await system.check(drained=False)).violations)
    for broken in (
        "claimed twice",
        "succeeded without one succeeded attempt",
        "succeeded with no side row",
        "lost",
        "running without a live lease",
        "attempts disagree",
        "batch partly",
        "side row not explained",
    ):
        assert broken in found, found
