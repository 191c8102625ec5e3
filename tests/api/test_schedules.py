"""/v1/schedules: create, read, change, pause, resume, run now, delete; every refusal a problem."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from jobq import Settings
from jobq.client import Client
from jobq.db.firing import sync_code_schedules
from jobq.schedules import ScheduleRequest
from tests.api.support import assert_problem, error_fields, http

__all__ = ["http"]  # the fixture, imported for pytest

NIGHTLY = {
    "name": "nightly",
    "kind": "noop",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "payload": {"format": "pdf"},
    "priority": 5,
}


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_create_get_list_patch_delete(http: httpx.AsyncClient, client: Client) -> None:
    created = await http.post("/v1/schedules", json=NIGHTLY)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/schedules/nightly"
    body = created.json()
    assert body["source"] == "api" and body["paused"] is False
    assert body["cron"] == "30 2 * * *" and body["every"] is None
    assert body["last_fire_at"] is None and body["synced_at"] is None
    assert ts(body["next_fire_at"]) > await client.queries.clock_now(client.pool)

    assert (await http.get("/v1/schedules/nightly")).json() == body
    listed = (await http.get("/v1/schedules")).json()
    assert [s["name"] for s in listed["schedules"]] == ["nightly"]

    patched = await http.patch("/v1/schedules/nightly", json={"every": "90s", "priority": 1})
    assert patched.status_code == 200, patched.text
    changed = patched.json()
    assert changed["every"] == "1m30s" and changed["cron"] is None
    assert changed["timezone"] == "UTC" and changed["priority"] == 1
    assert changed["payload"] == {"format": "pdf"}  # absent fields are kept

    back = (await http.patch("/v1/schedules/nightly", json={"max_attempts": None})).json()
    assert back["max_attempts"] is None

    assert (await http.delete("/v1/schedules/nightly")).status_code == 204
    assert_problem(await http.get("/v1/schedules/nightly"), 404, type_="schedule-not-found")
    assert_problem(await http.delete("/v1/schedules/nightly"), 404, type_="schedule-not-found")


async def test_a_taken_name_is_a_409(http: httpx.AsyncClient) -> None:
    assert (await http.post("/v1/schedules", json=NIGHTLY)).status_code == 201
    assert_problem(await http.post("/v1/schedules", json=NIGHTLY), 409, type_="schedule-conflict")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"cron": "99 * * * *"}, "cron"),
        ({"cron": "* *"}, "cron"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"cron": None, "every": "0s"}, "every"),
        ({"cron": None, "every": "forever"}, "every"),
        ({"name": "Has Space"}, "name"),
        ({"priority": 99999}, "priority"),
        ({"max_attempts": 1001}, "max_attempts"),
        ({"missed": "sometimes"}, "missed"),
        ({"max_backfill": 0}, "max_backfill"),
        ({"queue": "UPPER"}, "queue"),
        ({"payload": [1]}, "payload"),
        ({"payload": {"x": "\u0000"}}, "payload"),
        ({"extra": True}, "extra"),
    ],
)
async def test_invalid_schedules_are_422s_naming_the_field(
    http: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    body = {**NIGHTLY, **changes}
    problem = assert_problem(await http.post("/v1/schedules", json=body), 422, type_="validation")
    assert field in error_fields(problem)


async def test_timing_rules_across_fields_are_422s(http: httpx.AsyncClient) -> None:
    both = {**NIGHTLY, "every": "1h"}
    assert_problem(await http.post("/v1/schedules", json=both), 422, type_="validation")
    neither = {k: v for k, v in NIGHTLY.items() if k != "cron"}
    assert_problem(await http.post("/v1/schedules", json=neither), 422, type_="validation")
    zoned = {**neither, "every": "1h"}
    problem = assert_problem(await http.post("/v1/schedules", json=zoned), 422)
    assert "timezone" in problem["detail"]


async def test_an_unknown_kind_and_a_big_payload_are_refused(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    unknown = await http.post("/v1/schedules", json={**NIGHTLY, "kind": "nope"})
    assert_problem(unknown, 422, type_="unknown-kind")
    over = {"x": "y" * settings.max_payload_bytes}  # a job's limit, as for enqueue
    big = await http.post("/v1/schedules", json={**NIGHTLY, "payload": over})
    assert_problem(big, 413, type_="payload-too-large")
    await http.post("/v1/schedules", json=NIGHTLY)
    patched = await http.patch("/v1/schedules/nightly", json={"payload": over})
    assert_problem(patched, 413, type_="payload-too-large")
    huge = {"x": "y" * (4 * settings.max_payload_bytes)}  # past the body limit: never parsed
    assert_problem(await http.post("/v1/schedules", json={**NIGHTLY, "payload": huge}), 413)


async def test_a_bad_name_in_the_path_is_a_422(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/v1/schedules/BAD NAME"), 422)
    assert_problem(await http.post(f"/v1/schedules/{'x' * 200}/run"), 422)


async def test_pause_resume_and_run_now(http: httpx.AsyncClient, client: Client) -> None:
    await http.post("/v1/schedules", json=NIGHTLY)
    before = (await http.get("/v1/schedules/nightly")).json()
    paused = await http.post("/v1/schedules/nightly/pause")
    assert paused.status_code == 200 and paused.json()["paused"] is True

    run = await http.post("/v1/schedules/nightly/run")
    assert run.status_code == 201, run.text
    job = run.json()
    assert run.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["kind"] == "noop" and job["priority"] == 5 and job["payload"] == {"format": "pdf"}
    assert job["metadata"]["schedule"] == "nightly" and job["metadata"]["manual"] is True
    after = (await http.get("/v1/schedules/nightly")).json()
    assert after["next_fire_at"] == before["next_fire_at"]  # a run now moves no fire time

    resumed = await http.post("/v1/schedules/nightly/resume")
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    for action in ("pause", "resume", "run"):
        response = await http.post(f"/v1/schedules/missing/{action}")
        assert_problem(response, 404, type_="schedule-not-found")


async def test_a_code_schedule_takes_only_pause_and_resume(
    http: httpx.AsyncClient, client: Client
) -> None:
    code = ScheduleRequest(name="from-code", kind="noop", every="1h")
    await sync_code_schedules(client.pool, client.queries, [code])
    refused = await http.patch("/v1/schedules/from-code", json={"every": "2h"})
    problem = assert_problem(refused, 409, type_="schedule-conflict")
    assert "defined in code" in problem["detail"]
    paused = await http.patch("/v1/schedules/from-code", json={"paused": True})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    await sync_code_schedules(client.pool, client.queries, [code])  # a worker restarts
    assert (await http.get("/v1/schedules/from-code")).json()["paused"] is True
    taken = {"name": "from-code", "kind": "noop", "every": "5m"}
    assert_problem(await http.post("/v1/schedules", json=taken), 409)


async def test_openapi_documents_the_schedule_routes(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    assert {"get", "post"} <= set(doc["paths"]["/v1/schedules"])
    assert {"get", "patch", "delete"} <= set(doc["paths"]["/v1/schedules/{name}"])
    assert "post" in doc["paths"]["/v1/schedules/{name}/run"]
