"""The worker's tuning: `WorkerConfig`, derived once from `Settings` and `WorkerOptions`.

Every interval the runtime uses is here, beside its default, so that a test
with a two-second lease gets a worker whose heartbeat, rescuer and leader
lease scale down with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobq.config import Settings
from jobq.worker.options import WorkerOptions

# The completer writes a batch when it holds this many outcomes, or this long
# after the first one arrived, whichever comes first. A few milliseconds cost
# nothing next to a job's latency and turn N round trips into one.
COMPLETER_BATCH_SIZE = 500
COMPLETER_FLUSH_SECONDS = 0.003

# Leases are renewed three times per lease, so one slow or failed heartbeat
# does not lose a job; never less often than this.
HEARTBEAT_MAX_INTERVAL_SECONDS = 10.0
HEARTBEAT_MIN_INTERVAL_SECONDS = 0.05

# The elected maintainer runs the rescuer this often (a quarter lease, so a
# dead worker's jobs are claimable again well within two leases).
MAINTENANCE_MAX_INTERVAL_SECONDS = 5.0
# The leader row's lease, in maintenance ticks: renewed at every tick, so two
# slow ticks in a row do not lose it, and short enough that a dead leader is
# replaced within one job lease (3 ticks to expire + 1 to notice <= 4 ticks,
# and a tick is at most a quarter lease). The rescue of a job whose worker died
# with the leader then waits no longer than the job's own lease did.
LEADER_LEASE_TICKS = 3
PRUNE_INTERVAL_SECONDS = 60.0
# Worker rows silent for this many leases are removed (GET /v1/workers only
# shows those seen within two; a live worker whose row went re-registers).
WORKER_ROW_TTL_LEASES = 10

# Backoff after a database error in any loop: doubled up to the cap, jittered.
BACKOFF_MIN_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 2.0

# At stop, the last outcomes get this long to reach the database; jobs not
# written by then keep their lease and are rescued like a crashed worker's.
FINAL_FLUSH_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    concurrency: int
    queues: tuple[str, ...] | None
    burst: bool
    lease_seconds: float
    poll_interval_seconds: float
    cancel_grace_seconds: float
    shutdown_grace_seconds: float
    listen_url: str | None

    @classmethod
    def build(cls, settings: Settings, options: WorkerOptions) -> WorkerConfig:
        return cls(
            concurrency=options.concurrency,
            queues=tuple(options.queues) if options.queues else None,
            burst=options.burst,
            lease_seconds=settings.lease_seconds,
            poll_interval_seconds=settings.poll_interval_ms / 1000.0,
            cancel_grace_seconds=settings.cancel_grace_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            listen_url=settings.listen_database_url,
        )

    @property
    def heartbeat_interval(self) -> float:
        third = self.lease_seconds / 3.0
        return max(HEARTBEAT_MIN_INTERVAL_SECONDS, min(HEARTBEAT_MAX_INTERVAL_SECONDS, third))

    @property
    def maintenance_interval(self) -> float:
        quarter = self.lease_seconds / 4.0
        return max(HEARTBEAT_MIN_INTERVAL_SECONDS, min(MAINTENANCE_MAX_INTERVAL_SECONDS, quarter))

    @property
    def leader_lease_seconds(self) -> float:
        return self.maintenance_interval * LEADER_LEASE_TICKS

    @property
    def worker_row_ttl_seconds(self) -> float:
        return self.lease_seconds * WORKER_ROW_TTL_LEASES
