"""GET /v1/stats/throughput: the charts' buckets, from jobs finished through the real
finish statement and rolled up by jobq.db.stats; bad parameters are problems."""

from __future__ import annotations

from datetime import datetime

import httpx

from jobq import Failed, Succeeded
from jobq.client import Client
from tests.api.support import assert_problem, claim, error_fields, fail_permanently, finish, http
from tests.support import insert_job, roll_up

__all__ = ["http"]  # the fixture, imported for pytest


async def finish_some(client: Client) -> None:
    """Queue a: 2 succeeded, 1 retried; queue b: 1 failed for good (3 attempts: 2
    retried), 1 cancelled while running, 1 cancelled while queued."""
    for _ in range(2):
        job = await insert_job(client, queue="a")
        await claim(client, job)
        await finish(client, job, Succeeded(None))
    job = await insert_job(client, queue="a")
    await claim(client, job)
    await finish(client, job, Failed("once"))  # retrying, due at once: left claimable
    await claim(client, job)
    await finish(client, job, Succeeded(None))  # the third success
    await fail_permanently(client, await insert_job(client, queue="b", max_attempts=3))
    job = await insert_job(client, queue="b")
    await claim(client, job)
    await client.cancel(job)  # requested; the attempt's failure then ends it cancelled
    await finish(client, job, Failed("stopped"))
    await client.cancel(await insert_job(client, queue="b"))


async def test_throughput_counts_what_the_finish_statement_wrote(
    http: httpx.AsyncClient, client: Client
) -> None:
    await finish_some(client)
    # Count the current minute at once (settled a minute early), as a leader
    # would a quarter of a minute after it ends.
    await roll_up(client, settle_seconds=-60)

    body = (await http.get("/v1/stats/throughput")).json()
    assert (body["window"], body["queue"], body["bucket_seconds"]) == ("1h", None, 60)
    assert len(body["buckets"]) == 60
    total = {
        name: sum(b[name] or 0 for b in body["buckets"])
        for name in ("succeeded", "retried", "failed_permanent", "cancelled")
    }
    assert total == {"succeeded": 3, "retried": 3, "failed_permanent": 1, "cancelled": 2}
    assert datetime.fromisoformat(body["end"]) > datetime.fromisoformat(body["start"])

    only_a = (await http.get("/v1/stats/throughput", params={"queue": "a"})).json()
    assert sum(b["succeeded"] or 0 for b in only_a["buckets"]) == 3
    assert sum(b["cancelled"] or 0 for b in only_a["buckets"]) == 0

    day = (await http.get("/v1/stats/throughput", params={"window": "24h"})).json()
    assert (len(day["buckets"]), day["bucket_seconds"]) == (96, 900)
    assert sum(b["retried"] or 0 for b in day["buckets"]) == 3


async def test_throughput_before_any_rollup_is_all_null(http: httpx.AsyncClient) -> None:
    body = (await http.get("/v1/stats/throughput", params={"queue": "nothing-here"})).json()
    assert body["counted_through"] is None
    assert {b["succeeded"] for b in body["buckets"]} == {None}
    assert {b["waiting"] for b in body["buckets"]} == {None}


async def test_bad_parameters_are_problems(http: httpx.AsyncClient) -> None:
    for params, field in (
        ({"window": "2h"}, "window"),
        ({"queue": "Not A Queue"}, "queue"),
        ({"windw": "1h"}, "windw"),
    ):
        response = await http.get("/v1/stats/throughput", params=params)
        body = assert_problem(response, 422)
        assert any(field in f for f in error_fields(body)), body


async def test_throughput_is_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    operation = document["paths"]["/v1/stats/throughput"]["get"]
    assert operation["tags"] == ["stats"]
    assert "ThroughputOut" in document["components"]["schemas"]
