"""JOBQ_APP: the app of `jobq enqueue`, `jobq worker` (and `jobq serve`) without `--app`.

`--app` wins, then JOBQ_APP, then the demo app; the unknown-kind error says
where the kinds come from.
"""

from __future__ import annotations

from pathlib import Path

from jobq import JobStatus, Settings
from jobq.client import Client
from tests.cli.run import cli_env, ids, jobq

APP_MODULE = """
from jobq import App

app = App()


@app.task("shout")
async def shout(ctx, payload):
    if payload["word"] != "hi":
        raise ValueError("unexpected payload")
"""

HINT = "the kinds come from the app: set JOBQ_APP or --app"


def app_env(settings: Settings, folder: Path, ref: str) -> dict[str, str]:
    (folder / "jobq_app_setting_example.py").write_text(APP_MODULE, encoding="utf-8")
    return cli_env(settings, JOBQ_APP=ref, PYTHONPATH=str(folder))


async def test_jobq_app_is_the_app_of_enqueue_and_worker_and_app_wins(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    env = app_env(settings, tmp_path, "jobq_app_setting_example:app")

    shout = await jobq(settings, "enqueue", "shout", '{"word": "hi"}', env=env)
    assert shout.code == 0, shout
    (shout_id,) = ids(shout.out)

    # The demo's kinds are unknown to JOBQ_APP's app: refused, with the hint.
    refused = await jobq(settings, "enqueue", "noop", env=env)
    assert refused.code == 2, refused
    assert "unknown kind 'noop'; known kinds: shout; " + HINT in refused.error_line

    # --app wins over JOBQ_APP.
    demo = await jobq(settings, "enqueue", "noop", "--app", "jobq.demo:app", env=env)
    assert demo.code == 0, demo
    (noop_id,) = ids(demo.out)

    # Two processes: the children get the app from their supervisor.
    worked = await jobq(settings, "worker", "--burst", "--processes", "2", env=env)
    assert worked.code == 0, worked
    assert (await client.get(shout_id)).status is JobStatus.SUCCEEDED
    # A worker of JOBQ_APP's app does not claim the demo's kind: it stays queued, unspent.
    left = await client.get(noop_id)
    assert (left.status, left.attempts) == (JobStatus.QUEUED, 0)


async def test_without_jobq_app_the_demo_app_and_a_hint(client: Client, settings: Settings) -> None:
    run = await jobq(settings, "enqueue", "shout")
    assert run.code == 2, run
    assert "known kinds: " in run.error_line and "noop" in run.error_line
    assert run.error_line.endswith(HINT)
    assert await client.queues() == []


async def test_a_jobq_app_that_is_not_module_attribute_is_one_line_and_exit_2(
    settings: Settings,
) -> None:
    run = await jobq(settings, "worker", "--burst", env=cli_env(settings, JOBQ_APP="myapp"))
    assert run.code == 2, run
    assert "JOBQ_APP: expected module:attribute" in run.error_line
