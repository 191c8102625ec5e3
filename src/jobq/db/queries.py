"""Loads `db/sql/queries.sql` and exposes one typed method per named query.

No other module of the queue holds SQL (the pool's init reads its blocks from
the same file through `jobq.db.loader`; `jobq bench` has `sql/bench.sql`, and
the embedded server's one-time password setup is in `embedded_access`). Each
method is named after its query block (noun first: `job_finish_and_claim`,
`job_get`) and takes the connection or pool to run on, so the same query
serves a pool, a worker's connection and a caller's own transaction.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from jobq.db.loader import load_sql, read_package_sql
from jobq.db.records import (
    Claimed,
    ClaimPaths,
    ClaimRound,
    Edge,
    Finished,
    FinishRow,
    FireRecord,
    GraphRow,
    HeartbeatAnswer,
    HeldJob,
    InsertRow,
    JobqSession,
    ScheduleRow,
    attempt_from_record,
    job_from_record,
    schedule_from_record,
)
from jobq.stats import MinuteRow
from jobq.types import (
    Attempt,
    FlowLimit,
    FlowLimitUse,
    Job,
    JobFilter,
    JobStatus,
    QueueInfo,
    Schedule,
    WorkerInfo,
    WorkflowNode,
    WorkflowRow,
)


class Conn(Protocol):
    """What asyncpg's Connection and Pool have in common that the queries use."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...
    async def fetchrow(self, query: str, *args: Any) -> Any: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...
    async def execute(self, query: str, *args: Any) -> str: ...


def job_insert_many_args(rows: Sequence[InsertRow], channel: str) -> tuple[Any, ...]:
    """The arguments of `job_insert_many`, $1 to $17: one array per column (asyncpg
    and the DB-API drivers of `jobq.db.dbapi` pass the same)."""
    return (
        [r.id for r in rows],
        [r.queue for r in rows],
        [r.kind for r in rows],
        [r.payload_json for r in rows],
        [r.metadata_json for r in rows],
        [r.priority for r in rows],
        [r.max_attempts for r in rows],
        [r.run_at for r in rows],
        [r.idempotency_key for r in rows],
        [r.request_hash for r in rows],
        channel,
        [r.concurrency_key for r in rows],
        [r.unique_key for r in rows],
        [r.unique_states for r in rows],
        [r.debounce_key for r in rows],
        [r.debounce_seconds for r in rows],
        [r.fairness_key for r in rows],
    )


def _between_markers(part: str) -> re.Pattern[str]:
    return re.compile(rf"^-- {part}: begin.*?^-- {part}: end[^\n]*\n", re.MULTILINE | re.DOTALL)


_CLAIM_HALF = _between_markers("claim half")
_CLAIM_CANDIDATES = _between_markers("claim candidates")


def limited_claim(finish_and_claim: str, claim_half: str) -> str:
    """job_finish_and_claim with its claim half (between the markers) replaced by
    the limited one: the finish half is written once, for both statements."""
    return _splice(finish_and_claim, _CLAIM_HALF, claim_half, "claim-half")


def fair_limited_half(limited_half: str) -> str:
    """The limited claim half, taking its candidates in the fair order."""
    fair, count = re.subn(r"p_fair => false", "p_fair => true", limited_half)
    if count != 1:
        raise RuntimeError("job_claim_limited_half has lost its p_fair argument")
    return fair


def fair_claim(finish_and_claim: str, candidates: str) -> str:
    """job_finish_and_claim with its candidate scan (between the "claim candidates"
    markers) replaced by the fair one; the claiming UPDATE stays the same."""
    return _splice(finish_and_claim, _CLAIM_CANDIDATES, candidates, "claim-candidates")


def _splice(statement: str, markers: re.Pattern[str], part: str, name: str) -> str:
    replaced, count = markers.subn(lambda _: part + "\n", statement)
    if count != 1:
        raise RuntimeError(f"job_finish_and_claim has lost its {name} markers")
    return replaced


