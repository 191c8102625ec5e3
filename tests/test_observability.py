"""Logs and readiness (issue 5): JSON log lines, /readyz following the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from jobq import App, Settings
from jobq.logs import JOB_FIELDS


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "JOBQ_SCHEMA": settings.schema,
    }
    return subprocess.run(
        [sys.executable, "-m", "jobq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_json_log_lines_parse_and_carry_the_job_fields(settings: Settings) -> None:
    from tests.conftest import drop_schema

    try:
        made = _run(
            settings,
            "enqueue",
            "sleep",
            '{"seconds": 0, "fail_attempts": 1}',
            "--max-attempts",
            "1",
        )
        assert made.returncode == 0, made.stderr
        ran = _run(settings, "worker", "--burst", "--log-format", "json")
        assert ran.returncode == 0, ran.stderr
        lines = [json.loads(line) for line in ran.stderr.splitlines() if line.strip()]
        assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
        job_lines = [line for line in lines if "job_id" in line]
        assert job_lines, ran.stderr
        failed = next(line for line in job_lines if "failed" in line["msg"])
        assert set(JOB_FIELDS) - {"traceparent"} <= set(failed)
        assert failed["job_id"] == made.stdout.strip()
        assert failed["kind"] == "sleep" and failed["queue"] == "default"
        assert failed["attempt"] == 1
    finally:
        import asyncio

        asyncio.run(drop_schema(settings.database_url or "", settings.schema))


async def test_readyz_follows_a_private_database_down_and_back(embedded_home: Path) -> None:
    """A PostgreSQL of the test's own (embedded, in a temporary folder), never the
    shared server: stop it, /readyz is 503; start it, /readyz is 200 again."""
    from jobq.api import create_app
    from jobq.db import embedded
    from tests.support import wait_for

    home = embedded_home
    url = embedded.start(home)
    app = App(Settings(database_url=url))
    try:
        client = await app.client()
        api = create_app(app, client=client)
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/readyz")).status_code == 200
            embedded.stop(home)

            async def not_ready() -> bool:
                # /readyz answers from a cache of READY_CACHE_SECONDS.
                return (await http.get("/readyz")).status_code == 503

            await wait_for(not_ready, timeout=10, interval=0.1)
            down = await http.get("/readyz")
            assert down.headers["content-type"].startswith("application/problem+json")
            assert (await http.get("/healthz")).status_code == 200
            embedded.start(home)

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await wait_for(ready, timeout=30, interval=0.1)
    finally:
        await app.close()
        embedded.stop(home)
