"""The benchmark's database seam: `db/sql/bench.sql`, one function per query.

Everything runs in a scratch schema that `jobq bench` creates (with jobq's own
migrations) and drops at the end, so a benchmark never touches an
application's jobs, and an application's workers never see the benchmark's.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobq.db.loader import load_sql, read_package_sql
from jobq.db.queries import Conn


@dataclass(frozen=True, slots=True)
class SelfCheck:
    """Counts behind "every job reached succeeded, exactly once"."""

    expected: int
    jobs: int
    succeeded_once: int
    attempts: int
    attempts_succeeded: int

    @property
    def ok(self) -> bool:
        n = self.expected
        return (
            self.jobs == n
            and self.succeeded_once == n
            and self.attempts == n
            and self.attempts_succeeded == n
        )

    def describe(self) -> str:
        return (
            f"expected {self.expected} jobs succeeded once: {self.jobs} jobs, "
            f"{self.succeeded_once} succeeded on their first and only attempt, "
            f"{self.attempts} attempts recorded ({self.attempts_succeeded} succeeded)"
        )


class BenchStore:
    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.sql = load_sql(read_package_sql("bench.sql"), schema)

    async def bench_reset(self, conn: Conn) -> None:
        await conn.execute(self.sql["bench_reset"])

    async def bench_drain_window(self, conn: Conn) -> float:
        row = await conn.fetchrow(self.sql["bench_drain_window"])
        return float(row["seconds"] or 0.0)

    async def bench_self_check(self, conn: Conn, expected: int) -> SelfCheck:
        row = await conn.fetchrow(self.sql["bench_self_check"])
        return SelfCheck(
            expected,
            row["jobs"],
            row["succeeded_once"],
            row["attempts"],
            row["attempts_succeeded"],
        )

    async def bench_running_count(self, conn: Conn) -> int:
        return int(await conn.fetchval(self.sql["bench_running_count"]))

    async def bench_unfinished_count(self, conn: Conn) -> int:
        return int(await conn.fetchval(self.sql["bench_unfinished_count"]))

    async def bench_drop_schema(self, conn: Conn) -> None:
        await conn.execute(self.sql["bench_drop_schema"])
