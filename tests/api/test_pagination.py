"""Keyset pagination: a walk sees every job exactly once while jobs are being added."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from jobq.client import Client
from tests.api.support import http

__all__ = ["http"]  # the fixture, imported for pytest


async def walk(http: httpx.AsyncClient, params: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await http.get("/v1/jobs", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        await asyncio.sleep(0)  # let the writer in between pages


async def test_walk_sees_every_job_once_while_jobs_are_added(
    http: httpx.AsyncClient, client: Client
) -> None:
    batch = [{"kind": "noop", "payload": {"i": i}} for i in range(230)]
    before = (await http.post("/v1/jobs/batch", json={"jobs": batch})).json()["jobs"]
    existing = [job["id"] for job in before]
    stop = asyncio.Event()
    added: list[str] = []

    async def writer() -> None:
        while not stop.is_set():
            response = await http.post("/v1/jobs", json={"kind": "noop"})
            added.append(response.json()["id"])
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        seen = await walk(http, {"limit": 7})
    finally:
        stop.set()
        await task
    assert added, "the writer did not run during the walk"
    assert len(seen) == len(set(seen)), "a job was listed twice"
    assert seen == sorted(seen, reverse=True), "not newest first"
    missing = set(existing) - set(seen)
    assert not missing, f"{len(missing)} jobs present before the walk were skipped"


async def test_walk_with_filters_and_exact_page_multiples(
    http: httpx.AsyncClient, client: Client
) -> None:
    jobs = [{"kind": "noop", "queue": "even" if i % 2 == 0 else "odd"} for i in range(20)]
    await http.post("/v1/jobs/batch", json={"jobs": jobs})
    even = await walk(http, {"queue": "even", "limit": 5})  # 10 jobs: 2 full pages
    assert len(even) == 10
    listed = await walk(http, {"queue": "even", "limit": 500})
    assert listed == even
    assert await walk(http, {"queue": "none"}) == []
