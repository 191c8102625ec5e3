"""examples/django_project runs as its README says, on this test's database and schema."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import drop_schema

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "django_project"


def _readme_commands() -> list[str]:
    [block] = re.findall(r"```sh\n(.*?)```", (EXAMPLE / "README.md").read_text(), re.S)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def test_the_django_example_runs_as_its_readme_says(database_url: str, schema: str) -> None:
    install, run = _readme_commands()
    # The install step is the suite's own (the dev extra holds jobq[django] and psycopg).
    assert install == "pip install -r requirements.txt"
    assert run == "python manage.py demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOBQ_", "DJANGO_"))}
    env.update(DATABASE_URL=database_url, JOBQ_SCHEMA=schema, DJANGO_SCHEMA=schema)
    asyncio.run(_fetch(database_url, f'CREATE SCHEMA "{schema}"'))
    try:
        done = subprocess.run(
            [sys.executable, *run.split()[1:]],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "declined order: HTTP 500" in done.stdout
        assert "receipt_sent=True" in done.stdout
        assert "revenue task: SUCCESSFUL -> 42.00 EUR" in done.stdout
        jobs = asyncio.run(
            _fetch(database_url, f'SELECT kind, status FROM "{schema}".jobs ORDER BY id')
        )
        assert [(j["kind"], j["status"]) for j in jobs] == [
            ("orders.send_receipt", "succeeded"),  # the declined order's job never was
            ("django.task", "succeeded"),
        ]
        orders = asyncio.run(_fetch(database_url, f'SELECT email FROM "{schema}".orders_order'))
        assert [o["email"] for o in orders] == ["ada@example.com"]
    finally:
        asyncio.run(drop_schema(database_url, schema))
