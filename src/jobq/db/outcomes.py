"""Turns a job's outcome into the fenced row that persists it, and runs the rescue and prune steps.

The completer (worker), the rescuer and the shutdown path all turn an outcome
into a `FinishRow` here, through the pure `states.decide()`, and write it with
the one fenced statement `job_finish_and_claim` (the worker's producer sends
outcomes along with its next claim; `Queries.job_finish_many` writes them alone).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import asyncpg

from jobq.config import MAX_RESULT_BYTES_LIMIT
from jobq.db.batched import delete_in_batches
from jobq.db.queries import Conn, Queries
from jobq.db.records import Finished, FinishRow
from jobq.handlers import encode_result
from jobq.progress import ProgressReport
from jobq.retry import RetryPolicy, Uniform
from jobq.states import JobSnapshot, LeaseExpired, decide
from jobq.types import Failed, Job, Outcome, Succeeded

RESCUE_BATCH = 500
PRUNE_BATCH = 1000
# After each full batch the pruner rests this many times as long as the batch
# took, so it uses at most a quarter of the time it could: a million finished
# jobs due at once (a retention shortened, a first run on a long history) are
# deleted over minutes instead of seconds, and a drain running beside them keeps
# most of its rate (docs/BENCHMARKS.md, "Big tables"). Deleting a batch costs
# PostgreSQL index and heap writes that the claims compete for.
PRUNE_REST_PER_WORK = 3.0

PolicyFor = Callable[[str], RetryPolicy]


def finish_row(
    job: Job,
    worker_id: str,
    outcome: Outcome | LeaseExpired,
    policy: RetryPolicy,
    *,
    cancel_requested: bool | None = None,
    uniform: Uniform = random.uniform,
    progress: ProgressReport | None = None,
) -> FinishRow:
    """The fenced row for `job` (as claimed: attempts counted) ending with `outcome`,
    carrying `progress`, the attempt's last report not yet written, if any."""
    snapshot = JobSnapshot(
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested if cancel_requested is None else cancel_requested,
        retry_delay_ms=job.retry_delay_ms,
    )
    transition = decide(snapshot, outcome, policy, uniform)
    return FinishRow(
        id=job.id,
        attempt_seq=job.attempt_seq,
        worker_id=worker_id,
        status=transition.status,
        attempt_outcome=transition.attempt_outcome,
        error=transition.error,
        retry_delay_ms=transition.retry_delay_ms,
        attempts_delta=transition.attempts_delta,
        traceback=outcome.traceback if isinstance(outcome, Failed) else None,
        snooze_ms=transition.snooze_ms,
        progress=progress.fraction if progress else None,
        progress_details_json=progress.details_json if progress else None,
        result_json=_result_json(outcome),
    )


def _result_json(outcome: Outcome | LeaseExpired) -> str | None:
    if not isinstance(outcome, Succeeded) or outcome.result is None:
        return None
    if outcome.encoded is not None:
        return outcome.encoded  # the worker's runner checked and serialised it
    # An outcome made elsewhere (a test, a tool): checked here, without a size limit
    # of its own beyond what jsonb holds.
    return encode_result(outcome.result, MAX_RESULT_BYTES_LIMIT)


async def rescue_expired_leases(
    pool: asyncpg.Pool, queries: Queries, policy_for: PolicyFor, *, limit: int = RESCUE_BATCH
) -> list[Finished]:
    """Run once: every running job whose lease expired counts a failed attempt
    (SPEC §1): retrying, failed_permanent, or cancelled if a cancel was asked."""
    async with pool.acquire() as conn, conn.transaction():
        expired = await queries.job_expired_leases(conn, limit)
        rows = [
            finish_row(
                job, job.locked_by or "", LeaseExpired(job.locked_by or "?"), policy_for(job.kind)
            )
            for job in expired
        ]
        return await queries.job_finish_many(conn, rows)


async def prune_finished(
    pool: Conn, queries: Queries, retention_seconds: float, *, batch: int = PRUNE_BATCH
) -> int:
    """Run once: delete finished jobs older than the retention, in small batches so
    no statement holds many row locks for long, resting between batches."""
    return await delete_in_batches(
        lambda n: queries.job_prune(pool, retention_seconds, n),
        batch,
        rest_per_work=PRUNE_REST_PER_WORK,
    )


async def prune_workflows(
    pool: Conn, queries: Queries, retention_seconds: float, *, batch: int = PRUNE_BATCH
) -> int:
    """Run once, after `prune_finished`: delete the workflows older than the retention
    whose every node went with its job, in batches."""
    return await delete_in_batches(
        lambda n: queries.workflow_prune(pool, retention_seconds, n), batch
    )
