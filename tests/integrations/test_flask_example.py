"""examples/flask_sqlalchemy runs as its README says: `python app.py`, on this test's schema."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobq import JobStatus, Settings
from jobq.client import Client
from tests.integrations.support import job_count, succeeded
from tests.support import wait_for

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_sqlalchemy"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(client: Client, settings: Settings, database_url: str) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(
        DATABASE_URL=database_url,
        JOBQ_SCHEMA=settings.schema,
        APP_SCHEMA=f"{settings.schema}_app",
        PORT=str(port),
    )
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        print(output)  # shown when the test fails


async def test_the_flask_example_enqueues_in_its_session_and_its_worker_runs_it(
    served: str, client: Client, database_url: str, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=served) as http:

        async def up() -> bool:
            try:
                return (await http.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(up, timeout=30)
        refused = await http.post("/signups", json={"email": "not-an-email"})
        assert refused.status_code == 422
        assert await job_count(client) == 0
        placed = await http.post("/signups", json={"email": "ada@example.com"})
        assert placed.status_code == 201, placed.text
        await succeeded(client, placed.json()["job"])
        job = await client.get(placed.json()["job"])
        assert job.status is JobStatus.SUCCEEDED and job.result == "welcomed ada@example.com"
        shown = (await http.get(f"/signups/{placed.json()['user']}")).json()
        assert shown == {
            "user": placed.json()["user"],
            "email": "ada@example.com",
            "welcomed": True,
        }
    await client.pool.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}_app" CASCADE')
