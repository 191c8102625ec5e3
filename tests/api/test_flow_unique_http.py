"""Unique jobs over HTTP: 201 then 200 with `Jobq-Duplicate`, batches list duplicates."""

from __future__ import annotations

import asyncio

import httpx

from jobq.client import Client
from tests.api.support import http

__all__ = ["http"]  # the fixture, imported for pytest


async def test_a_duplicate_answers_200_with_the_holder(http: httpx.AsyncClient) -> None:
    body = {"kind": "script", "payload": {"n": 1}, "unique": {"by_args": ["n"]}}
    first = await http.post("/v1/jobs", json=body)
    assert first.status_code == 201, first.text
    assert "jobq-duplicate" not in first.headers
    again = await http.post("/v1/jobs", json=body)
    assert again.status_code == 200, again.text
    assert again.headers["jobq-duplicate"] == "true"
    assert again.json()["id"] == first.json()["id"]


async def test_64_concurrent_posts_make_one_job(http: httpx.AsyncClient, client: Client) -> None:
    body = {"kind": "script", "unique": True}
    answers = await asyncio.gather(*(http.post("/v1/jobs", json=body) for _ in range(64)))
    assert sorted(a.status_code for a in answers) == [200] * 63 + [201]
    assert len({a.json()["id"] for a in answers}) == 1


async def test_a_batch_lists_its_duplicates(http: httpx.AsyncClient) -> None:
    item = {"kind": "script", "unique": True}
    answer = await http.post("/v1/jobs/batch", json={"jobs": [item, {"kind": "script"}, item]})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["duplicates"] == [2]
    assert body["jobs"][0]["id"] == body["jobs"][2]["id"]


async def test_bad_unique_options_are_a_problem(http: httpx.AsyncClient) -> None:
    answer = await http.post("/v1/jobs", json={"kind": "script", "unique": {"states": ["queued"]}})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
