"""SPEC §3 over HTTP: the Idempotency-Key header and field, replays, mismatches, races."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from jobq.client import Client
from tests.api.support import assert_problem, error_fields, http

__all__ = ["http"]  # the fixture, imported for pytest


async def count_jobs(client: Client) -> int:
    return int(await client.pool.fetchval(f'SELECT count(*) FROM "{client.settings.schema}".jobs'))


def key_header(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


async def test_header_key_creates_then_replays(http: httpx.AsyncClient, client: Client) -> None:
    body = {"kind": "script", "payload": {"order": 17}}
    first = await http.post("/v1/jobs", json=body, headers=key_header("order-17"))
    assert first.status_code == 201, first.text
    assert first.json()["idempotency_key"] == "order-17"
    assert "idempotent-replayed" not in first.headers

    again = await http.post("/v1/jobs", json=body, headers=key_header("order-17"))
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert again.json() == first.json()
    assert await count_jobs(client) == 1


async def test_body_key_creates_then_replays(http: httpx.AsyncClient, client: Client) -> None:
    body = {"kind": "script", "idempotency_key": "k1"}
    first = await http.post("/v1/jobs", json=body)
    assert first.status_code == 201
    again = await http.post("/v1/jobs", json=body)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    # The header and the field name the same key.
    by_header = await http.post("/v1/jobs", json={"kind": "script"}, headers=key_header("k1"))
    assert by_header.status_code == 200
    assert by_header.json()["id"] == first.json()["id"]
    assert await count_jobs(client) == 1


async def test_header_and_field_both_present(http: httpx.AsyncClient, client: Client) -> None:
    same = await http.post(
        "/v1/jobs", json={"kind": "script", "idempotency_key": "k"}, headers=key_header("k")
    )
    assert same.status_code == 201
    different = await http.post(
        "/v1/jobs", json={"kind": "script", "idempotency_key": "k"}, headers=key_header("other")
    )
    problem = assert_problem(different, 422, type_="validation")
    assert "idempotency_key" in error_fields(problem)
    assert await count_jobs(client) == 1


async def test_a_utf8_header_key_equals_the_same_body_key(
    http: httpx.AsyncClient, client: Client
) -> None:
    body = {"kind": "script", "idempotency_key": "café-17"}
    headers = {b"Idempotency-Key": "café-17".encode()}  # UTF-8 bytes on the wire
    first = await http.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["idempotency_key"] == "café-17"
    again = await http.post("/v1/jobs", json={"kind": "script"}, headers=headers)
    assert again.status_code == 200
    assert await count_jobs(client) == 1


@pytest.mark.parametrize("key", ["", "k" * 256])
async def test_header_key_is_validated(http: httpx.AsyncClient, key: str) -> None:
    response = await http.post("/v1/jobs", json={"kind": "script"}, headers=key_header(key))
    assert_problem(response, 422)


@pytest.mark.parametrize(
    "changed",
    [
        {"payload": {"order": 18}},
        {"payload": {"order": 17, "extra": True}},
        {"kind": "noop"},
        {"queue": "other"},
        {"priority": 1},
        {"max_attempts": 2},
        {"metadata": {"a": 1}},
        {"run_at": "2030-01-01T00:00:00Z"},
        {"queue": "default"},  # sent now, omitted before: not the same request
    ],
)
async def test_same_key_different_request_is_422(
    http: httpx.AsyncClient, client: Client, changed: dict[str, Any]
) -> None:
    body = {"kind": "script", "payload": {"order": 17}}
    assert (await http.post("/v1/jobs", json=body, headers=key_header("k"))).status_code == 201
    response = await http.post("/v1/jobs", json={**body, **changed}, headers=key_header("k"))
    problem = assert_problem(response, 422, type_="idempotency-conflict")
    assert "k" in problem["detail"]
    assert await count_jobs(client) == 1


async def test_same_request_compares_by_value(http: httpx.AsyncClient, client: Client) -> None:
    first = (
        b'{"kind":"script","payload":{"a":1,"b":[1.5,{"c":null}]},"run_at":"2030-01-01T00:00:00Z"}'
    )
    again = (
        b'{"run_at":"2030-01-01T02:00:00+02:00","payload":{"b":[15e-1,{"c":null}],"a":1.0},'
        b'"kind":"script"}'
    )
    headers = {"content-type": "application/json", **key_header("by-value")}
    created = await http.post("/v1/jobs", content=first, headers=headers)
    assert created.status_code == 201, created.text
    replayed = await http.post("/v1/jobs", content=again, headers=headers)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["id"] == created.json()["id"]
    assert await count_jobs(client) == 1


async def test_concurrent_requests_with_one_key_create_one_job(
    http: httpx.AsyncClient, client: Client
) -> None:
    body = {"kind": "script", "payload": {"race": True}}
    responses = await asyncio.gather(
        *(http.post("/v1/jobs", json=body, headers=key_header("race")) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 49 + [201], statuses
    assert len({r.json()["id"] for r in responses}) == 1
    replays = [r for r in responses if r.status_code == 200]
    assert all(r.headers["idempotent-replayed"] == "true" for r in replays)
    assert await count_jobs(client) == 1


# --- batches ----------------------------------------------------------------------------------


async def test_header_on_a_batch_is_422(http: httpx.AsyncClient, client: Client) -> None:
    response = await http.post(
        "/v1/jobs/batch", json={"jobs": [{"kind": "script"}]}, headers=key_header("k")
    )
    problem = assert_problem(response, 422)
    assert "Idempotency-Key" in problem["detail"]
    assert await count_jobs(client) == 0


async def test_batch_replays_items_in_place(http: httpx.AsyncClient, client: Client) -> None:
    existing = await http.post("/v1/jobs", json={"kind": "script", "idempotency_key": "old"})
    items = [
        {"kind": "script", "payload": {"i": 0}},
        {"kind": "script", "idempotency_key": "old"},
        {"kind": "script", "payload": {"i": 2}, "idempotency_key": "new"},
        {"kind": "script", "payload": {"i": 2}, "idempotency_key": "new"},  # same request twice
    ]
    response = await http.post("/v1/jobs/batch", json={"jobs": items})
    assert response.status_code == 201, response.text
    jobs = response.json()["jobs"]
    assert jobs[1]["id"] == existing.json()["id"]
    assert jobs[2]["id"] == jobs[3]["id"]
    assert len({j["id"] for j in jobs}) == 3
    assert await count_jobs(client) == 3


async def test_batch_item_mismatch_fails_the_whole_batch(
    http: httpx.AsyncClient, client: Client
) -> None:
    await http.post("/v1/jobs", json={"kind": "script", "idempotency_key": "old"})
    items = [{"kind": "script"}, {"kind": "script", "priority": 3, "idempotency_key": "old"}]
    problem = assert_problem(
        await http.post("/v1/jobs/batch", json={"jobs": items}), 422, type_="idempotency-conflict"
    )
    assert problem["errors"][0]["index"] == 1
    assert await count_jobs(client) == 1


async def test_batch_items_sharing_a_key_must_match(
    http: httpx.AsyncClient, client: Client
) -> None:
    items = [
        {"kind": "script", "idempotency_key": "twin", "payload": {"a": 1}},
        {"kind": "noop"},
        {"kind": "script", "idempotency_key": "twin", "payload": {"a": 2}},
    ]
    problem = assert_problem(
        await http.post("/v1/jobs/batch", json={"jobs": items}), 422, type_="idempotency-conflict"
    )
    assert problem["errors"][0]["index"] == 2
    assert await count_jobs(client) == 0
