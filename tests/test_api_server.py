"""`jobq.api.server.serve()`: the bind check, and a real process stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from jobq import App, ConfigError, Settings
from jobq.api.server import check_bind, is_loopback, serve
from jobq.client import Client
from tests.api_support import with_tokens
from tests.support import wait_for

ROOT = Path(__file__).resolve().parent.parent

SERVE_SCRIPT = """
import sys
from jobq import Settings
from jobq.api.server import serve
from tests.support import build_test_app

settings = Settings.from_env()
app = build_test_app(settings)
sys.exit(serve(app, settings, port=int(sys.argv[1]), workers=sys.argv[2] == "1", concurrency=2))
"""


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_open_api_is_not_exposed_beyond_loopback(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="--allow-unauthenticated"):
        check_bind("0.0.0.0", 8000, settings, allow_unauthenticated=False)
    check_bind("0.0.0.0", 8000, settings, allow_unauthenticated=True)
    check_bind("0.0.0.0", 8000, with_tokens(settings, t={"read"}), allow_unauthenticated=False)
    check_bind("127.0.0.1", 8000, settings, allow_unauthenticated=False)


def test_serve_refuses_before_starting_anything(app: App, settings: Settings) -> None:
    with pytest.raises(ConfigError, match="JOBQ_API_TOKENS"):
        serve(app, settings, host="0.0.0.0", port=1)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, process: asyncio.subprocess.Process, base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
async def served(
    request: pytest.FixtureRequest, client: Client, settings: Settings, tmp_path: Path
) -> AsyncIterator[Served]:
    """`serve()` in a child process on the test's schema; param: run workers too."""
    workers: bool = getattr(request, "param", False)
    port = unused_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "JOBQ_SCHEMA": settings.schema,
        "JOBQ_SHUTDOWN_GRACE_SECONDS": "1",
        "JOBQ_POLL_INTERVAL_MS": "100",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-c", SERVE_SCRIPT, str(port), "1" if workers else "0"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    result = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        async with httpx.AsyncClient(base_url=result.base_url) as http:

            async def healthy() -> bool:
                assert process.returncode is None, result.output()
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(healthy, timeout=30)
        yield result
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop(served: Served) -> int:
    served.process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(served.process.wait(), 30)


@pytest.mark.slow
async def test_serve_api_only_create_get_cancel_list_then_sigterm(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        created = await http.post("/v1/jobs", json={"kind": "script", "payload": {"n": 1}})
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert (await http.get(location)).json()["status"] == "queued"
        cancelled = await http.post(f"{location}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        listed = (await http.get("/v1/jobs")).json()["jobs"]
        assert [j["id"] for j in listed] == [created.json()["id"]]
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/docs")).status_code == 200
    assert await stop(served) == 0, served.output()


@pytest.mark.slow
@pytest.mark.parametrize("served", [True], indirect=True)
async def test_serve_with_workers_runs_jobs_and_stops_gracefully(
    served: Served, client: Client
) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        done = (await http.post("/v1/jobs", json={"kind": "script"})).json()["id"]
        busy = await http.post("/v1/jobs", json={"kind": "script", "payload": {"action": "sleep"}})
        busy_id = busy.json()["id"]

        async def status(job_id: str) -> str:
            return str((await http.get(f"/v1/jobs/{job_id}")).json()["status"])

        async def finished() -> bool:
            return await status(done) == "succeeded"

        async def running() -> bool:
            return await status(busy_id) == "running"

        await wait_for(finished, timeout=20)
        await wait_for(running, timeout=20)
        workers = (await http.get("/v1/workers")).json()["workers"]
        assert len(workers) == 1
    assert await stop(served) == 0, served.output()
    # No job is left running by a clean stop (SPEC §5).
    assert (await client.get(uuid.UUID(busy_id))).status.value == "queued"
    assert await client.workers() == []
