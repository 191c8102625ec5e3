"""The invariants every scenario ends with, read from the database and the side table.

Terms: a job is *accepted* when an HTTP answer (2xx) named it; a *side row* is the handler's
own record of an attempt it ran to the end (tests.chaos.app). ``attempt`` in a side row is
the job's ``attempts`` when claimed; with no interrupted attempt (a clean stop puts a job
back without counting it) that equals ``job_attempts.seq``, and the checks that pair them are
limited to such jobs.

1. lost: every accepted job is in the table, terminal or still runnable (queued, retrying,
   running under a lease that has not expired).
2. no job ``running`` without a live lease: after the drain nothing runs; mid-run no lease
   expired more than ``grace_s`` ago (the rescuer's tick).
3. no attempt claimed twice: at most one side row per (job, attempt): two would mean two
   workers held the same claim.
4. no job succeeded twice: at most one ``succeeded`` attempt per job; a succeeded job has
   exactly one, and the side table has its attempt (the success is backed by evidence).
5. history: ``attempts`` = attempts recorded that count (all but ``interrupted``), plus the
   one running; ``attempt_seq`` = all attempts recorded, plus the one running.
6. duplicates within the at-least-once bound: a side row other than the success is an attempt
   whose acknowledgement did not land, so its history row says ``lease_expired`` (fenced
   late ack, lost connection) or ``failed`` (the handler's own write or its ack failed).
7. idempotency: each key names one job; each accepted job carries its batch's key; a batch is
   in the database whole or not at all (all or nothing), and whole when it was accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from tests.chaos.app import SIDE_TABLE
from tests.chaos.load import Ledger

TERMINAL = ("succeeded", "failed_permanent", "cancelled")


@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def fail(self, what: str, rows: list[Any], limit: int = 5) -> None:
        if rows:
            self.violations.append(f"{what}: {len(rows)} (e.g. {rows[:limit]})")


async def check(
    conn: asyncpg.Connection, schema: str, ledger: Ledger, *, drained: bool, grace_s: float = 0.0
) -> Report:
    """Mid-run (`drained` False) a lease counts as live for `grace_s` past its expiry: the time
    the rescuer may take to get to it (a maintenance tick, a starved process)."""
    s = f'"{schema}"'
    ledger = ledger.snapshot()  # the load may still run: what was accepted before we look
    report = Report()
    report.violations += ledger.violations
    accepted = list(ledger.accepted)
    rows = await conn.fetch(
        f"SELECT id, status, lease_expires_at > now() - make_interval(secs => $2) AS live "
        f"FROM {s}.jobs WHERE id = ANY($1)",
        accepted,
        grace_s,
    )
    found = {r["id"]: r for r in rows}
    lost = [j for j in accepted if j not in found]
    report.figures["lost"] = len(lost)
    report.fail("lost (accepted, not in the table)", lost)
    runnable = ("queued", "retrying", *TERMINAL)
    report.fail(
        "neither terminal nor runnable",
        [r["id"] for r in rows if r["status"] not in runnable and not r["live"]],
    )
    if drained:
        report.fail(
            "not succeeded after the drain",
            [(r["id"], r["status"]) for r in rows if r["status"] != "succeeded"],
        )
    report.fail(
        "running without a live lease" if not drained else "running after the drain",
        await conn.fetch(
            f"SELECT id, locked_by FROM {s}.jobs WHERE status = 'running' AND ($1 OR "
            "lease_expires_at IS NULL OR lease_expires_at < now() - make_interval(secs => $2))",
            drained,
            grace_s,
        ),
    )
    report.fail(
        "attempt claimed twice (side table)",
        await conn.fetch(
            f"SELECT job_id, attempt, array_agg(worker_id) FROM {s}.{SIDE_TABLE} "
            "GROUP BY 1, 2 HAVING count(*) > 1"
        ),
    )
    report.fail(
        "succeeded twice",
        await conn.fetch(
            f"SELECT job_id FROM {s}.job_attempts WHERE outcome = 'succeeded' "
            "GROUP BY 1 HAVING count(*) > 1"
        ),
    )
    report.fail(
        "succeeded without one succeeded attempt",
        await conn.fetch(
            f"""SELECT j.id FROM {s}.jobs j WHERE j.status = 'succeeded' AND (SELECT count(*)
            FROM {s}.job_attempts a WHERE a.job_id = j.id AND a.outcome = 'succeeded') <> 1"""
        ),
    )
    report.fail(
        "succeeded with no side row for its attempt",
        await conn.fetch(
            f"""SELECT j.id, j.attempts FROM {s}.jobs j WHERE j.status = 'succeeded'
            AND NOT EXISTS (SELECT 1 FROM {s}.{SIDE_TABLE} r
                            WHERE r.job_id = j.id AND r.attempt = j.attempts)"""
        ),
    )
    report.fail(
        "attempts disagree with the history",
        await conn.fetch(
            f"""SELECT j.id, j.attempts, j.attempt_seq, h.counted, h.total FROM {s}.jobs j
            CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE outcome <> 'interrupted') AS counted,
                                       count(*) AS total
                                FROM {s}.job_attempts a WHERE a.job_id = j.id) h
            WHERE j.attempts <> h.counted + (j.status = 'running')::int
               OR j.attempt_seq <> h.total + (j.status = 'running')::int"""
        ),
    )
    await _duplicates(conn, s, report)
    await _idempotency(conn, s, ledger, report)
    await _figures(conn, s, ledger, report)
    return report


async def _duplicates(conn: asyncpg.Connection, s: str, report: Report) -> None:
    rows = await conn.fetch(
        f"""SELECT r.job_id, r.attempt, a.outcome, j.status, j.attempts
            FROM {s}.{SIDE_TABLE} r JOIN {s}.jobs j ON j.id = r.job_id
            LEFT JOIN {s}.job_attempts a ON a.job_id = r.job_id AND a.seq = r.attempt
            WHERE NOT EXISTS (SELECT 1 FROM {s}.job_attempts i
                              WHERE i.job_id = r.job_id AND i.outcome = 'interrupted')"""
    )
    extra = [r for r in rows if r["outcome"] != "succeeded"]
    unexplained = [
        (r["job_id"], r["attempt"], r["outcome"])
        for r in extra
        if r["outcome"] not in ("lease_expired", "failed")
        and not (r["status"] == "running" and r["attempts"] == r["attempt"])  # ack in flight
    ]
    report.fail("side row not explained by a lost or fenced ack", unexplained)
    report.figures["duplicate_executions"] = len(extra)
    report.figures["duplicates_fenced_lease_expired"] = sum(
        r["outcome"] == "lease_expired" for r in extra
    )


async def _idempotency(conn: asyncpg.Connection, s: str, ledger: Ledger, report: Report) -> None:
    report.fail(
        "idempotency key on two jobs",
        await conn.fetch(
            f"SELECT idempotency_key FROM {s}.jobs WHERE idempotency_key IS NOT NULL "
            "GROUP BY 1 HAVING count(*) > 1"
        ),
    )
    rows = await conn.fetch(
        f"SELECT id, idempotency_key, metadata->>'batch' AS batch FROM {s}.jobs "
        "WHERE metadata->>'batch' = ANY($1)",
        list(ledger.sent),
    )
    per_batch: dict[str, int] = {}
    for r in rows:
        per_batch[r["batch"]] = per_batch.get(r["batch"], 0) + 1
        if not str(r["idempotency_key"]).startswith(f"{r['batch']}-"):
            report.violations.append(f"job {r['id']} key {r['idempotency_key']} not its batch's")
    accepted_per_batch: dict[str, int] = {}
    for batch in ledger.accepted.values():
        accepted_per_batch[batch] = accepted_per_batch.get(batch, 0) + 1
    partial = [
        (b, per_batch.get(b, 0), n)
        for b, n in ledger.sent.items()
        if per_batch.get(b, 0) not in (0, n)
    ]
    report.fail("batch partly in the database", partial)
    report.fail(
        "accepted batch not whole",
        [
            (b, per_batch.get(b, 0), accepted_per_batch.get(b, 0))
            for b in ledger.acked
            if per_batch.get(b, 0) != ledger.sent[b]
            or accepted_per_batch.get(b, 0) != ledger.sent[b]
        ],
    )
    unacked = ledger.unacked
    report.figures["batches_sent"] = len(ledger.sent)
    report.figures["batches_unanswered"] = len(unacked)
    report.figures["batches_unanswered_but_committed"] = sum(
        per_batch.get(b, 0) > 0 for b in unacked
    )


async def _figures(conn: asyncpg.Connection, s: str, ledger: Ledger, report: Report) -> None:
    outcomes = await conn.fetch(f"SELECT outcome, count(*) AS n FROM {s}.job_attempts GROUP BY 1")
    report.figures["jobs_accepted"] = len(ledger.accepted)
    report.figures["jobs_in_table"] = await conn.fetchval(f"SELECT count(*) FROM {s}.jobs")
    report.figures["attempt_outcomes"] = {r["outcome"]: r["n"] for r in outcomes}
    report.figures["side_rows"] = await conn.fetchval(f"SELECT count(*) FROM {s}.{SIDE_TABLE}")
    report.figures["http_answers"] = dict(ledger.answers)
