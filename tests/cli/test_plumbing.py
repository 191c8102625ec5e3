"""What every command shares: settings flags and variables, database errors, `cli_client`."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import typer

from jobq import Settings
from jobq.cli.plumbing import (
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    cli_client,
)
from jobq.client import Client
from jobq.types import JobFilter
from tests.cli.run import cli_env, jobq
from tests.conftest import drop_schema
from tests.support import insert_job


async def test_an_unreachable_database_is_one_clear_line_and_exit_1(settings: Settings) -> None:
    run = await jobq(settings, "list", "--database-url", "postgresql://postgres@127.0.0.1:1/x")
    assert run.code == 1, run
    line = run.error_line
    assert "cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:1/x" in line
    assert "DATABASE_URL" in line


async def test_a_bad_setting_names_the_variable_and_exits_2(settings: Settings) -> None:
    env = cli_env(settings, JOBQ_LEASE_SECONDS="soon")
    bad_lease, bad_url = await asyncio.gather(
        jobq(settings, "queues", env=env),
        jobq(settings, "queues", "--database-url", "not-a-url"),
    )
    assert bad_lease.code == 2, bad_lease
    assert "JOBQ_LEASE_SECONDS" in bad_lease.error_line
    assert bad_url.code == 2, bad_url
    assert "DATABASE_URL" in bad_url.error_line


async def test_a_retention_without_a_unit_is_refused_and_one_with_a_unit_is_taken(
    settings: Settings,
) -> None:
    """JOBQ_RETENTION=7 meant seven seconds (issue 14, item 5); JOBQ_LEASE_SECONDS names its
    unit, so it keeps taking a bare number."""
    bare_env, bare_flag, with_unit, lease = await asyncio.gather(
        jobq(settings, "queues", env=cli_env(settings, JOBQ_RETENTION="7")),
        jobq(settings, "queues", "--retention", "7"),
        jobq(settings, "queues", "--retention", "7d", env=cli_env(settings, JOBQ_RETENTION="7")),
        jobq(settings, "queues", env=cli_env(settings, JOBQ_LEASE_SECONDS="7")),
    )
    for run in (bare_env, bare_flag):
        assert run.code == 2, run
        assert run.error_line.startswith("error: JOBQ_RETENTION: 7 has no unit; write 7d,"), run
    assert with_unit.code == 0, with_unit
    assert lease.code == 0, lease


def test_every_setting_is_a_flag_or_says_why_not() -> None:
    from jobq.cli.plumbing import SETTINGS_FLAGS, SETTINGS_WITHOUT_FLAGS

    names = {f.name for f in dataclasses.fields(Settings)}
    assert set(SETTINGS_FLAGS) | set(SETTINGS_WITHOUT_FLAGS) == names
    assert not set(SETTINGS_FLAGS) & set(SETTINGS_WITHOUT_FLAGS)


# --- cli_client: an error in the block or in connecting is one line and an exit code ---


async def exit_of(
    settings: Settings,
    action: Callable[[Client], Awaitable[object]],
    capsys: pytest.CaptureFixture[str],
    **options: Any,
) -> tuple[int, str]:
    """(exit code, the `error:` line) of `action(client)` in a `cli_client`."""
    with pytest.raises(typer.Exit) as info:
        async with cli_client(settings, **options) as client:
            await action(client)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return info.value.exit_code, lines[0]


async def test_cli_client_maps_errors_to_the_documented_exit_codes(
    client: Client, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = uuid.uuid4()
    done = await insert_job(client, status="succeeded", finished_offset_s=0)

    async def interrupted(_: Client) -> None:
        raise KeyboardInterrupt

    cases: list[tuple[Callable[[Client], Awaitable[object]], int, str]] = [
        (lambda c: c.get(missing), EXIT_NOT_FOUND, f"no job with id {missing}"),
        (lambda c: c.cancel(done), EXIT_CONFLICT, "succeeded"),
        (lambda c: c.list_jobs(JobFilter(), cursor="!!!"), EXIT_USAGE, "cursor"),
        (lambda c: c.pool.execute("SELECT 1/0"), EXIT_ERROR, "database error: DivisionByZero"),
    ]
    for action, code, text in cases:
        got, line = await exit_of(settings, action, capsys)
        assert got == code and text in line, line
    with pytest.raises(typer.Exit) as info:
        async with cli_client(settings) as opened:
            await interrupted(opened)
    assert info.value.exit_code == EXIT_INTERRUPTED

    async with cli_client(settings) as opened:
        assert [q.name for q in await opened.queues()] == ["default"]
    assert capsys.readouterr().err == ""


async def test_cli_client_maps_failures_to_open_to_exit_codes(
    settings: Settings, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def nothing(_: Client) -> None:
        return None

    unreachable = dataclasses.replace(settings, database_url="postgresql://postgres@127.0.0.1:1/x")
    try:
        code, line = await exit_of(settings, nothing, capsys, no_migrate=True)
        assert code == EXIT_ERROR and "jobq migrate" in line
        code, line = await exit_of(settings, nothing, capsys, app_ref="no_such_module:app")
        assert code == EXIT_USAGE and "--app: cannot import 'no_such_module'" in line
        code, line = await exit_of(unreachable, nothing, capsys)
        assert code == EXIT_ERROR and "cannot reach PostgreSQL" in line
    finally:
        await drop_schema(database_url, settings.schema)
