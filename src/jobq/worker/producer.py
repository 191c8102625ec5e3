"""The producer: claims jobs into free slots, woken by NOTIFY or a jittered poll.

It asks for no more jobs than the runner has free slots, several per round
trip, and only of the kinds the worker's app registers (a job of another kind
stays queued for a worker that knows it). Each claim carries the outcomes
waiting to be written (one statement, one commit for both: the jobs that just
finished freed the slots it fills).
After a claim that filled every slot it waits for a slot; after one that
found fewer jobs than slots it waits for a NOTIFY of an enqueue (or a job
becoming runnable again) or for the poll interval. The poll is jittered by
±20% so that a fleet started together does not query in lockstep, and it runs
even while LISTEN works: retries whose `run_at` arrives send no NOTIFY.

Flow control picks the claim statement (read every LIMITS_REFRESH_SECONDS): the
plain one, through the flow limits while a limit covers the worker's queues, in
the fair order while jobs with fairness keys wait in them, or both. A limited
claim that left slots free because a rate limit was full says when the limit
next lets a job start: the producer claims again then (if sooner than its poll,
and still woken early by a NOTIFY), so a rate-limited queue starts its jobs as
the window opens rather than at the next poll.

In burst mode it returns once a claim finds nothing, no job is running and
every outcome is written (so a job released or made runnable by a completion
is seen by one last claim).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Protocol

from jobq.client import Client
from jobq.db.records import Claimed, ClaimPaths, Finished
from jobq.worker.backoff import Backoff
from jobq.worker.config import WorkerConfig

if TYPE_CHECKING:
    from jobq.worker.completer import Pending

log = logging.getLogger("jobq.worker")

POLL_JITTER = 0.2
# How often a worker asks whether a flow limit covers its queues and whether jobs
# with fairness keys wait in them (two index probes, one round trip). A limit set
# or removed, or the first keyed job, takes effect within this; until then the
# claim stays on the path it was on.
LIMITS_REFRESH_SECONDS = 2.0
# The shortest wait for a rate limit to open: a claim a few milliseconds early
# finds the window still full and is one wasted round trip, no more.
RATE_WAIT_FLOOR_SECONDS = 0.005


class Slots(Protocol):
    """The runner's side as the producer sees it."""

    def free(self) -> int: ...
    def busy(self) -> int: ...
    async def wait_free(self) -> None: ...
    async def wait_idle(self) -> None: ...


class Outcomes(Protocol):
    """The completer's side as the producer sees it."""

    def take(self) -> list[Pending]: ...
    def landed(self, batch: list[Pending], written: list[Finished]) -> None: ...
    def put_back(self, batch: list[Pending]) -> None: ...
    async def flush(self) -> None: ...


class Producer:
    def __init__(
        self,
        client: Client,
        worker_id: str,
        config: WorkerConfig,
        slots: Slots,
        start: Callable[[Claimed], None],
        outcomes: Outcomes,
        kinds: Sequence[str],
    ) -> None:
        self.client = client
        self.worker_id = worker_id
        self.config = config
        # Only these are claimed: a job of another kind stays queued, its attempt
        # unspent, for a worker whose app has a handler for it.
        self.kinds = list(kinds)
        self.slots = slots
        self.start = start
        self.outcomes = outcomes
        self.claims = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._claiming = False
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(log, "claiming jobs")
        # Whether a flow limit covers this worker's queues and whether keyed jobs
        # wait in them, and when that was read (the loop's clock): with neither,
        # the claim is the plain statement and costs exactly what it did before
        # flow control existed.
        self._paths = ClaimPaths(limited=False, fair=False)
        self._paths_read_at: float | None = None
        # Seconds until a full rate limit lets the next job start, from the last
        # claim (None: no rate limit held a job back).
        self._rate_opens_in: float | None = None

    def wake(self, queue: str = "") -> None:
        """An enqueue NOTIFY (payload: the queue; "" for any)."""
        if not queue or self.config.queues is None or queue in self.config.queues:
            self._wake.set()

    async def claim_once(self) -> int:
        """Claim into every free slot, writing the waiting outcomes in the same
        statement; returns how many slots were asked for minus how many jobs came
        back (0: there may be more)."""
        free = self.slots.free()
        if free <= 0:
            return 0
        # Cleared before the claim: a NOTIFY that lands during it wakes the next wait.
        self._wake.clear()
        self._claiming = True
        carried: list[Pending] = []
        try:
            paths = await self._claim_paths()
            carried = self.outcomes.take()
            answer = await self.client.queries.job_claim_round(
                self.client.pool,
                [p.row for p in carried],
                self.worker_id,
                self.config.queues,
                free,
                self.config.lease_seconds,
                self.kinds,
                limited=paths.limited,
                fair=paths.fair,
            )
        except BaseException:
            self.outcomes.put_back(carried)
            raise
        finally:
            self._claiming = False
        self.outcomes.landed(carried, answer.finished)
        self.claims += 1
        self._rate_opens_in = answer.rate_opens_in
        for c in answer.claimed:
            self.start(c)
        return free - len(answer.claimed)

    async def _claim_paths(self) -> ClaimPaths:
        now = asyncio.get_running_loop().time()
        if self._paths_read_at is None or now - self._paths_read_at >= LIMITS_REFRESH_SECONDS:
            self._paths = await self.client.queries.flow_claim_paths(
                self.client.pool, self.config.queues
            )
            self._paths_read_at = now
        return self._paths

    def stop(self) -> None:
        """Stop claiming. A claim in flight is let finish, never cancelled: its
        UPDATE may have committed, and jobs claimed but never started would stay
        `running` until their lease ran out."""
        self._stopping = True
        if self._task is not None and not self._claiming:
            self._task.cancel()

    async def run(self) -> None:
        self._task = asyncio.current_task()
        while not self._stopping:
            if self.slots.free() <= 0:
                await self.slots.wait_free()
                # Let the other jobs that finish in this same loop turn free their
                # slots too, so the next claim asks for several at once.
                await asyncio.sleep(0)
                continue
            try:
                shortfall = await self.claim_once()
            except Exception as exc:
                await self._backoff.failed(exc, {"worker_id": self.worker_id})
                continue
            self._backoff.succeeded()
            if self._stopping:
                return
            if shortfall == 0:
                continue
            if self.config.burst:
                if await self._burst_done():
                    return
                continue
            await self._wait_for_work()

    async def _wait_for_work(self) -> None:
        interval = self.config.poll_interval_seconds
        timeout = interval * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        if self._rate_opens_in is not None:
            timeout = min(timeout, max(self._rate_opens_in, RATE_WAIT_FLOOR_SECONDS))
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _burst_done(self) -> bool:
        """Nothing was left to claim just now: done once nothing runs and every
        outcome is written, and a last claim still finds nothing."""
        if self.slots.busy():
            # Running jobs may end (and free slots) before new work appears.
            idle = asyncio.ensure_future(self.slots.wait_idle())
            woken = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait(
                {idle, woken},
                timeout=self.config.poll_interval_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            idle.cancel()
            woken.cancel()
            return False
        await self.outcomes.flush()
        try:
            shortfall = await self.claim_once()
        except Exception as exc:
            await self._backoff.failed(exc, {"worker_id": self.worker_id})
            return False
        return shortfall > 0 and not self.slots.busy()
