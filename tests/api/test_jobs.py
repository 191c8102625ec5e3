"""The /v1/jobs rows of SPEC §2, each success and each error code, on a real database."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import httpx
import pytest

from jobq import App, Cancelled, JobStatus, Settings, Succeeded
from jobq.client import Client
from tests.api.support import (
    assert_problem,
    claim,
    error_fields,
    fail_permanently,
    finish,
    http,
    http_client,
)
from tests.support import insert_job

__all__ = ["http"]  # the fixture, imported for pytest

NO_SUCH_JOB = "018f0000-0000-7000-8000-000000000000"


async def count_jobs(client: Client) -> int:
    return int(await client.pool.fetchval(f'SELECT count(*) FROM "{client.settings.schema}".jobs'))


# --- POST /v1/jobs ----------------------------------------------------------------------


async def test_create_answers_201_with_location_and_the_job(
    http: httpx.AsyncClient, client: Client
) -> None:
    response = await http.post(
        "/v1/jobs",
        json={
            "kind": "script",
            "payload": {"action": "ok", "n": 1},
            "metadata": {"traceparent": "00-abc-def-01"},
            "queue": "emails",
            "priority": 5,
            "max_attempts": 7,
            "run_at": "2031-05-06T07:08:09+02:00",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/jobs/{body['id']}"
    assert "idempotent-replayed" not in response.headers
    assert body["status"] == "queued"
    assert body["queue"] == "emails"
    assert body["priority"] == 5
    assert body["max_attempts"] == 7
    assert body["payload"] == {"action": "ok", "n": 1}
    assert body["metadata"] == {"traceparent": "00-abc-def-01"}
    assert body["run_at"] == "2031-05-06T05:08:09Z"  # UTC with Z
    assert body["created_at"].endswith("Z")
    assert uuid.UUID(body["id"]).version == 7
    fetched = await http.get(response.headers["location"])
    assert fetched.json() == body


async def test_create_fills_defaults(http: httpx.AsyncClient) -> None:
    body = (await http.post("/v1/jobs", json={"kind": "script"})).json()
    assert body["queue"] == "default"
    assert body["payload"] == {}
    assert body["metadata"] == {}
    assert body["priority"] == 0
    assert body["max_attempts"] == 3  # the kind's retry policy
    assert body["attempts"] == 0
    assert body["idempotency_key"] is None


async def test_create_answers_alike_on_its_fast_and_generic_paths(
    http: httpx.AsyncClient,
) -> None:
    # A plain `application/json` body takes routes_jobs' fast path; another media
    # type spelling or an Idempotency-Key header goes through FastAPI's handler.
    request = {"kind": "script", "payload": {"n": 1}, "queue": "q", "priority": 2}
    content = json.dumps(request).encode()
    answers = [
        await http.post("/v1/jobs", content=content, headers=headers)
        for headers in (
            {"content-type": "application/json"},
            {"content-type": "application/json; charset=utf-8"},
            {"content-type": "application/json", "idempotency-key": "fast-or-not"},
        )
    ]
    assert [a.status_code for a in answers] == [201, 201, 201]
    varying = {"id", "created_at", "updated_at", "run_at", "idempotency_key"}
    shapes = [{k: v for k, v in a.json().items() if k not in varying} for a in answers]
    assert shapes[0] == shapes[1] == shapes[2]
    assert [a.headers["location"] for a in answers] == [
        f"/v1/jobs/{a.json()['id']}" for a in answers
    ]
    assert answers[2].json()["idempotency_key"] == "fast-or-not"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "kind"),
        ({"kind": "Bad Kind"}, "kind"),
        ({"kind": 5}, "kind"),
        ({"kind": "script", "queue": "UPPER"}, "queue"),
        ({"kind": "script", "queue": "x" * 64}, "queue"),
        ({"kind": "script", "priority": 32768}, "priority"),
        ({"kind": "script", "priority": "1"}, "priority"),
        ({"kind": "script", "max_attempts": 0}, "max_attempts"),
        ({"kind": "script", "max_attempts": 1001}, "max_attempts"),
        ({"kind": "script", "payload": []}, "payload"),
        ({"kind": "script", "payload": "text"}, "payload"),
        ({"kind": "script", "metadata": [1]}, "metadata"),
        ({"kind": "script", "payload": {"a": "nul\u0000"}}, "payload"),
        ({"kind": "script", "payload": {"k\u0000": 1}}, "payload"),
        ({"kind": "script", "metadata": {"a": ["x\u0000"]}}, "metadata"),
        ({"kind": "script", "idempotency_key": "a\u0000b"}, "idempotency_key"),
        ({"kind": "script", "run_at": "2030-01-01T00:00:00"}, "run_at"),
        ({"kind": "script", "run_at": "1969-12-31T23:00:00Z"}, "run_at"),
        ({"kind": "script", "run_at": "9999-12-31T23:00:00-05:00"}, "run_at"),
        ({"kind": "script", "run_at": "tomorrow"}, "run_at"),
        ({"kind": "script", "run_at": 1700000000}, "run_at"),
        ({"kind": "script", "idempotency_key": ""}, "idempotency_key"),
        ({"kind": "script", "idempotency_key": "k" * 256}, "idempotency_key"),
        ({"kind": "script", "surprise": 1}, "surprise"),
    ],
)
async def test_create_rejects_invalid_bodies_naming_the_field(
    http: httpx.AsyncClient, client: Client, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(await http.post("/v1/jobs", json=body), 422, type_="validation")
    assert field in error_fields(problem), problem
    assert await count_jobs(client) == 0


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"kind": ', "application/json"),
        (b"", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe{}", "application/json"),
        (b'{"kind": "script", "payload": {"n": NaN}}', "application/json"),
        (b'{"kind": "script", "payload": {"n": 1e400}}', "application/json"),
        (b'{"kind": "script", "payload": {"n": 1' + b"0" * 5000 + b"}}", "application/json"),
        (
            b'{"kind": "script", "payload": {"d": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
            "application/json",
        ),
        (b'{"kind": "script", "payload": {"a": "\\ud800"}}', "application/json"),
        (b'{"kind": "script", "payload": {"\\udfff": 1}}', "application/json"),
        (b'{"kind": "script", "metadata": {"a": ["\\ud800x"]}}', "application/json"),
        (b'{"kind": "script", "idempotency_key": "\\ud800"}', "application/json"),
    ],
)
async def test_create_rejects_malformed_bodies(
    http: httpx.AsyncClient, client: Client, content: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await http.post("/v1/jobs", content=content, headers=headers)
    assert_problem(response, 422, type_="validation")
    assert await count_jobs(client) == 0


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"kind=script", "application/x-www-form-urlencoded"),
        (b'{"kind": "script"}', "text/plain"),
        (b'{"kind": "script"}', None),
        (b'{"kind": "script"}', "application/jsonx"),
    ],
)
async def test_create_refuses_a_body_not_declared_as_json(
    http: httpx.AsyncClient, client: Client, content: bytes, content_type: str | None
) -> None:
    # What a page of another site can send without a CORS preflight (issue 12 #6).
    headers = {"content-type": content_type} if content_type else {}
    response = await http.post("/v1/jobs", content=content, headers=headers)
    assert_problem(response, 415, type_="unsupported-media-type")
    assert await count_jobs(client) == 0


async def test_unknown_kind_lists_the_known_kinds(http: httpx.AsyncClient, client: Client) -> None:
    response = await http.post("/v1/jobs", json={"kind": "send_fax"})
    problem = assert_problem(response, 422, type_="unknown-kind")
    assert "noop" in problem["detail"] and "script" in problem["detail"]
    assert problem["detail"].endswith("the kinds come from the app: set JOBQ_APP or --app")
    assert problem["known_kinds"] == ["noop", "script"]
    assert error_fields(problem) == {"kind"}
    assert await count_jobs(client) == 0


async def test_payload_over_the_payload_limit_is_413(
    app: App, client: Client, settings: Settings
) -> None:
    small = dataclasses.replace(settings, max_payload_bytes=100)
    client.settings = small  # the Client checks payload size with its own settings
    async with http_client(app, client, small) as http:
        response = await http.post("/v1/jobs", json={"kind": "script", "payload": {"x": "y" * 200}})
        problem = assert_problem(response, 413, type_="payload-too-large")
        assert error_fields(problem) == {"payload"}
        ok = await http.post("/v1/jobs", json={"kind": "script", "payload": {"x": "y" * 50}})
        assert ok.status_code == 201
    assert await count_jobs(client) == 1


async def test_body_over_the_request_limit_is_413_before_parsing(
    app: App, client: Client, settings: Settings
) -> None:
    small = dataclasses.replace(settings, max_request_bytes=1000, max_payload_bytes=1000)
    async with http_client(app, client, small) as http:
        big = json.dumps({"kind": "script", "payload": {"x": "y" * 2000}}).encode()
        problem = assert_problem(
            await http.post("/v1/jobs", content=big, headers={"content-type": "application/json"}),
            413,
            type_="request-too-large",
        )
        assert problem["limit"] == 1000

        # No Content-Length (chunked): counted while read; broken JSON proves it is not parsed.
        async def chunks() -> Any:
            for _ in range(20):
                yield b"{" * 100

        response = await http.post(
            "/v1/jobs", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_problem(response, 413, type_="request-too-large")
        # Exactly at the limit is fine.
        body = json.dumps({"kind": "script", "payload": {"x": ""}}).encode()
        body = body.replace(b'""', b'"' + b"y" * (1000 - len(body)) + b'"')
        assert len(body) == 1000
        response = await http.post(
            "/v1/jobs", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 201, response.text
    assert await count_jobs(client) == 1


# --- POST /v1/jobs/batch -------------------------------------------------------------------


async def test_batch_creates_jobs_in_request_order(http: httpx.AsyncClient) -> None:
    items = [{"kind": "script", "payload": {"i": i}} for i in range(5)]
    response = await http.post("/v1/jobs/batch", json={"jobs": items})
    assert response.status_code == 201, response.text
    jobs = response.json()["jobs"]
    assert [j["payload"]["i"] for j in jobs] == list(range(5))
    assert len({j["id"] for j in jobs}) == 5


async def test_batch_is_all_or_nothing_and_names_the_index(
    http: httpx.AsyncClient, client: Client
) -> None:
    items: list[dict[str, Any]] = [{"kind": "script"} for _ in range(4)]
    items[2] = {"kind": "script", "priority": 99999}
    problem = assert_problem(await http.post("/v1/jobs/batch", json={"jobs": items}), 422)
    assert problem["errors"][0]["index"] == 2
    assert error_fields(problem) == {"jobs.2.priority"}

    items[2] = {"kind": "unknown_kind"}
    problem = assert_problem(await http.post("/v1/jobs/batch", json={"jobs": items}), 422)
    assert problem["errors"][0]["index"] == 2
    assert "script" in problem["detail"]
    assert await count_jobs(client) == 0


@pytest.mark.parametrize("size", [0, 1001])
async def test_batch_size_is_1_to_1000(http: httpx.AsyncClient, size: int) -> None:
    body = {"jobs": [{"kind": "noop"}] * size}
    problem = assert_problem(await http.post("/v1/jobs/batch", json=body), 422)
    assert "jobs" in error_fields(problem)


async def test_batch_of_1000_is_accepted(http: httpx.AsyncClient, client: Client) -> None:
    response = await http.post("/v1/jobs/batch", json={"jobs": [{"kind": "noop"}] * 1000})
    assert response.status_code == 201
    assert len(response.json()["jobs"]) == 1000
    assert await count_jobs(client) == 1000


@pytest.mark.parametrize(
    "body", [[], {"jobs": {"kind": "noop"}}, {"jobs": [{"kind": "noop"}], "extra": 1}]
)
async def test_batch_rejects_bad_shapes(http: httpx.AsyncClient, body: Any) -> None:
    assert_problem(await http.post("/v1/jobs/batch", json=body), 422, type_="validation")


# --- GET /v1/jobs/{id} -----------------------------------------------------------------------


async def test_get_job(http: httpx.AsyncClient, client: Client) -> None:
    job_id = await insert_job(client, status="running", locked_by="w1", lease_offset_s=30)
    body = (await http.get(f"/v1/jobs/{job_id}")).json()
    assert body["id"] == str(job_id)
    assert body["status"] == "running"
    assert body["locked_by"] == "w1"
    assert set(body) == {
        "id", "queue", "kind", "payload", "metadata", "status", "priority", "attempts",
        "max_attempts", "run_at", "idempotency_key", "cancel_requested", "last_error",
        "locked_by", "created_at", "updated_at", "started_at", "finished_at", "result",
        "progress", "progress_details", "progress_at",
    }  # fmt: skip
    assert body["progress"] is None and body["progress_details"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/{}",
        "/v1/jobs/{}/attempts",
        "POST /v1/jobs/{}/cancel",
        "POST /v1/jobs/{}/retry",
        "DELETE /v1/jobs/{}",
    ],
)
async def test_id_routes_422_on_a_non_uuid_and_404_on_an_unknown_uuid(
    http: httpx.AsyncClient, path: str
) -> None:
    method, _, template = path.rpartition(" ")
    method = method or "GET"
    for bad in ["not-a-uuid", "123", "01964f4e-8c5a-7b3c-9d2e-4f6a8b0c2d4"]:
        problem = assert_problem(await http.request(method, template.format(bad)), 422)
        assert error_fields(problem) == {"id"}
    for unknown in [NO_SUCH_JOB, str(uuid.uuid4()), str(uuid.uuid1())]:
        response = await http.request(method, template.format(unknown))
        assert_problem(response, 404, type_="job-not-found")


# --- GET /v1/jobs ------------------------------------------------------------------------------


async def test_list_is_newest_first_and_filters(http: httpx.AsyncClient, client: Client) -> None:
    a = await insert_job(client, status="queued", queue="q1")
    b = await insert_job(client, status="failed_permanent", queue="q1", kind="noop")
    c = await insert_job(client, status="succeeded", queue="q2")
    d = await insert_job(client, status="running", queue="q2", locked_by="w", lease_offset_s=30)

    async def ids(params: Any) -> list[str]:
        response = await http.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["next_cursor"] is None
        return [j["id"] for j in body["jobs"]]

    assert await ids({}) == [str(d), str(c), str(b), str(a)]
    assert await ids({"queue": "q1"}) == [str(b), str(a)]
    assert await ids({"kind": "noop"}) == [str(b)]
    assert await ids([("status", "queued"), ("status", "running")]) == [str(d), str(a)]
    assert await ids({"status": "succeeded", "queue": "q1"}) == []
    # "failed", as the dashboard and `jobq queues` say it, is failed_permanent.
    assert await ids({"status": "failed"}) == [str(b)]


async def test_the_status_alias_is_in_the_filters_schema_not_in_answers(
    http: httpx.AsyncClient, client: Client
) -> None:
    await insert_job(client, status="failed_permanent")
    listed = (await http.get("/v1/jobs", params={"status": "failed"})).json()
    assert [job["status"] for job in listed["jobs"]] == ["failed_permanent"]
    counted = await http.post("/v1/jobs/bulk/retry", json={"status": ["failed"]})
    assert counted.status_code == 200, counted.text
    assert counted.json()["count"] == 1
    schema = (await http.get("/openapi.json")).json()
    statuses = schema["components"]["schemas"]["JobStatus"]["enum"]  # what answers carry
    assert "failed" not in statuses and "failed_permanent" in statuses
    # What a filter accepts, the alias included, so the document is true of requests.
    (param,) = [
        p for p in schema["paths"]["/v1/jobs"]["get"]["parameters"] if p["name"] == "status"
    ]
    accepted = param["schema"]["anyOf"][0]["items"]["enum"]
    assert {"failed", "failed_permanent"} <= set(accepted)


async def test_a_validators_message_has_no_pydantic_prefix(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/jobs", json={"kind": "script", "run_at": "2030-01-01T00:00:00"})
    body = assert_problem(response, 422)
    assert "Value error" not in response.text
    assert body["errors"][0]["msg"] == "must carry a UTC offset (e.g. 2030-01-01T00:00:00Z)"


async def test_list_pages_with_a_cursor(http: httpx.AsyncClient, client: Client) -> None:
    created = [await insert_job(client) for _ in range(5)]
    first = (await http.get("/v1/jobs", params={"limit": 2})).json()
    assert [j["id"] for j in first["jobs"]] == [str(created[4]), str(created[3])]
    assert first["next_cursor"]
    second = (
        await http.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [j["id"] for j in second["jobs"]] == [str(created[2]), str(created[1])]
    third = (
        await http.get("/v1/jobs", params={"limit": 2, "cursor": second["next_cursor"]})
    ).json()
    assert [j["id"] for j in third["jobs"]] == [str(created[0])]
    assert third["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status.0"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"queue": "Bad Queue"}, "queue"),
        ({"kind": "Bad Kind"}, "kind"),
        ({"cursor": "not a cursor!"}, "cursor"),
        ({"cursor": "x" * 23}, "cursor"),
        ({"cursor": "A" * 22 + "="}, "cursor"),
        ({"statuses": "queued"}, "statuses"),
    ],
)
async def test_list_rejects_bad_filters(
    http: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    problem = assert_problem(await http.get("/v1/jobs", params=params), 422)
    assert field in error_fields(problem), problem


# --- GET /v1/jobs/{id}/attempts --------------------------------------------------------------


async def test_attempts_oldest_first_with_the_running_one_last(
    http: httpx.AsyncClient, client: Client
) -> None:
    job_id = (await http.post("/v1/jobs", json={"kind": "script"})).json()["id"]
    assert (await http.get(f"/v1/jobs/{job_id}/attempts")).json() == {"attempts": []}

    await fail_permanently(client, uuid.UUID(job_id))  # 3 failed attempts
    await http.post(f"/v1/jobs/{job_id}/retry")
    await claim(client, uuid.UUID(job_id), worker_id="w-running")

    attempts = (await http.get(f"/v1/jobs/{job_id}/attempts")).json()["attempts"]
    assert [a["seq"] for a in attempts] == [1, 2, 3, 4]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "failed", None]
    assert all(a["error"] == "boom" for a in attempts[:3])
    running = attempts[-1]
    assert running["worker_id"] == "w-running"
    assert running["finished_at"] is None
    assert running["started_at"].endswith("Z")
    assert running["job_id"] == job_id

    await finish(client, uuid.UUID(job_id), Succeeded(), worker_id="w-running")
    attempts = (await http.get(f"/v1/jobs/{job_id}/attempts")).json()["attempts"]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "failed", "succeeded"]


# --- POST /v1/jobs/{id}/cancel -----------------------------------------------------------------


@pytest.mark.parametrize("status", ["queued", "retrying", "cancelled"])
async def test_cancel_answers_200_when_the_job_is_now_cancelled(
    http: httpx.AsyncClient, client: Client, status: str
) -> None:
    job_id = await insert_job(client, status=status)
    response = await http.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None or status == "cancelled"


async def test_cancel_of_a_running_job_answers_202(http: httpx.AsyncClient, client: Client) -> None:
    job_id = (await http.post("/v1/jobs", json={"kind": "script"})).json()["id"]
    await claim(client, uuid.UUID(job_id))
    for _ in range(2):  # asking again changes nothing
        response = await http.post(f"/v1/jobs/{job_id}/cancel")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "running"
        assert response.json()["cancel_requested"] is True
    assert await finish(client, uuid.UUID(job_id), Cancelled) is JobStatus.CANCELLED
    assert (await http.post(f"/v1/jobs/{job_id}/cancel")).status_code == 200


@pytest.mark.parametrize("status", ["succeeded", "failed_permanent"])
async def test_cancel_of_a_finished_job_is_409(
    http: httpx.AsyncClient, client: Client, status: str
) -> None:
    job_id = await insert_job(client, status=status, finished_offset_s=-1)
    problem = assert_problem(await http.post(f"/v1/jobs/{job_id}/cancel"), 409)
    assert status in problem["detail"]
    assert (await client.get(job_id)).status == status


# --- POST /v1/jobs/{id}/retry -------------------------------------------------------------------


async def test_retry_puts_a_failed_job_back(http: httpx.AsyncClient, client: Client) -> None:
    job_id = (await http.post("/v1/jobs", json={"kind": "script"})).json()["id"]
    await fail_permanently(client, uuid.UUID(job_id))
    response = await http.post(f"/v1/jobs/{job_id}/retry")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert body["attempts"] == 0
    assert body["last_error"] == "boom"
    assert body["finished_at"] is None


async def test_retry_of_a_cancelled_job(http: httpx.AsyncClient, client: Client) -> None:
    job_id = await insert_job(client, status="cancelled", finished_offset_s=-1)
    response = await http.post(f"/v1/jobs/{job_id}/retry")
    assert response.status_code == 200
    assert response.json()["status"] == "queued"


@pytest.mark.parametrize("status", ["queued", "running", "retrying", "succeeded"])
async def test_retry_in_any_other_state_is_409(
    http: httpx.AsyncClient, client: Client, status: str
) -> None:
    job_id = await insert_job(client, status=status)
    assert_problem(await http.post(f"/v1/jobs/{job_id}/retry"), 409, type_="invalid-state")


# --- DELETE /v1/jobs/{id} ---------------------------------------------------------------------


async def test_delete_removes_a_finished_job_with_its_history(
    http: httpx.AsyncClient, client: Client
) -> None:
    job_id = (await http.post("/v1/jobs", json={"kind": "script"})).json()["id"]
    await fail_permanently(client, uuid.UUID(job_id))
    response = await http.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await http.get(f"/v1/jobs/{job_id}"), 404)
    assert_problem(await http.get(f"/v1/jobs/{job_id}/attempts"), 404)
    schema = client.settings.schema
    assert await client.pool.fetchval(f'SELECT count(*) FROM "{schema}".job_attempts') == 0


@pytest.mark.parametrize("status", ["queued", "running", "retrying"])
async def test_delete_of_an_unfinished_job_is_409(
    http: httpx.AsyncClient, client: Client, status: str
) -> None:
    job_id = await insert_job(client, status=status)
    assert_problem(await http.delete(f"/v1/jobs/{job_id}"), 409, type_="invalid-state")
    assert (await client.get(job_id)).status == status


# --- POST /v1/jobs/bulk/cancel, /bulk/retry ------------------------------------------------------


async def test_bulk_cancel_and_retry_answer_the_count(
    http: httpx.AsyncClient, client: Client
) -> None:
    for _ in range(3):
        await insert_job(client, queue="a")
    await insert_job(client, queue="b")
    await insert_job(client, queue="a", status="succeeded")
    response = await http.post("/v1/jobs/bulk/cancel", json={"queue": "a"})
    assert response.status_code == 200, response.text
    assert response.json() == {"count": 3}
    response = await http.post(
        "/v1/jobs/bulk/retry", json={"status": ["cancelled"], "kind": "script"}
    )
    assert response.json() == {"count": 3}
    listed = (await http.get("/v1/jobs", params={"queue": "a", "status": "queued"})).json()
    assert len(listed["jobs"]) == 3


@pytest.mark.parametrize("path", ["/v1/jobs/bulk/cancel", "/v1/jobs/bulk/retry"])
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": []},
        {"status": ["bogus"]},
        {"status": "queued"},
        {"queue": "Bad Queue"},
        {"kind": "Bad Kind"},
        {"queue": "a", "other": 1},
        [],
    ],
)
async def test_bulk_rejects_empty_or_bad_filters(
    http: httpx.AsyncClient, client: Client, path: str, body: Any
) -> None:
    await insert_job(client, queue="a")
    assert_problem(await http.post(path, json=body), 422, type_="validation")
    assert (await client.list_jobs()).jobs[0].status is JobStatus.QUEUED


@pytest.mark.parametrize("path", ["/v1/jobs/bulk/cancel", "/v1/jobs/bulk/retry"])
async def test_bulk_treats_null_as_absent(
    http: httpx.AsyncClient, client: Client, path: str
) -> None:
    await insert_job(client, queue="a", status="cancelled")
    body = {"queue": "a", "kind": None, "status": None}
    response = await http.post(path, json=body)
    assert response.status_code == 200, response.text
    empty = {"queue": None, "kind": None, "status": None}
    assert_problem(await http.post(path, json=empty), 422, type_="validation")
