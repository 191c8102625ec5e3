"""Schema migrations: numbered plain-SQL files applied in order, once each.

Files live in `jobq/db/sql/migrations/NNNN_name.sql`. `migrate()` runs every
pending one in a single transaction that first takes a transaction-level
advisory lock (released at commit, so it is safe behind PgBouncer), and
records each in `<schema>.schema_migrations`. Migrations are forward-only and
additive within a major version (SPEC §10): a process that needs version N
works against any database at N or later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg

from jobq.db.loader import fill_schema, sql_folder
from jobq.db.queries import Conn, Queries

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


async def migrate(pool: asyncpg.Pool, queries: Queries) -> list[Migration]:
    """Apply every pending migration; returns those applied (empty if none)."""
    async with pool.acquire() as conn, conn.transaction():
        await queries.migration_lock(conn)
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
