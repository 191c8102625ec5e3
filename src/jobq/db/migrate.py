"""Schema migrations: numbered plain-SQL files applied in order, once each.

Files live in `jobq/db/sql/migrations/NNNN_name.sql`. `migrate()` runs every
pending one in a single transaction that first takes a transaction-level
advisory lock (released at commit, so it is safe behind PgBouncer), and
records each in `<schema>.schema_migrations`. Migrations are forward-only and
additive within a major version (SPEC §10): a process that needs version N
works against any database at N or later.

A migration that alters `jobs` needs its strongest lock. Waiting for it behind a
long query or transaction would queue every claim and enqueue behind the
migration, stopping the service for as long as that query runs, so each try
waits at most `lock_timeout` for a lock, then rolls back, lets the queued work
through, and tries again until `deadline`: an upgrade slows down rather than
stopping everyone.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass

import asyncpg

from jobq.db.loader import fill_schema, sql_folder
from jobq.db.queries import Conn, Queries
from jobq.errors import SchemaError

log = logging.getLogger("jobq.db")

LOCK_TIMEOUT_SECONDS = 5.0
LOCK_DEADLINE_SECONDS = 120.0
# Between tries: long enough for the statements queued behind the migration's
# lock request to run, short enough not to stretch the upgrade.
RETRY_PAUSE_SECONDS = 1.0

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def bundled_migrations(schema: str) -> list[Migration]:
    found = []
    for entry in (sql_folder() / "migrations").iterdir():
        match = _FILE_RE.fullmatch(entry.name)
        if match:
            sql = fill_schema(entry.read_text(encoding="utf-8"), schema)
            found.append(Migration(int(match.group(1)), match.group(2), sql))
    found.sort(key=lambda m: m.version)
    return found


def required_schema_version() -> int:
    """The schema version this code needs: the newest bundled migration."""
    return bundled_migrations("jobq")[-1].version


async def applied_versions(conn: Conn, queries: Queries) -> set[int]:
    if not await queries.schema_exists(conn):
        return set()
    return set(await queries.migration_versions(conn))


async def schema_version(conn: Conn, queries: Queries) -> int | None:
    versions = await applied_versions(conn, queries)
    return max(versions) if versions else None


async def migrate(
    pool: asyncpg.Pool,
    queries: Queries,
    *,
    lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    deadline: float = LOCK_DEADLINE_SECONDS,
) -> list[Migration]:
    """Apply every pending migration; returns those applied (empty if none).

    Raises SchemaError when a table lock could not be had within `deadline` seconds."""
    give_up_at = time.monotonic() + deadline
    tries = 0
    while True:
        tries += 1
        try:
            return await _migrate_once(pool, queries, lock_timeout)
        except asyncpg.LockNotAvailableError as exc:
            if time.monotonic() + RETRY_PAUSE_SECONDS + lock_timeout > give_up_at:
                raise SchemaError(
                    f"migrations gave up after {tries} tries over {deadline:.0f} s: a table of "
                    f"schema {queries.schema!r} stayed locked by another session (a long "
                    "transaction or query; see pg_stat_activity), nothing was changed; end "
                    "that session and start again"
                ) from exc
            log.warning(
                "migrations: a table lock was not free within %.1f s (a long transaction or "
                "query holds it); rolled back to let other work through, trying again",
                lock_timeout,
            )
            await asyncio.sleep(RETRY_PAUSE_SECONDS)


async def _migrate_once(
    pool: asyncpg.Pool, queries: Queries, lock_timeout: float
) -> list[Migration]:
    async with pool.acquire() as conn, conn.transaction():
        await queries.migration_lock(conn)  # waits for another migrator as long as it takes
        # SET LOCAL: the pool's connection gets its setting back at commit or rollback.
        await conn.execute(f"SET LOCAL lock_timeout = '{round(lock_timeout * 1000)}ms'")
        await queries.migration_bootstrap(conn)
        done = set(await queries.migration_versions(conn))
        applied = []
        for migration in bundled_migrations(queries.schema):
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await queries.migration_record(conn, migration.version, migration.name)
            applied.append(migration)
        return applied
