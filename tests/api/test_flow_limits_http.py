"""Flow limits over HTTP: PUT, GET with use, DELETE, and problem+json for bad input."""

from __future__ import annotations

import httpx

from jobq import JobRequest
from jobq.client import Client
from tests.api.support import http
from tests.support import held_back_scene

__all__ = ["http"]  # the fixture, imported for pytest


async def test_a_limit_is_put_listed_with_its_use_and_deleted(
    http: httpx.AsyncClient, client: Client
) -> None:
    await client.enqueue_many([JobRequest(kind="script", concurrency_key="t:1")] * 2)
    put = await http.put("/v1/limits/tenants", json={"key_pattern": "t:%", "max_running": 3})
    assert put.status_code == 200, put.text
    assert put.json()["waiting"] == 2 and put.json()["max_running"] == 3
    listed = (await http.get("/v1/limits")).json()["limits"]
    assert [lim["name"] for lim in listed] == ["tenants"]
    assert (await http.delete("/v1/limits/tenants")).status_code == 204
    missing = await http.delete("/v1/limits/tenants")
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:jobq:problem:limit-not-found"


async def test_bad_limits_are_problems(http: httpx.AsyncClient) -> None:
    for body in ({}, {"rate": 5}, {"max_running": 0}, {"max_running": 1, "extra": 1}):
        answer = await http.put("/v1/limits/x", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
    bad_name = await http.put("/v1/limits/Bad%20Name", json={"max_running": 1})
    assert bad_name.status_code == 422


async def test_the_jobs_each_kind_of_bound_holds_back(
    http: httpx.AsyncClient, client: Client
) -> None:
    await held_back_scene(client)
    listed = {u["name"]: u for u in (await http.get("/v1/limits")).json()["limits"]}
    # t:1 has no room (3 held), t:2 room for one of its two (1 held).
    assert listed["tenants"]["waiting"] == 5
    assert listed["tenants"]["held_by_concurrency"] == 4
    assert listed["tenants"]["held_by_rate"] == 0
    # The window is full: every runnable job of the queue waits for a start.
    assert listed["paced"]["recent_starts"] == 2
    assert listed["paced"]["held_by_rate"] == 6
    assert listed["paced"]["held_by_concurrency"] == 0


async def test_each_queue_names_the_limits_that_count_its_jobs(
    http: httpx.AsyncClient, client: Client
) -> None:
    await client.enqueue_many([JobRequest(kind="script"), JobRequest(kind="script", queue="mail")])
    assert all(q["limits"] == [] for q in (await http.get("/v1/queues")).json()["queues"])
    await http.put("/v1/limits/everywhere", json={"max_running": 5})
    await http.put("/v1/limits/mail-rate", json={"queue": "mail", "rate": 2, "period_seconds": 1})
    queues = {q["name"]: q for q in (await http.get("/v1/queues")).json()["queues"]}
    assert queues["default"]["limits"] == ["everywhere"]
    assert queues["mail"]["limits"] == ["everywhere", "mail-rate"]
