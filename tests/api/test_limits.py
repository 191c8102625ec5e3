"""What one request or one job may cost the API (issue 12 #2, #5, #7): the body
limit of one job, the depth cap, a RecursionError that is the server's fault,
and list pages with large payloads."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from jobq import App, Settings
from jobq.api.middleware import MAX_JSON_CONTAINERS, SMALL_BODY_BYTES, enqueue_body_limit
from jobq.client import MAX_PAGE_BYTES, Client
from jobq.config import DEFAULT_MAX_METADATA_BYTES
from jobq.job_request import MAX_JSON_DEPTH
from tests.api.support import assert_problem, http, http_client
from tests.support import insert_job

__all__ = ["http"]  # the fixture, imported for pytest


def deep_json(depth: int, key: str = "a") -> bytes:
    """`depth` nested objects as JSON text, built without recursion."""
    return (f'{{"{key}":' * depth + "1" + "}" * depth).encode()


def job_body(payload: bytes) -> bytes:
    return b'{"kind": "noop", "payload": ' + payload + b"}"


async def test_a_payload_nested_past_the_cap_is_refused_and_stored_nowhere(
    http: httpx.AsyncClient, client: Client
) -> None:
    for depth in (MAX_JSON_DEPTH + 1, 945):
        response = await http.post(
            "/v1/jobs",
            content=job_body(deep_json(depth)),
            headers={"content-type": "application/json"},
        )
        problem = assert_problem(response, 422, type_="validation")
        if depth == MAX_JSON_DEPTH + 1:  # deeper ones may already stop the JSON decoder
            assert f"nested deeper than {MAX_JSON_DEPTH}" in problem["detail"]
        batch = {"jobs": [{"kind": "noop", "metadata": json.loads(deep_json(MAX_JSON_DEPTH + 1))}]}
        assert_problem(await http.post("/v1/jobs/batch", json=batch), 422)
    ok = await http.post(
        "/v1/jobs",
        content=job_body(deep_json(MAX_JSON_DEPTH - 1)),
        headers={"content-type": "application/json"},
    )
    assert ok.status_code == 201, ok.text
    assert len((await client.list_jobs()).jobs) == 1


async def test_one_job_body_is_limited_before_it_is_parsed(
    app: App, client: Client, settings: Settings
) -> None:
    limit = enqueue_body_limit(
        settings.max_payload_bytes, DEFAULT_MAX_METADATA_BYTES, settings.max_request_bytes
    )
    assert limit < settings.max_request_bytes  # 3.3 MiB by default, not 16 MiB
    async with http_client(app, client, settings) as api:
        too_big = job_body(b'{"s": "' + b"x" * limit + b'"}')
        response = await api.post(
            "/v1/jobs", content=too_big, headers={"content-type": "application/json"}
        )
        problem = assert_problem(response, 413, type_="request-too-large")
        assert problem["limit"] == limit
        # A batch keeps JOBQ_MAX_REQUEST_BYTES: several jobs may be that large together.
        response = await api.post(
            "/v1/jobs/batch",
            content=b'{"jobs": [{"kind": "noop", "payload": {"s": "' + b"x" * limit + b'"}}]}',
            headers={"content-type": "application/json"},
        )
        assert_problem(response, 413, type_="payload-too-large")
    # A payload at the limit, sent with every character escaped, still fits.
    escaped = "\\u00e9" * (settings.max_payload_bytes // 2 - 10)
    async with http_client(app, client, settings) as api:
        response = await api.post(
            "/v1/jobs",
            content=job_body(f'{{"s": "{escaped}"}}'.encode()),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 201, response.text[:300]


def undecodable_depth() -> int:
    """The first of a few depths that this Python's json.loads cannot read back. Since
    3.12 the C decoder's limit is its own, not sys.getrecursionlimit(): 3.11 stops before
    1,000 levels, 3.12 before 2,000, 3.13 reads 5,000 and stops before 10,000. PostgreSQL
    (14 to 18, default max_stack_depth) still stores 10,000."""
    for depth in (3000, 10_000):
        try:
            json.loads(deep_json(depth))
        except RecursionError:
            return depth
    raise AssertionError("this Python's json.loads reads 10,000 levels: find a deeper case")


async def test_a_recursion_error_outside_parsing_is_a_logged_500(
    http: httpx.AsyncClient, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # A job an older jobq accepted, nested past what Python's decoder can read back.
    job_id = await insert_job(client)
    await client.pool.execute(
        f'UPDATE "{client.settings.schema}".jobs SET payload = $1::jsonb WHERE id = $2',
        deep_json(undecodable_depth()).decode(),
        job_id,
    )
    response = await http.get("/v1/jobs")
    problem = assert_problem(response, 500, type_="internal")
    assert "request_id" in problem
    assert "RecursionError" in caplog.text
    # The list without payloads (what the dashboard asks for) still works.
    page = (await http.get("/v1/jobs", params={"summary": "true"})).json()
    assert [j["id"] for j in page["jobs"]] == [str(job_id)]


async def test_a_page_of_large_payloads_is_cut_by_bytes_and_walks_on(
    http: httpx.AsyncClient, client: Client
) -> None:
    big = "x" * (600 * 1024)
    ids = []
    for i in range(8):
        response = await http.post("/v1/jobs", json={"kind": "noop", "payload": {"i": i, "s": big}})
        assert response.status_code == 201
        ids.append(response.json()["id"])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        response = await http.get("/v1/jobs", params=params)
        assert response.status_code == 200
        # A page stops at the first job that starts past the cap: at most one more.
        assert len(response.content) < MAX_PAGE_BYTES + 700 * 1024
        page = response.json()
        assert all(j["payload"]["s"] == big for j in page["jobs"])
        seen += [j["id"] for j in page["jobs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]  # every job once, newest first
    assert pages == 2  # 4 jobs of 600 KiB start within 2 MiB, then the other 4


async def test_summary_leaves_payload_and_metadata_out(
    http: httpx.AsyncClient, client: Client
) -> None:
    big = "x" * (600 * 1024)
    for i in range(8):
        await http.post(
            "/v1/jobs", json={"kind": "noop", "payload": {"s": big}, "metadata": {"i": i}}
        )
    response = await http.get("/v1/jobs", params={"summary": "true", "limit": "500"})
    page = response.json()
    assert len(page["jobs"]) == 8 and page["next_cursor"] is None
    assert len(response.content) < 20_000
    for job in page["jobs"]:
        assert "payload" not in job and "metadata" not in job
        assert job["kind"] == "noop" and uuid.UUID(job["id"])
    full = (await http.get("/v1/jobs", params={"limit": "1"})).json()["jobs"][0]
    assert full["payload"] == {"s": big}


async def test_only_enqueueing_takes_a_large_body(http: httpx.AsyncClient, client: Client) -> None:
    job_id = await insert_job(client)
    padding = {"queue": "default", "pad": "x" * (70 * 1024)}
    for method, path in (
        ("POST", "/v1/jobs/bulk/cancel"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("POST", "/v1/queues/default/pause"),
        ("GET", "/v1/jobs"),
    ):
        response = await http.request(method, path, json=padding)
        problem = assert_problem(response, 413, type_="request-too-large")
        assert problem["limit"] == SMALL_BODY_BYTES, path
    assert (await client.get(job_id)).status.value == "queued"


async def test_a_body_of_countless_tiny_objects_is_refused_before_parsing(
    http: httpx.AsyncClient, client: Client
) -> None:
    # 16 MiB of `{}` would be 8 million dicts once parsed: gigabytes.
    count = MAX_JSON_CONTAINERS + 1
    body = b'{"jobs": [{"kind": "noop", "payload": {"a": [' + b"{}," * count + b"{}]}}]}"
    response = await http.post(
        "/v1/jobs/batch", content=body, headers={"content-type": "application/json"}
    )
    problem = assert_problem(response, 413, type_="request-too-large")
    assert problem["limit"] == MAX_JSON_CONTAINERS
    # A batch of ordinary jobs is far below the count.
    jobs = [{"kind": "noop", "payload": {"i": i, "tags": [1, 2]}} for i in range(1000)]
    assert (await http.post("/v1/jobs/batch", json={"jobs": jobs})).status_code == 201
