"""Debounce over HTTP: 201 then 200 with `Jobq-Replaced`, batches list the replaced
items, a running job is not replaced, bad options are a problem+json 422."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from jobq.client import Client
from tests.api.support import assert_problem, claim, error_fields, http

__all__ = ["http"]  # the fixture, imported for pytest


def body(n: int, key: str = "k", delay: float = 60, **fields: Any) -> dict[str, Any]:
    return {
        "kind": "script",
        "payload": {"result": n},
        "debounce": {"key": key, "delay_seconds": delay},
        **fields,
    }


async def test_ten_posts_make_one_job_with_the_last_payload(
    http: httpx.AsyncClient, client: Client
) -> None:
    answers = [await http.post("/v1/jobs", json=body(n)) for n in range(10)]
    assert [a.status_code for a in answers] == [201] + [200] * 9, answers[-1].text
    assert "jobq-replaced" not in answers[0].headers
    assert all(a.headers["jobq-replaced"] == "true" for a in answers[1:])
    assert len({a.json()["id"] for a in answers}) == 1
    assert answers[-1].json()["payload"] == {"result": 9}
    assert answers[-1].headers["location"].endswith(answers[0].json()["id"])
    listed = await http.get("/v1/jobs")
    assert [j["payload"] for j in listed.json()["jobs"]] == [{"result": 9}]


async def test_64_concurrent_posts_make_one_job(http: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(*(http.post("/v1/jobs", json=body(n)) for n in range(64)))
    assert sorted(a.status_code for a in answers) == [200] * 63 + [201]
    assert len({a.json()["id"] for a in answers}) == 1


async def test_a_batch_of_ten_makes_one_job_and_lists_the_replaced(
    http: httpx.AsyncClient,
) -> None:
    items = [body(n) for n in range(10)] + [{"kind": "script"}]
    answer = await http.post("/v1/jobs/batch", json={"jobs": items})
    assert answer.status_code == 201, answer.text
    result = answer.json()
    assert result["replaced"] == list(range(1, 10))
    assert result["duplicates"] == []
    assert len({j["id"] for j in result["jobs"][:10]}) == 1
    assert result["jobs"][0]["payload"] == {"result": 9}
    again = await http.post("/v1/jobs/batch", json={"jobs": [body(10)]})
    assert again.json()["replaced"] == [0]
    assert again.json()["jobs"][0]["id"] == result["jobs"][0]["id"]


async def test_a_running_job_is_not_replaced(http: httpx.AsyncClient, client: Client) -> None:
    first = await http.post("/v1/jobs", json=body(1, delay=0.05))
    await claim(client, uuid.UUID(first.json()["id"]))
    second = await http.post("/v1/jobs", json=body(2, delay=0.05))
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first.json()["id"]
    running = await http.get(f"/v1/jobs/{first.json()['id']}")
    assert running.json()["status"] == "running"
    assert running.json()["payload"] == {"result": 1}


async def test_an_idempotent_replay_is_not_a_replacement(http: httpx.AsyncClient) -> None:
    first = await http.post("/v1/jobs", json=body(1), headers={"Idempotency-Key": "r-1"})
    again = await http.post("/v1/jobs", json=body(1), headers={"Idempotency-Key": "r-1"})
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert "jobq-replaced" not in again.headers
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    ("debounce", "field"),
    [
        ({"delay_seconds": 0}, "debounce.DebounceOpts.delay_seconds"),
        ({"delay_seconds": 604801}, "debounce.DebounceOpts.delay_seconds"),
        ({"delay_seconds": 1, "key": "k" * 256}, "debounce.DebounceOpts.key"),
        ({"delay_seconds": 1, "key": 7}, "debounce.DebounceOpts.key"),
        ({"delay_seconds": 1, "key": "a\u0000"}, "debounce.DebounceOpts.key"),
        ({"delay_seconds": 1, "colour": "red"}, "debounce.DebounceOpts.colour"),
        ({"key": "k"}, "debounce.DebounceOpts.delay_seconds"),
    ],
)
async def test_bad_debounce_options_are_a_problem(
    http: httpx.AsyncClient, debounce: dict[str, Any], field: str
) -> None:
    answer = await http.post("/v1/jobs", json={"kind": "script", "debounce": debounce})
    assert_problem(answer, 422)
    assert field in error_fields(answer.json())


@pytest.mark.parametrize("extra", [{"run_at": "2030-01-01T00:00:00Z"}, {"unique": True}])
async def test_debounce_with_what_it_cannot_go_with_is_a_problem(
    http: httpx.AsyncClient, extra: dict[str, Any]
) -> None:
    answer = await http.post("/v1/jobs", json=body(1, **extra))
    assert_problem(answer, 422)
    assert "debounce" in error_fields(answer.json())
    batch = await http.post("/v1/jobs/batch", json={"jobs": [{"kind": "script"}, body(1, **extra)]})
    assert_problem(batch, 422)
    assert "jobs.1.debounce" in error_fields(batch.json())
