"""Errors of the long-running commands and names users see (issue 14 #6, #7), through
the real command line: one clear line (or, for an --app that raises, the user's frames)
and the documented exit code."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobq import Settings
from jobq.client import Client
from tests.cli.run import ROOT, cli_env, jobq, ok
from tests.support import insert_job

WAIT_FOR_LINE_SECONDS = 30.0


@pytest.fixture
def bound_port() -> Iterator[int]:
    """A port this test holds: listening, so nothing else can bind it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_serve_on_a_port_in_use_says_so_in_one_line(
    settings: Settings, bound_port: int
) -> None:
    run = await jobq(settings, "serve", "--port", str(bound_port))
    assert run.code == 1, run
    assert run.error_line == (
        f"error: cannot listen on 127.0.0.1:{bound_port}: address already in use (--host, --port)"
    )
    assert "stopping" not in run.err


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "raising_app.py").write_text(
        "import jobq\n\n\ndef load_key():\n    raise ValueError('no API key')\n\n\n"
        "key = load_key()\napp = jobq.App()\n"
    )
    (tmp_path / "good_app.py").write_text("import jobq\n\napp = jobq.App()\nother = 1\n")
    return tmp_path


def _env(settings: Settings, app_dir: Path) -> dict[str, str]:
    return cli_env(settings, PYTHONPATH=str(app_dir))


async def test_an_app_that_raises_on_import_shows_the_users_frames_only(
    settings: Settings, app_dir: Path
) -> None:
    run = await jobq(settings, "worker", "--app", "raising_app:app", env=_env(settings, app_dir))
    assert run.code == 2, run
    lines = run.err.strip().splitlines()
    assert lines[0] == "error: --app raising_app:app: importing it raised ValueError: no API key"
    assert lines[-1] == "ValueError: no API key"
    files = [line for line in lines if line.lstrip().startswith("File ")]
    assert len(files) == 2, run.err  # the module, then load_key
    assert all(str(app_dir / "raising_app.py") in line for line in files), run.err
    assert len(lines) < 12, run.err


async def test_an_app_attribute_that_is_missing_is_named_with_a_close_match(
    settings: Settings, app_dir: Path
) -> None:
    env = _env(settings, app_dir)
    run = await jobq(settings, "worker", "--app", "good_app:ap", env=env)
    assert run.code == 2, run
    assert run.error_line == (
        "error: --app: module good_app has no attribute 'ap' (did you mean good_app:app?)"
    )
    run = await jobq(settings, "worker", "--app", "good_app:other", env=env)
    assert run.code == 2, run
    assert run.error_line == "error: --app: good_app:other is 'int', not a jobq.App"


async def test_a_database_not_there_yet_is_said_to_be_awaited(settings: Settings) -> None:
    with socket.socket() as holder:  # bound, not listening: connections are refused
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        url = f"postgresql://postgres:secret@127.0.0.1:{port}/postgres"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobq",
            "worker",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=cli_env(settings, DATABASE_URL=url),
        )
        assert proc.stderr is not None
        try:
            line = await asyncio.wait_for(proc.stderr.readline(), WAIT_FOR_LINE_SECONDS)
        finally:
            proc.kill()
            await proc.wait()
    text = line.decode()
    assert f"waiting for PostgreSQL at postgresql://postgres:***@127.0.0.1:{port}/postgres" in text
    assert "(up to 10s)" in text
    assert "secret" not in text


async def test_list_takes_the_state_names_other_surfaces_show(
    client: Client, settings: Settings
) -> None:
    """`jobq queues` and the dashboard say "failed" for failed_permanent."""
    failed = await insert_job(client, status="failed_permanent")
    await insert_job(client)
    listed = await ok(settings, "list", "--status", "failed", "--json")
    assert [job["id"] for job in listed.json()["jobs"]] == [str(failed)]
    assert listed.json()["jobs"][0]["status"] == "failed_permanent"  # answers stay canonical
    bad = await jobq(settings, "list", "--status", "broken")
    assert bad.code == 2, bad
    assert bad.error_line == (
        "error: --status: 'broken' is not a state; states: pending, queued, running, retrying, "
        "succeeded, failed_permanent, cancelled, failed"
    )


async def test_validation_messages_carry_no_pydantic_prefix(settings: Settings) -> None:
    run = await jobq(settings, "enqueue", "noop", "--run-at", "2030-01-01T00:00:00")
    assert run.code == 2, run
    assert run.error_line == (
        "error: invalid job request: run_at: must carry a UTC offset (e.g. 2030-01-01T00:00:00Z)"
    )
