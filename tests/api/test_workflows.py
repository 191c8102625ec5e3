"""/v1/workflows and depends_on over HTTP: submit, read, cancel; every refusal a problem."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from jobq.client import Client
from tests.api.support import assert_problem, error_fields, http

__all__ = ["http"]  # the fixture, imported for pytest

DIAMOND: dict[str, Any] = {
    "name": "diamond",
    "nodes": [
        {"name": "a", "kind": "script"},
        {"name": "b", "kind": "script", "after": ["a"]},
        {"name": "c", "kind": "script", "after": ["a"], "on_dependency_failure": "run"},
        {"name": "d", "kind": "noop", "after": ["b", "c"]},
    ],
}


async def test_submit_get_list_and_cancel_a_workflow(
    http: httpx.AsyncClient, client: Client
) -> None:
    created = await http.post("/v1/workflows", json=DIAMOND)
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/v1/workflows/{body['id']}"
    assert body["name"] == "diamond" and body["node_count"] == 4
    assert body["counts"] == {"queued": 1, "pending": 3}
    nodes = {n["name"]: n for n in body["nodes"]}
    assert nodes["d"]["after"] == ["b", "c"] and nodes["a"]["status"] == "queued"
    job = await http.get(f"/v1/jobs/{nodes['b']['job_id']}")
    assert job.json()["status"] == "pending"
    got = await http.get(f"/v1/workflows/{body['id']}")
    assert got.json() == body
    listed = (await http.get("/v1/workflows")).json()["workflows"]
    assert [w["id"] for w in listed] == [body["id"]]
    pending = (await http.get("/v1/jobs", params={"status": "pending"})).json()["jobs"]
    assert len(pending) == 3
    cancelled = await http.post(f"/v1/workflows/{body['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json() == {"count": 4}
    after = (await http.get(f"/v1/workflows/{body['id']}")).json()
    assert after["counts"] == {"cancelled": 4}


@pytest.mark.parametrize(
    ("nodes", "fields", "detail"),
    [
        (
            [
                {"name": "a", "kind": "script", "after": ["b"]},
                {"name": "b", "kind": "script", "after": ["a"]},
            ],
            {"nodes"},
            "cycle",
        ),
        ([{"name": "a", "kind": "script", "after": ["zz"]}], {"nodes.0.after.0"}, "zz"),
        ([{"name": "a", "kind": "script"}, {"name": "a", "kind": "noop"}], {"nodes.1.name"}, ""),
        ([{"name": "a b", "kind": "script"}], {"nodes.0.name"}, ""),
        (
            [{"name": "a", "kind": "script", "depends_on": [str(uuid.UUID(int=1))]}],
            {"nodes.0.depends_on.0"},
            "no job",
        ),
        ([], {"nodes"}, ""),
    ],
)
async def test_a_bad_workflow_is_a_problem_and_inserts_nothing(
    http: httpx.AsyncClient,
    client: Client,
    nodes: list[dict[str, Any]],
    fields: set[str],
    detail: str,
) -> None:
    response = await http.post("/v1/workflows", json={"nodes": nodes})
    body = assert_problem(response, 422)
    assert error_fields(body) == fields, body
    assert detail in body["detail"]
    assert (await client.list_jobs()).jobs == []


async def test_an_unknown_kind_in_a_workflow_is_an_unknown_kind_problem(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/v1/workflows", json={"nodes": [{"name": "a", "kind": "nope"}]})
    body = assert_problem(response, 422, type_="unknown-kind")
    assert error_fields(body) == {"nodes.0.kind"}


async def test_too_many_nodes_is_refused(http: httpx.AsyncClient) -> None:
    nodes = [{"name": f"n{i}", "kind": "noop"} for i in range(10_001)]
    response = await http.post("/v1/workflows", json={"nodes": nodes})
    assert_problem(response, 422)


async def test_an_unknown_workflow_is_a_404_problem(http: httpx.AsyncClient) -> None:
    missing = uuid.UUID(int=5)
    assert_problem(await http.get(f"/v1/workflows/{missing}"), 404, type_="workflow-not-found")
    response = await http.post(f"/v1/workflows/{missing}/cancel")
    assert_problem(response, 404, type_="workflow-not-found")


async def test_depends_on_through_post_jobs_and_the_batch(
    http: httpx.AsyncClient, client: Client
) -> None:
    first = (await http.post("/v1/jobs", json={"kind": "script"})).json()
    waiting = await http.post("/v1/jobs", json={"kind": "noop", "depends_on": [first["id"]]})
    assert waiting.status_code == 201, waiting.text
    assert waiting.json()["status"] == "pending"
    batch = await http.post(
        "/v1/jobs/batch",
        json={"jobs": [{"kind": "noop"}, {"kind": "noop", "depends_on": [first["id"]]}]},
    )
    assert batch.status_code == 201, batch.text
    assert [j["status"] for j in batch.json()["jobs"]] == ["queued", "pending"]
    missing = str(uuid.UUID(int=9))
    bad = await http.post(
        "/v1/jobs/batch", json={"jobs": [{"kind": "noop", "depends_on": [missing]}]}
    )
    assert error_fields(assert_problem(bad, 422)) == {"jobs.0.depends_on.0"}
    bad_policy = await http.post("/v1/jobs", json={"kind": "noop", "on_dependency_failure": "x"})
    assert error_fields(assert_problem(bad_policy, 422)) == {"on_dependency_failure"}
