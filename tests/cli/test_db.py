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


async def test_processes_started_in_different_folders_share_one_embedded_server(
    settings: Settings, xdg_data_home: Path, tmp_path: Path
) -> None:
    """The default JOBQ_HOME is the user's data directory, not `./.jobq` (issue 14, item 2):
    a script run from another folder finds the server that `jobq migrate` started."""
    env = cli_env(settings, XDG_DATA_HOME=str(xdg_data_home))
    env.pop("DATABASE_URL")
    first, second = tmp_path / "project", tmp_path / "elsewhere"
    first.mkdir()
    second.mkdir()
    migrated = await jobq(settings, "migrate", env=env, cwd=first)
    assert migrated.code == 0, migrated
    home = xdg_data_home / "jobq"
    status = [
        (await jobq(settings, "db", "status", "--json", env=env, cwd=cwd))
        for cwd in (first, second)
    ]
    urls = [(await jobq(settings, "db", "url", env=env, cwd=cwd)) for cwd in (first, second)]
    for run in (*status, *urls):
        assert run.code == 0, run
    assert status[0].json() == status[1].json()
    assert status[0].json()["running"] is True
    assert urls[0].out == urls[1].out and urls[0].out.strip() == status[0].json()["url"]
    assert f"passfile={home}/pgpass" in urls[0].out.replace("%2F", "/")
    for cwd in (first, second):
        assert not (cwd / ".jobq").exists()


async def test_db_stop_refuses_while_jobq_processes_are_connected(
    settings: Settings, embedded_home: Path
) -> None:
    """Stopping the server under a running worker or API would cut them off: `jobq db
    stop` names them and refuses (exit 4) unless --force."""
    import os

    import asyncpg

    from jobq.db import embedded
    from jobq.db.pool import connect_kwargs

    env = cli_env(settings, JOBQ_HOME=str(embedded_home))
    env.pop("DATABASE_URL")
    url = embedded.start(embedded_home)
    # This test's process, connected as any jobq process is (application_name jobq[PID]).
    held = [await asyncpg.connect(url, **connect_kwargs(settings)) for _ in range(2)]
    try:
        refused = await jobq(settings, "db", "stop", env=env)
        assert refused.code == 4, refused
        assert f"pid {os.getpid()} (" in refused.error_line
        assert "2 connections since" in refused.error_line
        assert refused.error_line.endswith("Stop them first, or use --force")
        assert embedded.status(embedded_home).running

        forced = await jobq(settings, "db", "stop", "--force", "--json", env=env)
        assert forced.code == 0 and forced.json() == {"was_running": True}, forced
        assert not embedded.status(embedded_home).running
    finally:
        for conn in held:
            conn.terminate()

    # Other clients (psql, an admin's script) do not hold it back.
    other = await asyncpg.connect(embedded.start(embedded_home))
    try:
        stopped = await jobq(settings, "db", "stop", env=env)
        assert stopped.code == 0 and stopped.out.strip() == "stopped", stopped
    finally:
        other.terminate()