def claim_statement_name(*, limited: bool, fair: bool) -> str:
    """The variant of job_finish_and_claim a worker's claim runs (see `Queries`)."""
    return "job_finish_and_claim" + ("_fair" if fair else "") + ("_limited" if limited else "")


def flow_limit_from_record(row: Any) -> FlowLimit:
    return FlowLimit(
        name=row["name"],
        queue=row["queue"],
        key_pattern=row["key_pattern"],
        max_running=row["max_running"],
        rate=row["rate"],
        period_seconds=row["period_seconds"],
    )


class Queries:
    """One method per named query, with the schema's channel names."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.sql = load_sql(read_package_sql("queries.sql"), schema)
        plain = self.sql["job_finish_and_claim"]
        # The claim's variants: through the flow limits, in the fair order, both.
        self.sql["job_finish_and_claim_limited"] = limited_claim(
            plain, self.sql["job_claim_limited_half"]
        )
        self.sql["job_finish_and_claim_fair"] = fair_claim(
            plain, self.sql["job_claim_fair_candidates"]
        )
        self.sql["job_finish_and_claim_fair_limited"] = limited_claim(
            plain, fair_limited_half(self.sql["job_claim_limited_half"])
        )
        # NOTIFY channels are database-wide, so they carry the schema name.
        self.enqueue_channel = f"{schema}.jobs"
        self.control_channel = f"{schema}.control"
        # Ids of jobs whose state changed, from a trigger (migration 0004).
        self.events_channel = events_channel(schema)

    # --- migrations -------------------------------------------------------
    async def migration_lock(self, conn: Conn) -> None:
        await conn.execute(self.sql["migration_lock"], self.schema)

    async def migration_bootstrap(self, conn: Conn) -> None:
        await conn.execute(self.sql["migration_bootstrap"])

    async def migration_versions(self, conn: Conn) -> list[int]:
        return list(await conn.fetchval(self.sql["migration_versions"]))

    async def migration_record(self, conn: Conn, version: int, name: str) -> None:
        await conn.execute(self.sql["migration_record"], version, name)

    async def schema_exists(self, conn: Conn) -> bool:
        return bool(await conn.fetchval(self.sql["schema_exists"], self.schema))

    # --- jobs -------------------------------------------------------------
    async def job_insert_many(self, conn: Conn, rows: Sequence[InsertRow]) -> list[Job]:
        args = job_insert_many_args(rows, self.enqueue_channel)
        records = await conn.fetch(self.sql["job_insert_many"], *args)
        return [job_from_record(r) for r in records]

    async def job_insert_graph(self, conn: Conn, rows: Sequence[GraphRow]) -> list[Job]:
        records = await conn.fetch(
            self.sql["job_insert_graph"],
            [g.row.id for g in rows],
            [g.row.queue for g in rows],
            [g.row.kind for g in rows],
            [g.row.payload_json for g in rows],
            [g.row.metadata_json for g in rows],
            [g.row.priority for g in rows],
            [g.row.max_attempts for g in rows],
            [g.row.run_at for g in rows],
            [g.status.value for g in rows],
            [g.pending_dependencies for g in rows],
            [g.has_dependents for g in rows],
            _sparse([g.last_error for g in rows]),
            self.enqueue_channel,
            _sparse([g.row.concurrency_key for g in rows]),
            _sparse([g.row.fairness_key for g in rows]),
        )
        return [job_from_record(r) for r in records]

    async def job_mark_depended_on(
        self, conn: Conn, job_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, JobStatus]:
        records = await conn.fetch(self.sql["job_mark_depended_on"], list(job_ids))
        return {r["id"]: JobStatus(r["status"]) for r in records}

    async def job_dependency_insert_many(self, conn: Conn, edges: Sequence[Edge]) -> None:
        await conn.execute(
            self.sql["job_dependency_insert_many"],
            [e.dependency for e in edges],
            [e.dependent for e in edges],
            [e.on_failure for e in edges],
            [e.resolved for e in edges],
        )

    async def job_resolve_dependencies(
        self, conn: Conn, ended: Sequence[tuple[uuid.UUID, JobStatus]]
    ) -> int:
        return int(
            await conn.fetchval(
                self.sql["job_resolve_dependencies"],
                [i for i, _ in ended],
                [s.value for _, s in ended],
                self.enqueue_channel,
            )
        )

    async def job_dependency_results(
        self, conn: Conn, job_id: uuid.UUID
    ) -> list[tuple[uuid.UUID, JobStatus, Any, str | None]]:
        records = await conn.fetch(self.sql["job_dependency_results"], job_id)
        return [
            (r["id"], JobStatus(r["status"]), _json_value(r["result"]), r["name"]) for r in records
        ]

    # --- workflows ----------------------------------------------------------
    async def workflow_insert(
        self,
        conn: Conn,
        workflow_id: uuid.UUID,
        name: str | None,
        nodes: Sequence[tuple[str, uuid.UUID]],
    ) -> None:
        await conn.execute(
            self.sql["workflow_insert"],
            workflow_id,
            name,
            [n for n, _ in nodes],
            [j for _, j in nodes],
        )

    async def workflow_get(self, conn: Conn, workflow_id: uuid.UUID) -> WorkflowRow | None:
        record = await conn.fetchrow(self.sql["workflow_get"], workflow_id)
        return _workflow_row(record) if record else None

    async def workflow_list(self, conn: Conn, limit: int) -> list[WorkflowRow]:
        return [_workflow_row(r) for r in await conn.fetch(self.sql["workflow_list"], limit)]

    async def workflow_nodes(self, conn: Conn, workflow_id: uuid.UUID) -> list[WorkflowNode]:
        records = await conn.fetch(self.sql["workflow_nodes"], workflow_id)
        return [
            WorkflowNode(
                name=r["name"],
                job_id=r["job_id"],
                kind=r["kind"],
                queue=r["queue"],
                status=JobStatus(r["status"]),
                last_error=r["last_error"],
                after=list(r["after"]),
            )
            for r in records
        ]

    async def workflow_of_job(self, conn: Conn, job_id: uuid.UUID) -> tuple[uuid.UUID, str] | None:
        record = await conn.fetchrow(self.sql["workflow_of_job"], job_id)
        return (record["workflow_id"], record["name"]) if record else None

    async def workflow_cancel(self, conn: Conn, workflow_id: uuid.UUID) -> int:
        record = await conn.fetchrow(
            self.sql["workflow_cancel"], workflow_id, self.control_channel, self.enqueue_channel
        )
        return int(record["count"])

    async def job_get_by_idempotency_keys(
        self, conn: Conn, keys: Sequence[str]
    ) -> list[tuple[Job, bytes | None]]:
        records = await conn.fetch(self.sql["job_get_by_idempotency_keys"], list(keys))
        return [(job_from_record(r), r["request_hash"]) for r in records]

    async def job_get_by_unique_keys(self, conn: Conn, keys: Sequence[str]) -> list[Job]:
        records = await conn.fetch(self.sql["job_get_by_unique_keys"], list(keys))
        return [job_from_record(r) for r in records]

    async def job_get(self, conn: Conn, job_id: uuid.UUID) -> Job | None:
        record = await conn.fetchrow(self.sql["job_get"], job_id)
        return job_from_record(record) if record else None

    async def job_list_plan_per_call(self, conn: Conn) -> None:
        """Until the transaction ends, plan each statement for its parameters."""
        await conn.execute(self.sql["job_list_plan_per_call"])

    async def job_list(
        self,
        conn: Conn,
        flt: JobFilter,
        before: uuid.UUID | None,
        limit: int,
        *,
        with_bodies: bool,
        max_bytes: int,
    ) -> tuple[list[Job], int]:
        """Up to `limit` jobs within `max_bytes` of payload and metadata, and how
        many rows matched before the byte cap cut the page."""
        records = await conn.fetch(
            self.sql["job_list"],
            before,
            [s.value for s in flt.statuses] if flt.statuses else None,
            flt.queue,
            flt.kind,
            limit,
            with_bodies,
            max_bytes,
        )
        candidates = int(records[0]["candidates"]) if records else 0
        return [job_from_record(r) for r in records], candidates

    async def job_get_many(self, conn: Conn, job_ids: Sequence[uuid.UUID]) -> list[Job]:
        records = await conn.fetch(self.sql["job_get_many"], list(job_ids))
        return [job_from_record(r) for r in records]

    async def job_finish_and_claim(
        self,
        conn: Conn,
        rows: Sequence[FinishRow],
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        kinds: Sequence[str] | None,
        *,
        limited: bool = False,
        fair: bool = False,
    ) -> tuple[list[Finished], list[Claimed]]:
        """Write `rows` (fenced) and claim up to `limit` jobs of `kinds` (None: any
        kind; empty: none), in one round trip. `limited`: through the flow limits
        (job_claim_limited), for a worker that a limit applies to; `fair`:
        round-robin across fairness keys, for a worker whose queues hold keyed jobs."""
        answer = await self.job_claim_round(
            conn, rows, worker_id, queues, limit, lease_seconds, kinds, limited=limited, fair=fair
        )
        return answer.finished, answer.claimed

    async def job_claim_round(
        self,
        conn: Conn,
        rows: Sequence[FinishRow],
        worker_id: str,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
        kinds: Sequence[str] | None,
        *,
        limited: bool = False,
        fair: bool = False,
    ) -> ClaimRound:
        """`job_finish_and_claim` as the producer runs it: also says how long until a
        rate limit that held jobs back lets the next one start (limited claims)."""
        name = claim_statement_name(limited=limited, fair=fair)
        records = await conn.fetch(
            self.sql[name],
            [r.id for r in rows],
            [r.attempt_seq for r in rows],
            [r.worker_id for r in rows],
            [r.status.value for r in rows],
            [r.attempt_outcome.value for r in rows],
            [r.error for r in rows],
            [r.retry_delay_ms for r in rows],
            [r.attempts_delta for r in rows],
            self.enqueue_channel,
            worker_id,
            list(queues) if queues else None,
            limit,
            lease_seconds,
            list(kinds) if kinds is not None else None,
            [r.traceback for r in rows],
            _sparse([r.snooze_ms for r in rows]),
            _sparse([r.progress for r in rows]),
            _sparse([r.progress_details_json for r in rows]),
            _sparse([r.result_json for r in rows]),
        )
        finished: list[Finished] = []
        claimed: list[Claimed] = []
        rate_opens_in: float | None = None
        for r in records:
            if r["finished_id"] is None and r["id"] is None:
                # The limited claim's marker: when a full rate bucket opens.
                rate_opens_in = max(0.0, (r["run_at"] - r["updated_at"]).total_seconds())
            elif r["finished_id"] is not None:
                finished.append(
                    Finished(
                        r["finished_id"],
                        r["finished_queue"],
                        r["finished_kind"],
                        JobStatus(r["finished_status"]),
                    )
                )
            else:
                claimed.append(Claimed(job_from_record(r), r["claimed_at"]))
        # UPDATE ... RETURNING does not keep the subquery's order.
        claimed.sort(key=lambda c: (-c.job.priority, c.job.run_at, c.job.id))
        return ClaimRound(finished, claimed, rate_opens_in)

    # --- flow limits ----------------------------------------------------------
    async def flow_limit_upsert(self, conn: Conn, limit: FlowLimit) -> FlowLimit:
        record = await conn.fetchrow(
            self.sql["flow_limit_upsert"],
            limit.name,
            limit.queue,
            limit.key_pattern,
            limit.max_running,
            limit.rate,
            limit.period_seconds,
        )
        return flow_limit_from_record(record)

    async def flow_limit_delete(self, conn: Conn, name: str) -> bool:
        return bool(await conn.fetchval(self.sql["flow_limit_delete"], name))

    async def flow_limit_list(self, conn: Conn) -> list[FlowLimitUse]:
        records = await conn.fetch(self.sql["flow_limit_list"])
        return [
            FlowLimitUse(
                flow_limit_from_record(r),
                int(r["running"]),
                int(r["busiest_key_running"]),
                int(r["recent_starts"]),
                int(r["waiting"]),
                int(r["held_by_concurrency"]),
                int(r["held_by_rate"]),
            )
            for r in records
        ]

    async def flow_limit_definitions(self, conn: Conn) -> list[FlowLimit]:
        return [
            flow_limit_from_record(r) for r in await conn.fetch(self.sql["flow_limit_definitions"])
        ]

    async def flow_claim_paths(self, conn: Conn, queues: Sequence[str] | None) -> ClaimPaths:
        record = await conn.fetchrow(self.sql["flow_claim_paths"], list(queues) if queues else None)
        return ClaimPaths(limited=bool(record["limited"]), fair=bool(record["fair"]))

    async def job_finish_many(self, conn: Conn, rows: Sequence[FinishRow]) -> list[Finished]:
        """`job_finish_and_claim` with nothing to claim; no round trip for no rows."""
        if not rows:
            return []
        finished, _ = await self.job_finish_and_claim(conn, rows, "", None, 0, 0.0, [])
        return finished

    async def job_heartbeat(
        self, conn: Conn, held: Sequence[HeldJob], worker_id: str, lease_seconds: float
    ) -> list[HeartbeatAnswer]:
        """Renew the leases of `held` and write their new progress, in one statement;
        each job whose progress was written is announced on `events_channel`."""
        records = await conn.fetch(
            self.sql["job_heartbeat"],
            [h.id for h in held],
            worker_id,
            lease_seconds,
            [h.attempt_seq for h in held],
            _sparse([h.progress for h in held]),
            _sparse([h.progress_details_json for h in held]),
            self.events_channel,
        )
        return [
            HeartbeatAnswer(r["id"], r["attempt_seq"], r["cancel_requested"], r["progressed"])
            for r in records
        ]

    async def job_expired_leases(self, conn: Conn, limit: int) -> list[Job]:
        records = await conn.fetch(self.sql["job_expired_leases"], limit)
        return [job_from_record(r) for r in records]

    # One block per rule serves one job ($1, answered with the job as written, or
    # None when the rule left it alone) and a filter ($1 NULL, answered with a count).
    async def job_cancel(self, conn: Conn, job_id: uuid.UUID) -> Job | None:
        record = await conn.fetchrow(
            self.sql["job_cancel"],
            job_id,
            None,
            None,
            None,
            self.control_channel,
            self.enqueue_channel,
        )
        return job_from_record(record) if record["id"] is not None else None

    async def job_cancel_many(self, conn: Conn, flt: JobFilter) -> int:
        record = await conn.fetchrow(
            self.sql["job_cancel"],
            None,
            *_filter_args(flt),
            self.control_channel,
            self.enqueue_channel,
        )
        return int(record["count"])

    async def job_retry(self, conn: Conn, job_id: uuid.UUID) -> Job | None:
        record = await conn.fetchrow(
            self.sql["job_retry"], job_id, None, None, None, self.enqueue_channel
        )
        return job_from_record(record) if record["id"] is not None else None

    async def job_retry_many(self, conn: Conn, flt: JobFilter) -> int:
        record = await conn.fetchrow(
            self.sql["job_retry"], None, *_filter_args(flt), self.enqueue_channel
        )
        return int(record["count"])

    async def job_delete(self, conn: Conn, job_id: uuid.UUID) -> bool:
        return bool(await conn.fetchval(self.sql["job_delete"], job_id))

    async def job_prune(self, conn: Conn, older_than_seconds: float, limit: int) -> int:
        return int(await conn.fetchval(self.sql["job_prune"], older_than_seconds, limit))

    async def workflow_prune(self, conn: Conn, older_than_seconds: float, limit: int) -> int:
        return int(await conn.fetchval(self.sql["workflow_prune"], older_than_seconds, limit))

    async def attempt_list(self, conn: Conn, job_id: uuid.UUID) -> list[Attempt]:
        records = await conn.fetch(self.sql["attempt_list"], job_id)
        return [attempt_from_record(r) for r in records]

    # --- queues and workers -------------------------------------------------
    async def queue_list(
        self, conn: Conn, live_within_seconds: float, name: str | None = None
    ) -> list[QueueInfo]:
        """Queues with counts; `unclaimable` counts against the workers seen within
        `live_within_seconds`."""
        records = await conn.fetch(self.sql["queue_list"], name, live_within_seconds)
        return [
            QueueInfo(
                name=r["name"],
                paused=r["paused"],
                counts=json.loads(r["counts"]),
                oldest_runnable_age_seconds=(
                    max(0.0, r["oldest_runnable_age_seconds"])
                    if r["oldest_runnable_age_seconds"] is not None
                    else None
                ),
                unclaimable=r["unclaimable"],
            )
            for r in records
        ]

    async def job_counts_fold(self, conn: Conn) -> int:
        """Fold the appended count deltas into job_counts; how many were folded."""
        return int(await conn.fetchval(self.sql["job_counts_fold"]))

    async def queue_set_paused(self, conn: Conn, name: str, paused: bool) -> None:
        await conn.fetchrow(self.sql["queue_set_paused"], name, paused, self.enqueue_channel)

    async def worker_register(self, conn: Conn, info: WorkerInfo) -> None:
        await conn.execute(
            self.sql["worker_register"],
            info.id,
            info.host,
            info.pid,
            info.queues,
            info.concurrency,
            info.version,
            info.kinds,
        )

    async def worker_heartbeat(self, conn: Conn, worker_id: str, in_flight: int) -> bool:
        return await conn.fetchval(self.sql["worker_heartbeat"], worker_id, in_flight) is not None

    async def worker_delete(self, conn: Conn, worker_id: str) -> None:
        await conn.execute(self.sql["worker_delete"], worker_id)

    async def worker_list(self, conn: Conn, seen_within_seconds: float) -> list[WorkerInfo]:
        records = await conn.fetch(self.sql["worker_list"], seen_within_seconds)
        return [
            WorkerInfo(
                id=r["id"],
                host=r["host"],
                pid=r["pid"],
                queues=list(r["queues"]) if r["queues"] is not None else None,
                concurrency=r["concurrency"],
                in_flight=r["in_flight"],
                version=r["version"],
                started_at=r["started_at"],
                last_heartbeat_at=r["last_heartbeat_at"],
                kinds=list(r["kinds"]) if r["kinds"] is not None else None,
            )
            for r in records
        ]

    async def worker_prune(self, conn: Conn, silent_for_seconds: float) -> None:
        await conn.execute(self.sql["worker_prune"], silent_for_seconds)

    async def job_watch(
        self, conn: Conn, job_ids: Sequence[uuid.UUID], hub: str, seconds: float
    ) -> None:
        await conn.execute(self.sql["job_watch"], list(job_ids), hub, seconds)

    async def job_watch_refresh(
        self, conn: Conn, hub: str, job_ids: Sequence[uuid.UUID], seconds: float
    ) -> None:
        await conn.execute(self.sql["job_watch_refresh"], hub, list(job_ids), seconds)

    async def listener_probe(self, conn: Conn, channel: str, payload: str) -> None:
        await conn.execute(self.sql["listener_probe"], channel, payload)

    async def jobq_sessions(self, conn: Conn) -> list[JobqSession]:
        records = await conn.fetch(self.sql["jobq_sessions"])
        return [JobqSession.from_record(r) for r in records]

    async def connection_ping(self, conn: Conn) -> None:
        await conn.execute(self.sql["connection_ping"])

    async def leader_acquire(
        self, conn: Conn, name: str, holder: str, lease_seconds: float
    ) -> bool:
        got = await conn.fetchval(self.sql["leader_acquire"], name, holder, lease_seconds)
        return bool(got == holder)

    async def leader_release(self, conn: Conn, name: str, holder: str) -> None:
        await conn.execute(self.sql["leader_release"], name, holder)

    async def jobs_statistics_stale(self, conn: Conn) -> bool:
        return bool(await conn.fetchval(self.sql["jobs_statistics_stale"], self.schema))

    async def jobs_analyze(self, conn: Conn) -> None:
        await conn.execute(self.sql["jobs_analyze"])

    # --- schedules (jobq.schedules; fired by jobq.worker.scheduler) ---------------
    async def clock_now(self, conn: Conn) -> datetime:
        return await conn.fetchval(self.sql["clock_now"])  # type: ignore[no-any-return]

    async def schedule_upsert_code(self, conn: Conn, rows: Sequence[ScheduleRow]) -> None:
        rows = sorted(rows, key=lambda r: r.name)
        await conn.execute(
            self.sql["schedule_upsert_code"],
            [r.name for r in rows],
            [r.kind for r in rows],
            [r.cron for r in rows],
            [r.every_seconds for r in rows],
            [r.timezone for r in rows],
            [r.queue for r in rows],
            [r.priority for r in rows],
            [r.max_attempts for r in rows],
            [r.payload_json for r in rows],
            [r.missed for r in rows],
            [r.max_backfill for r in rows],
            [r.next_fire_at for r in rows],
        )

    async def schedule_list(self, conn: Conn, limit: int) -> list[Schedule]:
        return [schedule_from_record(r) for r in await conn.fetch(self.sql["schedule_list"], limit)]

    async def schedule_get(
        self, conn: Conn, name: str, *, for_update: bool = False
    ) -> Schedule | None:
        block = "schedule_get_for_update" if for_update else "schedule_get"
        record = await conn.fetchrow(self.sql[block], name)
        return schedule_from_record(record) if record else None

    async def schedule_insert(self, conn: Conn, row: ScheduleRow) -> Schedule | None:
        record = await conn.fetchrow(self.sql["schedule_insert"], *_schedule_args(row))
        return schedule_from_record(record) if record else None

    async def schedule_write(self, conn: Conn, row: ScheduleRow) -> Schedule:
        return schedule_from_record(
            await conn.fetchrow(self.sql["schedule_write"], *_schedule_args(row))
        )

    async def schedule_delete(self, conn: Conn, name: str) -> bool:
        return bool(await conn.fetchval(self.sql["schedule_delete"], name))

    async def schedule_due_probe(self, conn: Conn) -> bool:
        return bool(await conn.fetchval(self.sql["schedule_due_probe"]))

    async def schedule_lock_due(self, conn: Conn, limit: int) -> list[tuple[Schedule, datetime]]:
        records = await conn.fetch(self.sql["schedule_lock_due"], limit)
        return [(schedule_from_record(r), r["db_now"]) for r in records]

    async def schedule_fire_insert_many(
        self,
        conn: Conn,
        fires: Sequence[tuple[str, datetime, uuid.UUID]],
    ) -> list[FireRecord]:
        records = await conn.fetch(
            self.sql["schedule_fire_insert_many"],
            [f[0] for f in fires],
            [f[1] for f in fires],
            [f[2] for f in fires],
        )
        return [
            FireRecord(r["schedule"], r["fire_at"], r["job_id"], r["enqueued_at"]) for r in records
        ]

    async def schedule_advance_many(
        self,
        conn: Conn,
        rows: Sequence[tuple[str, datetime, datetime | None, uuid.UUID | None]],
    ) -> None:
        await conn.execute(
            self.sql["schedule_advance_many"],
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            [r[3] for r in rows],
        )

    async def schedule_fire_prune(self, conn: Conn, older_than_seconds: float, limit: int) -> int:
        status = await conn.execute(self.sql["schedule_fire_prune"], older_than_seconds, limit)
        return int(status.rsplit(" ", 1)[-1])

    # --- the throughput rollup (jobq.db.stats) -------------------------------------
    async def stats_rollup_lock(
        self, conn: Conn
    ) -> tuple[datetime | None, datetime | None, datetime]:
        r = await conn.fetchrow(self.sql["stats_rollup_lock"])
        return r["counted_through"], r["sampled_minute"], r["db_now"]

    async def stats_count_minutes(self, conn: Conn, start: datetime, end: datetime) -> None:
        await conn.execute(self.sql["stats_count_minutes"], start, end)

    async def stats_sample_depth(self, conn: Conn, minute: datetime) -> None:
        await conn.execute(self.sql["stats_sample_depth"], minute)

    async def stats_rollup_advance(
        self, conn: Conn, counted_through: datetime | None, sampled_minute: datetime | None
    ) -> None:
        await conn.execute(self.sql["stats_rollup_advance"], counted_through, sampled_minute)

    async def stats_minutes_prune(self, conn: Conn, older_than_seconds: float) -> int:
        status = await conn.execute(self.sql["stats_minutes_prune"], older_than_seconds)
        return int(status.rsplit(" ", 1)[-1])

    async def stats_progress(self, conn: Conn) -> tuple[datetime | None, datetime]:
        r = await conn.fetchrow(self.sql["stats_progress"])
        return r["counted_through"], r["db_now"]

    async def stats_minutes_read(
        self, conn: Conn, queue: str, start: datetime, end: datetime
    ) -> list[MinuteRow]:
        records = await conn.fetch(self.sql["stats_minutes_read"], queue, start, end)
        return [
            MinuteRow(
                minute=r["minute"],
                succeeded=r["succeeded"],
                failed_permanent=r["failed_permanent"],
                cancelled=r["cancelled"],
                retried=r["retried"],
                waiting=r["waiting"],
                running=r["running"],
            )
            for r in records
        ]

    # --- statistics for the metrics -------------------------------------------------
    async def stats_dead_tuples(self, conn: Conn) -> dict[str, int]:
        records = await conn.fetch(self.sql["stats_dead_tuples"], self.schema)
        return {r["table"]: r["dead"] for r in records}

    async def stats_oldest_xact_age(self, conn: Conn) -> float:
        return float(await conn.fetchval(self.sql["stats_oldest_xact_age"]))


def _schedule_args(row: ScheduleRow) -> tuple[Any, ...]:
    return (
        row.name,
        row.kind,
        row.cron,
        row.every_seconds,
        row.timezone,
        row.queue,
        row.priority,
        row.max_attempts,
        row.payload_json,
        row.missed,
        row.max_backfill,
        row.paused,
        row.next_fire_at,
    )


def events_channel(schema: str) -> str:
    """The NOTIFY channel of job events, whose payload is job ids (comma-separated):
    state changes, from the trigger of migration 0004, and written progress, one
    notification per job and heartbeat tick that wrote it (`job_heartbeat`). The
    wait hub (jobq.waiting) listens on it; it re-reads the jobs it names."""
    return f"{schema}.events"


def _sparse(values: list[Any]) -> list[Any] | None:
    """`values`, or None when every one is None: a NULL array, which unnest() pads
    with NULLs like an array of them, costs asyncpg no encoding per element (the
    drain path's batches carry no snooze and no progress)."""
    return values if any(v is not None for v in values) else None


def _filter_args(flt: JobFilter) -> tuple[Any, ...]:
    statuses = [s.value for s in flt.statuses] if flt.statuses else None
    return statuses, flt.queue, flt.kind


def _json_value(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _workflow_row(record: Any) -> WorkflowRow:
    return WorkflowRow(
        id=record["id"],
        name=record["name"],
        node_count=record["node_count"],
        created_at=record["created_at"],
        counts=json.loads(record["counts"]),
    )
