"""The enqueue statement is planned once per connection, not at every call: planning
it again cost as much as running it (half of a one-job enqueue's time)."""

from __future__ import annotations

import asyncpg

from jobq.client import Client
from jobq.db.records import InsertRow
from jobq.ids import uuid7

CALLS = 20  # the plan cache tries 5 plans for the given arguments, then decides


def _row(n: int, *, debounce: str | None = None) -> InsertRow:
    return InsertRow(
        uuid7(), "default", "noop", f'{{"n": {n}}}', "{}", 0, 25, None, None, None,
        debounce_key=debounce, debounce_seconds=60.0 if debounce else None,
    )  # fmt: skip


async def test_the_insert_runs_the_generic_plan_whatever_the_batch_size(
    client: Client, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for n in range(CALLS):  # one job a call, as `app.enqueue` sends; then batches
            size = 1 if n < CALLS - 5 else 1 + n * 10
            rows = [_row(i) for i in range(size)]
            if n == CALLS - 1:
                rows.append(_row(n, debounce="report"))
            await client.queries.job_insert_many(conn, rows)
        plans = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE '%INSERT INTO%jobs%' AND statement LIKE '%unnest%'"
            # Not this query, whose text holds the same words (in the patterns).
            " AND statement NOT LIKE '%pg_prepared_statements%'"
        )
    finally:
        await conn.close()
    assert plans is not None
    assert plans["custom_plans"] <= 5, dict(plans)
    assert plans["generic_plans"] >= CALLS - 5, dict(plans)
