"""`jobq list`, `queues`, `pause`, `resume`, `workers`, `migrate` and `--no-migrate`."""

from __future__ import annotations

import asyncio

import pytest

from jobq import Settings
from jobq.client import Client
from tests.support import insert_job
from tests.test_cli import Run, jobq, ok


async def test_list_filters_and_pages(client: Client, settings: Settings) -> None:
    a = await insert_job(client, queue="emails", kind="noop")
    b = await insert_job(client, queue="emails", kind="script", status="failed_permanent")
    c = await insert_job(client, queue="reports", kind="noop")

    def listed(run: Run) -> list[str]:
        return [j["id"] for j in run.json()["jobs"]]

    # Independent reads run side by side: each is a process start.
    table, emails, noops, failed, both, first, none = await asyncio.gather(
        ok(settings, "list"),
        ok(settings, "list", "--json", "--queue", "emails"),
        ok(settings, "list", "--json", "--kind", "noop"),
        ok(settings, "list", "--json", "--status", "failed_permanent"),
        ok(settings, "list", "--json", "--status", "queued", "--status", "failed_permanent"),
        ok(settings, "list", "--limit", "2"),
        ok(settings, "list", "--queue", "nothing-here"),
    )
    for job_id in (a, b, c):
        assert str(job_id) in table.out
    assert "more:" not in table.out
    assert listed(emails) == [str(b), str(a)]
    assert listed(noops) == [str(c), str(a)]
    assert listed(failed) == [str(b)]
    assert listed(both) == [str(c), str(b), str(a)]
    assert none.out.strip() == "no jobs match these filters"

    assert str(c) in first.out and str(b) in first.out and str(a) not in first.out
    cursor = first.out.split("more: --cursor ")[1].split()[0]
    second = (await ok(settings, "list", "--limit", "2", "--json", "--cursor", cursor)).json()
    assert [j["id"] for j in second["jobs"]] == [str(a)] and second["next_cursor"] is None


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--cursor", "!!!"], 2, "cursor"),
        (["--queue", "Bad Queue"], 2, "is not a queue name"),
        (["--status", "nope"], 2, "nope"),
        (["--limit", "0"], 2, "limit"),
    ],
)
async def test_list_rejects_bad_filters(
    client: Client, settings: Settings, args: list[str], code: int, message: str
) -> None:
    run = await jobq(settings, "list", *args)
    assert run.code == code, run
    assert message in run.err
    assert "Traceback" not in run.err


async def test_queues_pause_and_resume(client: Client, settings: Settings) -> None:
    empty = await ok(settings, "queues")
    assert "no queues yet" in empty.out
    await insert_job(client, queue="emails")
    await insert_job(client, queue="emails", status="failed_permanent")

    paused = await ok(settings, "pause", "emails")
    assert paused.out.strip() == "queue emails paused"
    assert (await ok(settings, "pause", "later", "--json")).json()["paused"] is True

    table = await ok(settings, "queues")
    emails_row = next(line for line in table.out.splitlines() if "emails" in line)
    assert "yes" in emails_row
    assert "failed" in table.out and "oldest runnable" in table.out
    queues = {q["name"]: q for q in (await ok(settings, "queues", "--json")).json()["queues"]}
    assert queues["emails"]["paused"] is True
    assert queues["emails"]["counts"]["queued"] == 1
    assert queues["emails"]["counts"]["failed_permanent"] == 1
    assert queues["emails"]["oldest_runnable_age_seconds"] >= 0
    assert queues["later"]["paused"] is True

    resumed = await ok(settings, "resume", "emails", "--json")
    assert resumed.json()["paused"] is False
    bad = await jobq(settings, "pause", "Not A Queue")
    assert bad.code == 2 and "is not a queue name" in bad.error_line


async def test_workers_when_there_are_none(client: Client, settings: Settings) -> None:
    assert "no live workers" in (await ok(settings, "workers")).out
    assert (await ok(settings, "workers", "--json")).json() == {"workers": []}


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
