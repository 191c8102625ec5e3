"""The scheduler: every worker process fires due schedules; the database keeps it exactly once.

There is no scheduler leader to elect or lose. Each worker ticks every
SCHEDULER_INTERVAL_SECONDS (jittered, so many processes spread out): one
index probe when nothing is due, else `jobq.db.firing.fire_due`, which locks
the due schedules `FOR UPDATE SKIP LOCKED`, records each fire time under the
(schedule, fire_at) primary key, inserts its job (NOTIFY wakes the workers)
and advances `next_fire_at` in one transaction. A process killed mid-tick
leaves nothing behind; the next tick of any process fires the same times.

At start (`sync_once`) it upserts the schedules the app's code defines.

Events emitted (jobq.events): SchedulesFired (per schedule and tick, with the
lag of each fire time), ScheduleRunsSkipped (missed fire times the policy
skipped), JobsEnqueued (the jobs it inserted).
"""

from __future__ import annotations

import logging
import random
from collections import Counter

from jobq import events
from jobq.client import Client
from jobq.db.firing import FireResult, fire_due, sync_code_schedules
from jobq.registry import TaskRegistry
from jobq.worker.service import PeriodicService

log = logging.getLogger("jobq.worker.scheduler")

# Ticks are cheap (one index probe) and a fire's lag is at most one tick.
SCHEDULER_INTERVAL_SECONDS = 0.5
SCHEDULER_JITTER = 0.4  # each wait is the interval times 1 ± this


class Scheduler(PeriodicService):
    def __init__(
        self,
        client: Client,
        registry: TaskRegistry,
        worker_id: str,
        *,
        interval: float = SCHEDULER_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(
            "scheduler",
            worker_id,
            interval=interval,
            timeout=client.settings.lease_seconds,
            log=log,
        )
        self.client = client
        self.registry = registry
        self.base_interval = interval
        self.synced = False
        self.fired_total = 0

    async def sync_once(self) -> int:
        """Upsert the app's @app.periodic schedules (jobq.client_schedules says who owns what)."""
        count = await sync_code_schedules(
            self.client.pool, self.client.queries, self.registry.periodic.values()
        )
        self.synced = True
        if count:
            log.info("upserted %d schedules from code", count, extra={"worker_id": self.worker_id})
        return count

    async def fire_once(self) -> FireResult:
        """Enqueue what is due now (every due schedule, a batch per transaction)."""
        result = await fire_due(
            self.client.pool, self.client.queries, self.registry.default_max_attempts
        )
        self._report(result)
        return result

    async def run_once(self) -> None:
        if not self.synced:
            await self.sync_once()
        while (await self.fire_once()).more:
            pass
        self.interval = self.base_interval * random.uniform(
            1 - SCHEDULER_JITTER, 1 + SCHEDULER_JITTER
        )

    def _report(self, result: FireResult) -> None:
        self.fired_total += len(result.fired)
        by_schedule: dict[str, list[float]] = {}
        for fired in result.fired:
            by_schedule.setdefault(fired.schedule, []).append(fired.lag_seconds)
            if not log.isEnabledFor(logging.DEBUG):  # a per-second schedule, a line a second
                continue
            log.debug(
                "schedule fired",
                extra={
                    "schedule": fired.schedule,
                    "fire_at": fired.fire_at.isoformat(),
                    "job_id": str(fired.job.id),
                    "kind": fired.job.kind,
                    "queue": fired.job.queue,
                    "worker_id": self.worker_id,
                },
            )
        for name, lags in by_schedule.items():
            events.emit(events.SchedulesFired(name, tuple(lags)))
        for name, count in result.skipped.items():
            events.emit(events.ScheduleRunsSkipped(name, count))
            log.warning(
                "schedule %s: %d missed fire times skipped by its policy",
                name,
                count,
                extra={"schedule": name, "worker_id": self.worker_id},
            )
        per_queue_kind = Counter((f.job.queue, f.job.kind) for f in result.fired)
        for (queue, kind), count in per_queue_kind.items():
            events.emit(events.JobsEnqueued(queue, kind, count))
