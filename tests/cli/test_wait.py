"""`jobq enqueue --wait` and `jobq get --wait`: the result printed, and exit codes 5
(failed_permanent), 6 (cancelled) and 7 (timed out). The jobs run on a worker in
the test's process (the `script` kind of tests.support, which returns
payload["result"])."""

from __future__ import annotations

import asyncio
import json

from jobq import App, JobContext, Settings
from jobq.client import Client
from tests.cli.run import jobq, ok
from tests.support import insert_job
from tests.worker.support import running

# The CLI process only enqueues: it needs the kind registered, not its handler.
cli_app = App()


@cli_app.task("script")
async def _script(ctx: JobContext, payload: dict[str, object]) -> None:
    raise AssertionError("runs in the test's worker, not in the CLI")


APP = "tests.cli.test_wait:cli_app"


async def test_enqueue_wait_prints_the_result(app: App, client: Client, settings: Settings) -> None:
    result = {"total": 3, "items": ["a", "b"]}
    payload = json.dumps({"result": result})
    async with running(app, client):
        run = await ok(settings, "enqueue", "script", payload, "--app", APP, "--wait")
        assert json.loads(run.out) == result
        as_json = await ok(settings, "enqueue", "script", payload, "--app", APP, "--wait", "--json")
    job = as_json.json()
    assert job["status"] == "succeeded" and job["result"] == result
    got = await ok(settings, "get", job["id"], "--wait", "--json")
    assert got.json()["result"] == result
    shown = await ok(settings, "get", job["id"])
    assert "result" in shown.out and '"total": 3' in shown.out


async def test_enqueue_wait_of_a_failing_job_exits_5(
    app: App, client: Client, settings: Settings
) -> None:
    payload = json.dumps({"action": "fail", "message": "nope"})
    async with running(app, client):
        run = await jobq(
            settings, "enqueue", "script", payload, "--app", APP, "--max-attempts", "1", "--wait"
        )
    assert run.code == 5, run
    assert run.out == ""
    assert "ended failed_permanent: RuntimeError: nope" in run.err


async def test_get_wait_times_out_with_7_and_a_cancelled_job_exits_6(
    client: Client, settings: Settings
) -> None:
    queued = await insert_job(client)
    timed_out = await jobq(settings, "get", str(queued), "--wait", "--wait-timeout", "0.2")
    assert timed_out.code == 7, timed_out
    assert "queued" in timed_out.out  # the job as it stands
    assert f"job {queued} is still queued: the wait timed out" in timed_out.err
    waiting = asyncio.create_task(jobq(settings, "get", str(queued), "--wait", "--json"))
    # Before or after the CLI starts waiting, the answer is the same: the CLI reads
    # the job only once it listens, so a cancel at any moment ends its wait.
    await client.cancel(queued)
    cancelled = await waiting
    assert cancelled.code == 6, cancelled
    assert cancelled.json()["status"] == "cancelled"


async def test_wait_flags_that_do_not_fit_are_usage_errors(
    client: Client, settings: Settings
) -> None:
    many = await jobq(settings, "enqueue", "noop", "--count", "2", "--wait")
    assert many.code == 2 and "--wait waits for one job" in many.error_line
    alone = await jobq(settings, "enqueue", "noop", "--wait-timeout", "3")
    assert alone.code == 2 and "--wait-timeout goes with --wait" in alone.error_line
    job = await insert_job(client)
    lone = await jobq(settings, "get", str(job), "--wait-timeout", "3")
    assert lone.code == 2 and "--wait-timeout goes with --wait" in lone.error_line
