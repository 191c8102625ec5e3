"""The real `jobq` command (a subprocess: python -m jobq) against the test's schema.

Output, --json and the documented exit codes: 0 ok, 1 error, 2 usage (bad flag,
id or payload), 3 not found, 4 conflict. Every error is one `error:` line on
stderr, never a traceback. Enqueue uses the demo app's kinds (noop).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobq import Settings
from jobq.client import Client
from tests.support import insert_job

ROOT = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error_line(self) -> str:
        """The one line an error prints (and checks that it is only one)."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("error: "), self.err
        assert "Traceback" not in self.err
        return lines[0]


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    # A fixed, wide, colourless "not a terminal" unless a test asks otherwise.
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        env.pop(name, None)
    env.update(DATABASE_URL=settings.database_url or "", JOBQ_SCHEMA=settings.schema, NO_COLOR="1")
    env.update(extra)
    return env


async def jobq(
    settings: Settings, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Run:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobq",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=env or cli_env(settings),
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), COMMAND_TIMEOUT
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def ok(settings: Settings, *args: str, stdin: str | None = None) -> Run:
    run = await jobq(settings, *args, stdin=stdin)
    assert run.code == 0, run
    assert "Traceback" not in run.err
    return run


def ids(text: str) -> list[uuid.UUID]:
    return [uuid.UUID(line) for line in text.split()]


# --- help ---------------------------------------------------------------------

COMMANDS = [
    ["serve"],
    ["worker"],
    ["migrate"],
    ["enqueue"],
    ["get"],
    ["list"],
    ["cancel"],
    ["retry"],
    ["queues"],
    ["workers"],
    ["pause"],
    ["resume"],
    ["db", "status"],
    ["db", "url"],
    ["db", "stop"],
]


def flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example_and_the_exit_codes(command: list[str]) -> None:
    # In process (typer's runner) to keep it fast; the real command is run below.
    from typer.testing import CliRunner

    from jobq.cli import cli

    result = CliRunner().invoke(cli, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "Example:" in text
    assert "Exit codes: 0 ok, 1 error, 2 usage" in text and "4 conflict" in text


async def test_the_real_command_shows_help(settings: Settings) -> None:
    top, enqueue = await asyncio.gather(ok(settings, "--help"), ok(settings, "enqueue", "--help"))
    for name in ("serve", "enqueue", "list", "queues", "pause", "db"):
        assert name in top.out
    assert "Exit codes: 0 ok, 1 error, 2 usage" in flat(top.out)
    text = flat(enqueue.out)
    for flag in ("--queue", "--priority", "--run-at", "--max-attempts", "--idempotency-key"):
        assert flag in text
    assert "--count" in text and "--jsonl" in text and "Example: jobq enqueue" in text
    no_args = await jobq(settings)
    assert no_args.code in (0, 2) and "Usage" in no_args.out + no_args.err


# --- ids, not found, conflicts --------------------------------------------------------


@pytest.mark.parametrize("command", ["get", "cancel", "retry"])
async def test_bad_id_is_2_and_unknown_id_is_3(
    client: Client, settings: Settings, command: str
) -> None:
    bad = await jobq(settings, command, "not-a-uuid")
    assert bad.code == 2, bad
    assert "'not-a-uuid' is not a job id" in bad.error_line
    missing_id = uuid.uuid4()
    missing = await jobq(settings, command, str(missing_id))
    assert missing.code == 3, missing
    assert f"no job with id {missing_id}" in missing.error_line


async def test_cancel_and_retry(client: Client, settings: Settings) -> None:
    queued = await insert_job(client)
    cancelled = await ok(settings, "cancel", str(queued))
    assert cancelled.out.strip() == f"job {queued} is cancelled"
    retried = (await ok(settings, "retry", str(queued), "--json")).json()
    assert retried["status"] == "queued" and retried["id"] == str(queued)

    running = await insert_job(client, status="running", attempts=1, locked_by="w1")
    asked = await ok(settings, "cancel", str(running))
    assert "cancel requested" in asked.out and "running" in asked.out
    as_json = (await ok(settings, "cancel", str(running), "--json")).json()
    assert as_json["status"] == "running" and as_json["cancel_requested"] is True


async def test_state_conflicts_exit_4(client: Client, settings: Settings) -> None:
    done = await insert_job(client, status="succeeded", finished_offset_s=0)
    run = await jobq(settings, "cancel", str(done))
    assert run.code == 4, run
    assert "succeeded" in run.error_line
    queued = await insert_job(client)
    run = await jobq(settings, "retry", str(queued))
    assert run.code == 4, run
    assert "only failed_permanent or cancelled jobs can be retried" in run.error_line


# --- the database and settings -----------------------------------------------------------------


async def test_an_unreachable_database_is_one_clear_line_and_exit_1(settings: Settings) -> None:
    run = await jobq(settings, "list", "--database-url", "postgresql://postgres@127.0.0.1:1/x")
    assert run.code == 1, run
    line = run.error_line
    assert "cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:1/x" in line
    assert "DATABASE_URL" in line


async def test_a_bad_setting_names_the_variable_and_exits_2(settings: Settings) -> None:
    env = cli_env(settings, JOBQ_LEASE_SECONDS="soon")
    bad_lease, bad_url = await asyncio.gather(
        jobq(settings, "queues", env=env),
        jobq(settings, "queues", "--database-url", "not-a-url"),
    )
    assert bad_lease.code == 2, bad_lease
    assert "JOBQ_LEASE_SECONDS" in bad_lease.error_line
    assert bad_url.code == 2, bad_url
    assert "DATABASE_URL" in bad_url.error_line


async def test_queue_names_with_a_trailing_newline_are_usage_errors(settings: Settings) -> None:
    """re.match with `$` let "default\\n" through to the database (finding 14)."""
    for args in (("pause", "default\n"), ("resume", "default\n"), ("list", "--queue", "q\n")):
        run = await jobq(settings, *args)
        assert run.code == 2, run
        assert "is not a queue name" in run.error_line


def test_worker_metrics_bind_loopback_unless_asked() -> None:
    """Finding 14: /metrics of `jobq worker` was on every interface by default."""
    import typer

    from jobq.cli import cli
    from jobq.worker.options import DEFAULT_METRICS_HOST, WorkerOptions

    command = typer.main.get_command(cli).get_command(None, "worker")  # type: ignore[attr-defined,arg-type]
    assert command is not None
    params = command.make_context("worker", []).params
    assert params["metrics_host"] == DEFAULT_METRICS_HOST == "127.0.0.1"
    assert WorkerOptions().metrics_host == "127.0.0.1"
