"""`jobq queues`, `workers`, `pause` and `resume`."""

from __future__ import annotations

from jobq import Settings
from jobq.client import Client
from tests.cli.run import jobq, ok
from tests.support import insert_job


async def test_queues_pause_and_resume(client: Client, settings: Settings) -> None:
    empty = await ok(settings, "queues")
    assert "no queues yet" in empty.out
    await insert_job(client, queue="emails")
    await insert_job(client, queue="emails", status="failed_permanent")

    paused = await ok(settings, "pause", "emails")
    assert paused.out.strip() == "queue emails paused"
    typo = await jobq(settings, "pause", "later")  # no jobs, never paused: a typo?
    assert typo.code == 2, typo
    assert typo.error_line == (
        "error: no queue 'later': it has no jobs and was never paused (jobq queues lists "
        "them); pass --create to pause it before its first job"
    )
    assert "later" not in (await ok(settings, "queues")).out
    created = await ok(settings, "pause", "later", "--create", "--json")
    assert created.json()["paused"] is True
    assert (await ok(settings, "pause", "later")).out.strip() == "queue later paused"

    table = await ok(settings, "queues")
    emails_row = next(line for line in table.out.splitlines() if "emails" in line)
    assert "yes" in emails_row
    assert "failed" in table.out and "oldest runnable" in table.out
    queues = {q["name"]: q for q in (await ok(settings, "queues", "--json")).json()["queues"]}
    assert queues["emails"]["paused"] is True
    assert queues["emails"]["counts"]["queued"] == 1
    assert queues["emails"]["counts"]["failed_permanent"] == 1
    assert queues["emails"]["oldest_runnable_age_seconds"] >= 0
    assert queues["later"]["paused"] is True

    resumed = await ok(settings, "resume", "emails", "--json")
    assert resumed.json()["paused"] is False
    bad = await jobq(settings, "pause", "Not A Queue")
    assert bad.code == 2 and "is not a queue name" in bad.error_line


async def test_workers_when_there_are_none(client: Client, settings: Settings) -> None:
    assert "no live workers" in (await ok(settings, "workers")).out
    assert (await ok(settings, "workers", "--json")).json() == {"workers": []}


async def test_queue_names_with_a_trailing_newline_are_usage_errors(settings: Settings) -> None:
    """re.match with `$` let "default\\n" through to the database (finding 14)."""
    for args in (("pause", "default\n"), ("resume", "default\n"), ("list", "--queue", "q\n")):
        run = await jobq(settings, *args)
        assert run.code == 2, run
        assert "is not a queue name" in run.error_line


async def test_queues_show_the_limits_that_count_their_jobs(
    client: Client, settings: Settings
) -> None:
    from tests.support import held_back_scene

    await insert_job(client, queue="mail")
    await held_back_scene(client)  # tenants (every queue, per key) and paced (default)
    table = (await ok(settings, "queues")).out
    default_row = next(line for line in table.splitlines() if "default" in line)
    mail_row = next(line for line in table.splitlines() if "mail" in line)
    assert "limits" in table
    assert "tenants 1/1 a key, 4 held" in default_row and "paced 2/2 per 60 s, 6 held" in table
    assert "tenants" in mail_row and "paced" not in mail_row
    queues = {q["name"]: q for q in (await ok(settings, "queues", "--json")).json()["queues"]}
    assert queues["default"]["limits"] == ["paced", "tenants"]
    assert queues["mail"]["limits"] == ["tenants"]
