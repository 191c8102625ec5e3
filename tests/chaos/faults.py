"""Fault injectors and the measurements taken around them."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from datetime import UTC, datetime, timedelta
from functools import partial

import httpx

from tests.chaos import procs
from tests.chaos.invariants import Report
from tests.chaos.load import Enqueuer
from tests.chaos.scenario import System, wait_until


async def accepted_at_least(system: System, n: int) -> bool:
    return len(system.ledger.accepted) >= n


async def dropped_at_least(load: Enqueuer, n: int) -> bool:
    return load.ledger.answers["dropped"] >= n


async def kill_workers(
    system: System, supervisor: procs.Proc, kills: int, every: float, processes: int
) -> list[tuple[datetime, int]]:
    """SIGKILL a random worker process of `supervisor` every `every` seconds, `kills` times
    (the supervisor starts a new one each time); when, and which pid."""
    times = []
    for _ in range(kills):
        kids = procs.wait_children(supervisor, processes)
        victim = random.choice(kids)
        times.append((datetime.now(UTC), victim))
        os.kill(victim, signal.SIGKILL)
        await asyncio.sleep(every)  # the fault's rhythm, not a synchronisation
    return times


async def stop_worker(system: System, supervisor: procs.Proc, processes: int, leases: float) -> int:
    """SIGSTOP one worker process for `leases` leases, then SIGCONT; its pid."""
    pid = procs.wait_children(supervisor, processes)[0]
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(leases * system.lease)  # the fault's length
    finally:
        os.kill(pid, signal.SIGCONT)
    return pid


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
        await wait_until(partial(accepted_at_least, system, target), 30, "a batch accepted")
        # Vary where in the next batch (~0.1-0.3 s to make and insert) the kill lands.
        await asyncio.sleep(0.03 * round_)
        api.signal(signal.SIGKILL)
        seen = load.ledger.answers["dropped"] + 1
        await wait_until(partial(dropped_at_least, load, seen), 10, "the load saw the API die")
        load.stop()
        await run
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


async def completions(system: System, since: datetime) -> list[datetime]:
    rows = await system.fetch(
        "SELECT finished_at FROM {s}.chaos_runs WHERE finished_at >= $1 ORDER BY 1", since
    )
    return [r["finished_at"] for r in rows]


async def recovery(
    system: System, before: tuple[datetime, datetime], ready_at: datetime, window: float = 10.0
) -> dict[str, float]:
    """After the database accepted logins again at `ready_at`: seconds to the first completed
    job, seconds until a 1 s window completes >= 90% of the rate before the fault, and the
    ratio of the rate in the `window` seconds after recovery to the rate before."""
    rate_before = await system.throughput(*before)
    done = await completions(system, ready_at)
    first = (done[0] - ready_at).total_seconds() if done else float("inf")
    back = float("inf")
    for i, t in enumerate(done):
        in_second = sum(1 for u in done[i:] if u < t + timedelta(seconds=1))
        if in_second >= 0.9 * rate_before:
            back = (t - ready_at).total_seconds()
            break
    after = await system.throughput(ready_at, ready_at + timedelta(seconds=window))
    return {
        "rate_before_per_s": round(rate_before, 1),
        "first_completion_after_ready_s": round(first, 3),
        "rate_back_to_90pct_after_ready_s": round(back, 3),
        f"rate_{int(window)}s_after_ready_per_s": round(after, 1),
        "recovery_ratio": round(after / rate_before, 2) if rate_before else 0.0,
    }
