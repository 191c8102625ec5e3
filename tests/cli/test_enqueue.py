"""`jobq enqueue` (one job, stdin, --count with a progress bar, --jsonl) and `jobq get`."""

from __future__ import annotations

import pytest

from jobq import Settings
from jobq.client import Client
from tests.cli.run import cli_env, ids, jobq, ok
from tests.support import insert_job


async def test_enqueue_prints_the_id_and_get_shows_the_job(
    client: Client, settings: Settings
) -> None:
    run = await ok(
        settings,
        "enqueue",
        "noop",
        '{"to": "a@example.com"}',
        "--queue",
        "emails",
        "--priority",
        "5",
        "--max-attempts",
        "2",
        "--run-at",
        "2030-01-01T00:00:00+02:00",
    )
    (job_id,) = ids(run.out)
    job = await client.get(job_id)
    assert (job.kind, job.queue, job.priority, job.max_attempts) == ("noop", "emails", 5, 2)
    assert job.payload == {"to": "a@example.com"}

    shown = await ok(settings, "get", str(job_id))
    for text in (str(job_id), "emails", "queued", "a@example.com", "no attempts yet"):
        assert text in shown.out
    as_json = (await ok(settings, "get", str(job_id), "--json")).json()
    assert as_json == {**job.to_dict(), "attempt_history": []}
    assert as_json["run_at"] == "2029-12-31T22:00:00Z"


async def test_get_lists_the_attempts(client: Client, settings: Settings) -> None:
    job_id = await insert_job(client, status="running", attempts=1, locked_by="w-cli-1")
    await client.pool.execute(
        f"""INSERT INTO "{settings.schema}".job_attempts
            (job_id, seq, worker_id, started_at, finished_at, outcome, error)
            VALUES ($1, 1, 'w-cli-0', now() - interval '1 minute', now(), 'failed',
                    'SMTP 451: try later')""",
        job_id,
    )
    shown = await ok(settings, "get", str(job_id))
    assert "attempts" in shown.out and "w-cli-0" in shown.out
    assert "SMTP 451: try later" in shown.out and "failed" in shown.out


async def test_enqueue_reads_the_payload_from_stdin(client: Client, settings: Settings) -> None:
    run = await ok(settings, "enqueue", "noop", "-", stdin='{\n  "n": 1\n}\n')
    (job_id,) = ids(run.out)
    assert (await client.get(job_id)).payload == {"n": 1}


async def test_enqueue_json_and_idempotency_replay(client: Client, settings: Settings) -> None:
    args = ["enqueue", "noop", '{"n": 1}', "--idempotency-key", "order-17", "--json"]
    first = (await ok(settings, *args)).json()
    again = (await ok(settings, *args)).json()
    assert first["replayed"] is False and again["replayed"] is True
    assert first["id"] == again["id"] and first["idempotency_key"] == "order-17"

    other = await jobq(settings, "enqueue", "noop", '{"n": 2}', "--idempotency-key", "order-17")
    assert other.code == 4, other
    assert "order-17" in other.error_line


async def test_enqueue_count_shows_progress_and_prints_every_id(
    client: Client, settings: Settings
) -> None:
    # FORCE_COLOR makes rich treat stderr as a terminal, where the bar shows.
    env = cli_env(settings, FORCE_COLOR="1")
    env.pop("NO_COLOR")
    run = await jobq(settings, "enqueue", "noop", '{"k": 1}', "--count", "1200", env=env)
    assert run.code == 0, run.err
    job_ids = ids(run.out)
    assert len(job_ids) == len(set(job_ids)) == 1200
    assert "/1200" in run.err  # the progress bar's "done/total"
    assert "enqueued 1200 noop jobs" in run.err
    (queue,) = await client.queues()
    assert queue.counts["queued"] == 1200


async def test_enqueue_jsonl_makes_one_job_per_line(client: Client, settings: Settings) -> None:
    lines = '{"n": 1}\n\n{"n": 2}\n{"n": 3}\n'
    run = await ok(settings, "enqueue", "noop", "--jsonl", "--json", "--queue", "bulk", stdin=lines)
    jobs = run.json()["jobs"]
    assert [j["payload"] for j in jobs] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert {j["queue"] for j in jobs} == {"bulk"}
    assert "enqueued 3 noop jobs" in run.err


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["noop", "{bad"], None, "not valid JSON"),
        (["noop", "[1, 2]"], None, "JSON array, not an object"),
        (["nosuch"], None, "unknown kind 'nosuch'; known kinds: "),
        (["noop", "--priority", "99999"], None, "priority"),
        (["noop", "--run-at", "tomorrow"], None, "run_at"),
        (["noop", "--queue", "Not A Queue"], None, "queue"),
        (["noop", "-"], "not json", "stdin is not valid JSON"),
        (["noop", "--jsonl"], '{"n": 1}\n{"n": \n', "stdin line 2 is not valid JSON"),
        (["noop", "--jsonl"], "", "stdin holds no payload"),
        (["noop", "--jsonl", "--count", "2"], "{}\n", "do not mix"),
        (["noop", "--count", "2", "--idempotency-key", "k"], None, "--idempotency-key"),
    ],
)
async def test_an_invalid_payload_or_request_is_one_line_and_exit_2(
    client: Client, settings: Settings, args: list[str], stdin: str | None, message: str
) -> None:
    run = await jobq(settings, "enqueue", *args, stdin=stdin)
    assert run.code == 2, run
    assert message in run.error_line
    assert run.out == ""
    assert await client.queues() == []  # nothing was enqueued, not even the good lines
