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
from functools import partial

import httpx
import pytest

from tests.chaos import procs
from tests.chaos.app import SIDE_TABLE
from tests.chaos.invariants import Report
from tests.chaos.load import Enqueuer
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
    rescue = await system.rescue_times(killed_at)
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


async def api_kill_rounds(system: System, rounds: int) -> Report:
    """SIGKILL the API while it answers back-to-back batches of 500; after each kill, every
    batch is whole in the table or absent. Then each unanswered batch is sent again with its
    keys: made whole, once."""
    api = await system.start_api()
    cut = committed = 0
    for round_ in range(rounds):
        load = system.enqueuer(jobs_per_second=1e6, batch=500, ms=0)  # back to back
        load.outage(True)
        run = asyncio.create_task(load.run())
        target = len(system.ledger.accepted) + 500
        await wait_until(partial(_accepted, system, target), 30, "a batch accepted")
        await asyncio.sleep(0.03 * round_)  # vary where in the next batch the kill lands
        api.signal(signal.SIGKILL)
        await run_until_stopped(load, run)
        unacked = system.ledger.unacked
        cut += len(unacked)
        committed += await system.fetchval(
            "SELECT count(DISTINCT metadata->>'batch') FROM {s}.jobs "
            "WHERE metadata->>'batch' = ANY($1)",
            unacked,
        )
        between = await system.check(drained=False)
        assert not between.violations, between.violations
        api = await system.start_api()
        async with httpx.AsyncClient(base_url=system.api_url, timeout=30) as http:
            for batch in unacked:
                assert await load.send(http, batch, system.ledger.sent[batch])
    report = await system.check(drained=False)
    report.figures["api_kills"] = rounds
    report.figures["batches_cut_by_a_kill"] = cut
    report.figures["cut_batches_committed_before_the_kill"] = committed
    return report


async def run_until_stopped(load: Enqueuer, run: asyncio.Task[None]) -> None:
    """Let the load see the dead API once, then stop it."""
    target = load.ledger.answers["dropped"] + 1
    await wait_until(lambda: _dropped(load, target), 10, "the load saw the API die")
    load.stop()
    await run


async def _dropped(load: Enqueuer, n: int) -> bool:
    return load.ledger.answers["dropped"] >= n


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
