"""`jobq schedules list|add|pause|resume|delete|run-now`, with --json and exit codes."""

from __future__ import annotations

import uuid

from jobq import Settings
from jobq.client import Client
from jobq.db.firing import sync_code_schedules
from jobq.schedules import ScheduleRequest
from tests.cli.run import jobq, ok


async def test_add_list_pause_resume_run_now_delete(client: Client, settings: Settings) -> None:
    assert "no schedules yet" in (await ok(settings, "schedules", "list")).out
    added = await ok(
        settings,
        "schedules",
        "add",
        "nightly",
        "noop",
        "--cron",
        "30 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--payload",
        '{"format": "pdf"}',
        "--missed",
        "all",
        "--json",
    )
    created = added.json()
    assert created["name"] == "nightly" and created["source"] == "api"
    assert created["missed"] == "all" and created["payload"] == {"format": "pdf"}
    await ok(settings, "schedules", "add", "tick", "noop", "--every", "90s")

    table = (await ok(settings, "schedules", "list")).out
    assert "30 2 * * * (Europe/Berlin)" in table and "every 1m30s" in table
    listed = (await ok(settings, "schedules", "list", "--json")).json()["schedules"]
    assert [s["name"] for s in listed] == ["nightly", "tick"]

    paused = await ok(settings, "schedules", "pause", "nightly", "--json")
    assert paused.json()["paused"] is True
    assert "resumed" in (await ok(settings, "schedules", "resume", "nightly")).out

    run = await ok(settings, "schedules", "run-now", "nightly")
    job = await client.get(uuid.UUID(run.out.strip()))
    assert job.metadata["schedule"] == "nightly" and job.metadata["manual"] is True
    as_json = (await ok(settings, "schedules", "run-now", "tick", "--json")).json()
    assert as_json["kind"] == "noop"

    assert (await ok(settings, "schedules", "delete", "tick", "--json")).json() == {
        "deleted": "tick"
    }
    assert [s.name for s in await client.schedules.list()] == ["nightly"]


async def test_errors_are_one_line_with_the_documented_exit_codes(
    client: Client, settings: Settings
) -> None:
    missing = await jobq(settings, "schedules", "pause", "nope")
    assert missing.code == 3, missing
    assert missing.error_line == "error: no schedule named 'nope'"
    bad = await jobq(settings, "schedules", "add", "x", "noop", "--cron", "99 * * * *")
    assert bad.code == 2 and "cron" in bad.error_line
    neither = await jobq(settings, "schedules", "add", "x", "noop")
    assert neither.code == 2 and "exactly one of" in neither.error_line
    unknown = await jobq(settings, "schedules", "add", "x", "nope", "--every", "1m")
    assert unknown.code == 2 and "unknown kind 'nope'" in unknown.error_line
    payload = await jobq(
        settings, "schedules", "add", "x", "noop", "--every", "1m", "--payload", "["
    )
    assert payload.code == 2 and "--payload" in payload.error_line
    await ok(settings, "schedules", "add", "x", "noop", "--every", "1m")
    taken = await jobq(settings, "schedules", "add", "x", "noop", "--every", "1m")
    assert taken.code == 4 and "already exists" in taken.error_line
    await sync_code_schedules(
        client.pool, client.queries, [ScheduleRequest(name="coded", kind="noop", every="1h")]
    )
    listed = (await ok(settings, "schedules", "list", "--json")).json()["schedules"]
    assert {s["name"]: s["source"] for s in listed} == {"coded": "code", "x": "api"}
