"""The embedding example runs as its README says, against this test's schema."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from jobq import JobStatus, Settings
from jobq.client import Client

pytestmark = pytest.mark.slow

SHOP = Path(__file__).resolve().parent.parent / "examples" / "shop"
IMAGE_APP = SHOP.parent / "image_app"


def _run(
    args: list[str], env: dict[str, str], cwd: Path = SHOP
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_shop_example_enqueues_in_its_transaction_and_the_worker_runs_it(
    client: Client, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    shop_schema = f"shop_{settings.schema}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(
        DATABASE_URL=database_url,
        JOBQ_SCHEMA=settings.schema,
        SHOP_SCHEMA=shop_schema,
        SHOP_INVOICE_DIR=str(tmp_path / "invoices"),
    )
    try:
        placed = _run(["shop.py"], env)
        assert placed.returncode == 0, placed.stderr
        assert "rolled back" in placed.stdout
        orders = await client.pool.fetch(f"SELECT id, email FROM {shop_schema}.orders")
        assert [r["email"] for r in orders] == ["ada@example.com"]  # the declined one is gone
        order_id = orders[0]["id"]
        jobs = (await client.list_jobs()).jobs
        assert sorted(j.kind for j in jobs) == ["render_invoice", "send_receipt"]
        assert {j.payload["order_id"] for j in jobs} == {order_id}

        worked = _run(["-m", "jobq", "worker", "--app", "shop:app", "--burst"], env)
        assert worked.returncode == 0, worked.stderr
        assert {(await client.get(j.id)).status for j in jobs} == {JobStatus.SUCCEEDED}
        sent = await client.pool.fetchval(
            f"SELECT receipt_sent_at FROM {shop_schema}.orders WHERE id = $1", order_id
        )
        assert sent is not None
        invoice = tmp_path / "invoices" / f"order-{order_id}.txt"
        assert "ada@example.com: 42.00 EUR" in invoice.read_text()

        shown = _run(["shop.py", "--show"], env)
        assert shown.returncode == 0 and "ada@example.com" in shown.stdout
    finally:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {shop_schema} CASCADE")
        finally:
            await conn.close()


async def test_the_image_app_example_runs_with_jobq_app_as_its_readme_says(
    client: Client, settings: Settings, database_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(DATABASE_URL=database_url, JOBQ_SCHEMA=settings.schema, JOBQ_APP="greeter.tasks:app")
    jobs = []
    for args in (["greet", '{"name": "Ada"}'], ["count_words", '{"text": "one two"}']):
        enqueued = _run(["-m", "jobq", "enqueue", *args], env, IMAGE_APP)
        assert enqueued.returncode == 0, enqueued.stderr
        jobs.append(enqueued.stdout.strip())
    refused = _run(["-m", "jobq", "enqueue", "noop"], env, IMAGE_APP)
    assert refused.returncode == 2 and "set JOBQ_APP or --app" in refused.stderr

    worked = _run(["-m", "jobq", "worker", "--burst"], env, IMAGE_APP)
    assert worked.returncode == 0, worked.stderr
    assert {(await client.get(uuid.UUID(j))).status for j in jobs} == {JobStatus.SUCCEEDED}
