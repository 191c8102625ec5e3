"""`jobq get`, `cancel`, `retry` and `list`: ids, not found, conflicts, filters and pages."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from jobq import Settings
from jobq.client import Client
from tests.cli.run import Run, jobq, ok
from tests.support import insert_job


@pytest.mark.parametrize("command", ["get", "cancel", "retry"])
async def test_bad_id_is_2_and_unknown_id_is_3(
    client: Client, settings: Settings, command: str
) -> None:
    bad = await jobq(settings, command, "not-a-uuid")
    assert bad.code == 2, bad
    assert "'not-a-uuid' is not a job id" in bad.error_line
    missing_id = uuid.uuid4()
    missing = await jobq(settings, command, str(missing_id))
    assert missing.code == 3, missing
    assert f"no job with id {missing_id}" in missing.error_line


async def test_cancel_and_retry(client: Client, settings: Settings) -> None:
    queued = await insert_job(client)
    cancelled = await ok(settings, "cancel", str(queued))
    assert cancelled.out.strip() == f"job {queued} is cancelled"
    retried = (await ok(settings, "retry", str(queued), "--json")).json()
    assert retried["status"] == "queued" and retried["id"] == str(queued)

    running = await insert_job(client, status="running", attempts=1, locked_by="w1")
    asked = await ok(settings, "cancel", str(running))
    assert "cancel requested" in asked.out and "running" in asked.out
    as_json = (await ok(settings, "cancel", str(running), "--json")).json()
    assert as_json["status"] == "running" and as_json["cancel_requested"] is True


async def test_state_conflicts_exit_4(client: Client, settings: Settings) -> None:
    done = await insert_job(client, status="succeeded", finished_offset_s=0)
    run = await jobq(settings, "cancel", str(done))
    assert run.code == 4, run
    assert "succeeded" in run.error_line
    queued = await insert_job(client)
    run = await jobq(settings, "retry", str(queued))
    assert run.code == 4, run
    assert "only failed_permanent or cancelled jobs can be retried" in run.error_line


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
