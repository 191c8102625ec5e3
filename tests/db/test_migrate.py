"""Migrations against the real database: the schema they build, the lock, versions and refusal."""

import asyncio
import uuid

import asyncpg

from jobq import Settings
from jobq.client import Client
from jobq.db.migrate import bundled_migrations, migrate, required_schema_version, schema_version
from jobq.db.queries import Queries
from tests.conftest import drop_schema
from tests.support import wait_for


async def test_migrations_give_the_expected_schema(client: Client) -> None:
    schema = client.settings.schema
    tables = {
        r["table_name"]
        for r in await client.pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
    }
    assert tables == {
        "jobs",
        "job_attempts",
        "queues",
        "workers",
        "leaders",
        "schema_migrations",
        "schedules",
        "schedule_fires",
        "stats_minutes",
        "stats_rollup",
        "job_dependencies",
        "workflows",
        "workflow_nodes",
        "flow_limits",
        "flow_rate_windows",
        "job_counts",
        "job_count_deltas",
        "job_watches",
    }
    indexes = {
        r["indexname"]: r["indexdef"]
        for r in await client.pool.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1", schema
        )
    }
    runnable = indexes["jobs_runnable_idx"]
    assert "priority DESC, run_at, id" in runnable
    assert "WHERE (status = ANY (ARRAY['queued'::text, 'retrying'::text]))" in runnable
    assert "UNIQUE" in indexes["jobs_idempotency_key_idx"]
    assert "WHERE (NOT paused)" in indexes["schedules_due_idx"]
    assert "(schedule, fire_at)" in indexes["schedule_fires_pkey"]
    # The charts' rollup reads failed attempts by finish time; successes add no entry.
    assert "(finished_at) WHERE" in indexes["job_attempts_failed_idx"]
    options = await client.pool.fetchval(
        "SELECT reloptions FROM pg_class WHERE oid = ($1 || '.jobs')::regclass", schema
    )
    assert "fillfactor=70" in options
    assert any(o.startswith("autovacuum_vacuum_scale_factor") for o in options)
    assert await schema_version(client.pool, client.queries) == required_schema_version()


async def test_migrate_twice_applies_nothing_the_second_time(client: Client) -> None:
    assert await migrate(client.pool, client.queries) == []


async def test_concurrent_migrations_apply_each_file_once(database_url: str, schema: str) -> None:
    pools = [await asyncpg.create_pool(database_url, min_size=1, max_size=2) for _ in range(4)]
    try:
        queries = Queries(schema)
        results = await asyncio.gather(*(migrate(p, queries) for p in pools))
        applied = sorted(m.version for r in results for m in r)
        assert applied == [m.version for m in bundled_migrations(schema)]
    finally:
        for p in pools:
            await p.close()
        await drop_schema(database_url, schema)


async def test_no_migrate_refuses_an_old_schema(database_url: str, schema: str) -> None:
    from jobq.errors import SchemaError

    settings = Settings(database_url=database_url, schema=schema)
    try:
        await Client.connect(settings, migrate=False, start_embedded=False)
    except SchemaError as exc:
        assert "jobq migrate" in str(exc)
    else:
        raise AssertionError("expected SchemaError")


async def test_0003_adds_the_traceback_to_a_database_at_0002(
    database_url: str, schema: str
) -> None:
    queries = Queries(schema)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await queries.migration_lock(conn)
            await queries.migration_bootstrap(conn)
            for migration in bundled_migrations(schema):
                if migration.version <= 2:
                    await conn.execute(migration.sql)
                    await queries.migration_record(conn, migration.version, migration.name)
        assert await schema_version(conn, queries) == 2
        job_id = uuid.uuid4()
        await conn.execute(
            f"""INSERT INTO "{schema}".job_attempts (job_id, seq, worker_id, started_at,
                finished_at, outcome, error) VALUES ($1, 1, 'w', now(), now(), 'failed', 'old')""",
            job_id,
        )
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            applied = await migrate(pool, queries)
            assert (3, "attempt_traceback") in [(m.version, m.name) for m in applied]
            (old,) = await queries.attempt_list(pool, job_id)
        finally:
            await pool.close()
        assert old.error == "old" and old.traceback is None
    finally:
        await conn.close()
        await drop_schema(database_url, schema)


async def _schema_at(database_url: str, queries: Queries, version: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await queries.migration_lock(conn)
            await queries.migration_bootstrap(conn)
            for migration in bundled_migrations(queries.schema):
                if migration.version <= version:
                    await conn.execute(migration.sql)
                    await queries.migration_record(conn, migration.version, migration.name)
    finally:
        await conn.close()


async def test_a_migration_waiting_for_a_long_reader_lets_other_queries_through(
    database_url: str, schema: str
) -> None:
    # 0004 alters `jobs`. Behind a reader's open transaction, a plain ALTER would
    # wait, and every later query on `jobs` would queue behind it: an outage.
    queries = Queries(schema)
    await _schema_at(database_url, queries, 3)
    reader = await asyncpg.connect(database_url)
    other = await asyncpg.connect(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        reading = reader.transaction()
        await reading.start()
        await reader.fetchval(f'SELECT count(*) FROM "{schema}".jobs')
        migrating = asyncio.create_task(migrate(pool, queries, lock_timeout=0.2, deadline=60))
        migrator = await pool.fetchval("SELECT pg_backend_pid()")

        async def waiting_for_a_lock() -> bool:
            return bool(
                await other.fetchval(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                    migrator,
                )
            )

        # Each of the migrator's tries gives up its lock request after 0.2 s, so a
        # claim's query that came in behind it gets through while the migration is
        # still to do (behind a plain ALTER it would wait for the reader).
        await other.execute("SET statement_timeout = '10s'")
        for _ in range(3):
            await wait_for(waiting_for_a_lock, interval=0.01)
            assert await other.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 0
        assert not migrating.done()
        await reading.commit()
        applied = await asyncio.wait_for(migrating, 30)
        assert applied[0].version == 4
        assert await schema_version(pool, queries) == required_schema_version()
    finally:
        await pool.close()
        await other.close()
        await reader.close()
        await drop_schema(database_url, schema)


async def test_a_migration_gives_up_on_a_lock_held_past_its_deadline(
    database_url: str, schema: str
) -> None:
    from jobq.errors import SchemaError

    queries = Queries(schema)
    await _schema_at(database_url, queries, 3)
    reader = await asyncpg.connect(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        reading = reader.transaction()
        await reading.start()
        await reader.fetchval(f'SELECT count(*) FROM "{schema}".jobs')
        try:
            await migrate(pool, queries, lock_timeout=0.2, deadline=2)
        except SchemaError as exc:
            assert "stayed locked by another session" in str(exc)
        else:
            raise AssertionError("expected SchemaError")
        assert await schema_version(pool, queries) == 3  # nothing half-applied
        await reading.rollback()
    finally:
        await pool.close()
        await reader.close()
        await drop_schema(database_url, schema)
