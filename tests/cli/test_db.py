"""`jobq migrate`, `--no-migrate` and `jobq db status|url|stop`."""

from __future__ import annotations

from pathlib import Path

from jobq import Settings
from tests.cli.run import cli_env, jobq, ok


async def test_migrate_then_no_migrate(settings: Settings, database_url: str) -> None:
    import asyncpg

    try:
        refused = await jobq(settings, "queues", "--no-migrate")
        assert refused.code == 1, refused
        assert "jobq migrate" in refused.error_line

        applied = await ok(settings, "migrate")
        assert applied.out.startswith("applied 0001_")
        assert (await ok(settings, "migrate")).out.strip() == "schema is up to date"
        assert (await ok(settings, "migrate", "--json")).json() == {"applied": []}
        assert "no queues yet" in (await ok(settings, "queues", "--no-migrate")).out
    finally:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
        finally:
            await conn.close()


async def test_db_url_and_stop_without_a_running_server(
    settings: Settings, embedded_home: Path
) -> None:
    env = cli_env(settings, JOBQ_HOME=str(embedded_home))
    env.pop("DATABASE_URL")
    url, url_json, stop, stop_json = [
        await jobq(settings, *args, env=env)
        for args in (
            ["db", "url"],
            ["db", "url", "--json"],
            ["db", "stop"],
            ["db", "stop", "--json"],
        )
    ]
    for run in (url, url_json):
        assert run.code == 1, run
        assert "the embedded database is not running" in run.error_line
        assert run.out == ""
    assert stop.code == 0 and stop.out.strip() == "already stopped", stop
    assert stop_json.code == 0 and stop_json.json() == {"was_running": False}, stop_json
