"""Workflows and batches on a real worker: the diamond, its failure policy, batch callbacks."""

from __future__ import annotations

from typing import Any

import pytest

from jobq import App, JobContext, JobStatus, Settings
from jobq.client import Client
from jobq.errors import InvalidRequestError
from tests.support import wait_for
from tests.worker.support import build_worker_app, running, worker_settings


@pytest.fixture
def settings(database_url: str, schema: str) -> Settings:
    return worker_settings(database_url, schema)


@pytest.fixture
def app(settings: Settings) -> App:
    app = build_worker_app(settings)

    @app.task("join")
    async def join(ctx: JobContext, payload: dict[str, Any]) -> Any:
        """Returns what each dependency returned, by node name, and how it ended."""
        found = await ctx.dependency_results()
        return {
            "results": {name: d.result for name, d in sorted(found.by_name.items())},
            "statuses": {name: d.status.value for name, d in sorted(found.by_name.items())},
        }

    return app


async def execution_count(client: Client, job_id: object) -> int:
    schema = client.settings.schema
    return int(
        await client.pool.fetchval(
            f'SELECT count(*) FROM "{schema}".job_attempts WHERE job_id = $1', job_id
        )
    )


async def test_a_diamond_runs_its_join_once_after_both_branches_with_both_results(
    app: App, client: Client
) -> None:
    submitted = await (
        app.workflow("diamond")
        .add("a", "give", {"value": "A"})
        .add("b", "give", {"value": "B", "seconds": 0.2}, after=["a"])
        .add("c", "give", {"value": "C"}, after=["a"])
        .add("d", "join", after=["b", "c"])
        .submit()
    )
    jobs = submitted.jobs
    assert jobs["a"].status is JobStatus.QUEUED
    assert {jobs[n].status for n in "bcd"} == {JobStatus.PENDING}
    async with running(app, client, concurrency=4):
        d = await app.wait(jobs["d"].id, timeout=20)
    assert d.status is JobStatus.SUCCEEDED
    assert d.result == {
        "results": {"b": "B", "c": "C"},
        "statuses": {"b": "succeeded", "c": "succeeded"},
    }
    b, c = await client.get(jobs["b"].id), await client.get(jobs["c"].id)
    assert b.finished_at is not None and c.finished_at is not None and d.started_at is not None
    assert d.started_at >= max(b.finished_at, c.finished_at)
    assert await execution_count(client, jobs["d"].id) == 1
    detail = await client.workflows.get(submitted.workflow_id)  # type: ignore[arg-type]
    assert detail.workflow.counts == {"succeeded": 4}
    assert {n.name: n.after for n in detail.nodes}["d"] == ["b", "c"]


async def test_a_branch_failing_permanently_cancels_the_join_naming_it(
    app: App, client: Client
) -> None:
    submitted = await (
        app.workflow()
        .add("a", "give", {"value": 1})
        .add("b", "give", {"as": "fail"}, after=["a"], max_attempts=1)
        .add("c", "give", {"value": 3}, after=["a"])
        .add("d", "join", after=["b", "c"])
        .submit()
    )
    jobs = submitted.jobs
    async with running(app, client, concurrency=4):
        d = await app.wait(jobs["d"].id, timeout=20)
        await app.wait(jobs["c"].id, timeout=20)
    assert d.status is JobStatus.CANCELLED
    assert d.last_error == f"dependency {jobs['b'].id} (b) ended failed_permanent"
    assert await execution_count(client, jobs["d"].id) == 0
    assert (await client.get(jobs["c"].id)).status is JobStatus.SUCCEEDED


async def test_cancelling_a_workflow_cancels_every_job_not_ended(app: App, client: Client) -> None:
    submitted = await app.workflow().add("a", "give").add("b", "give", after=["a"]).submit()
    assert submitted.workflow_id is not None
    assert await client.workflows.cancel(submitted.workflow_id) == 2
    detail = await client.workflows.get(submitted.workflow_id)
    assert {n.status for n in detail.nodes} == {JobStatus.CANCELLED}
    assert await client.workflows.cancel(submitted.workflow_id) == 0


async def test_a_batch_runs_on_finish_once_and_on_success_only_if_all_succeeded(
    app: App, client: Client
) -> None:
    good = app.batch("good")
    for i in range(5):
        good.add("give", {"value": i})
    ok = await good.on_finish("join").on_success("join").on_failure("join").submit()
    bad = app.batch("bad").add("give", {"value": 1}).add("give", {"as": "fail"}, max_attempts=1)
    failed = await bad.on_finish("join").on_success("join").on_failure("join").submit()
    async with running(app, client, concurrency=4):
        finish = await app.wait(ok.jobs["on_finish"].id, timeout=20)
        success = await app.wait(ok.jobs["on_success"].id, timeout=20)
        no_failure = await app.wait(ok.jobs["on_failure"].id, timeout=20)
        failed_finish = await app.wait(failed.jobs["on_finish"].id, timeout=20)
        failed_success = await app.wait(failed.jobs["on_success"].id, timeout=20)
        on_failure = await app.wait(failed.jobs["on_failure"].id, timeout=20)
    assert no_failure.status is JobStatus.CANCELLED
    assert no_failure.last_error == "every dependency succeeded (a callback for failures)"
    assert on_failure.status is JobStatus.SUCCEEDED
    assert on_failure.result["statuses"]["member-1"] == "failed_permanent"
    assert finish.status is JobStatus.SUCCEEDED and success.status is JobStatus.SUCCEEDED
    assert finish.result["results"] == {f"member-{i}": i for i in range(5)}
    assert failed_finish.status is JobStatus.SUCCEEDED
    assert failed_finish.result["statuses"] == {
        "member-0": "succeeded",
        "member-1": "failed_permanent",
    }
    assert failed_success.status is JobStatus.CANCELLED
    assert "(member-1) ended failed_permanent" in (failed_success.last_error or "")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda w: w.add("a", "give", after=["b"]).add("b", "give", after=["a"]), "cycle"),
        (lambda w: w.add("a", "give", after=["nope"]), "no node is named 'nope'"),
        (lambda w: w.add("a", "give").add("a", "give"), "is also node 0"),
        (lambda w: w.add("a", "unknown_kind"), "unknown_kind"),
    ],
)
async def test_a_bad_graph_is_refused_and_nothing_is_inserted(
    app: App, client: Client, build: Any, message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        await build(app.workflow()).submit()
    assert (await client.list_jobs()).jobs == []
    await wait_for(lambda: _no_workflows(client))


async def _no_workflows(client: Client) -> bool:
    return await client.workflows.recent() == []
