"""Embedding jobq in an application: a shop that sends a receipt and renders an
invoice for each order, enqueued in the same transaction as the order itself.

    cd examples/shop
    python shop.py                        # set up, then place two orders:
                                          #   one rolled back (no order, no job),
                                          #   one committed (the order and its 2 jobs)
    jobq worker --app shop:app --burst    # run the jobs, then exit
    python shop.py --show                 # the orders, with their receipts

With no DATABASE_URL, jobq starts its embedded PostgreSQL in your data directory
(JOBQ_HOME; ~/.local/share/jobq on Linux), the one `jobq serve` uses; the
shop's own table lives beside jobq's, in the schema SHOP_SCHEMA (default
`shop`). Invoices are written to SHOP_INVOICE_DIR (default ./invoices).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import asyncpg

import jobq

app = jobq.App()

SCHEMA = os.environ.get("SHOP_SCHEMA", "shop")
INVOICE_DIR = Path(os.environ.get("SHOP_INVOICE_DIR", "invoices"))


@app.task("send_receipt")
async def send_receipt(ctx: jobq.JobContext, payload: dict[str, Any]) -> None:
    """Async: uses jobq's pool (ctx.pool) to record that the receipt went out."""
    assert ctx.pool is not None
    await ctx.pool.execute(
        f"UPDATE {SCHEMA}.orders SET receipt_sent_at = now() WHERE id = $1",
        payload["order_id"],
    )


@app.task("render_invoice", max_attempts=3)
def render_invoice(ctx: jobq.JobContext, payload: dict[str, Any]) -> None:
    """Sync: runs in a thread, so blocking work (files, CPU, old libraries) is fine."""
    INVOICE_DIR.mkdir(parents=True, exist_ok=True)
    cents = payload["total_cents"]
    text = f"Invoice for order {payload['order_id']}\n{payload['email']}: {cents / 100:.2f} EUR\n"
    (INVOICE_DIR / f"order-{payload['order_id']}.txt").write_text(text)


async def setup(conn: asyncpg.Connection) -> None:
    await conn.execute(
        f"""CREATE SCHEMA IF NOT EXISTS {SCHEMA};
            CREATE TABLE IF NOT EXISTS {SCHEMA}.orders (
                id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                email            text NOT NULL,
                total_cents      integer NOT NULL,
                receipt_sent_at  timestamptz
            )"""
    )


async def place_order(conn: asyncpg.Connection, email: str, total_cents: int) -> int:
    """Insert an order and enqueue its jobs on the caller's connection: they commit
    or roll back together with the caller's transaction."""
    order_id: int = await conn.fetchval(
        f"INSERT INTO {SCHEMA}.orders (email, total_cents) VALUES ($1, $2) RETURNING id",
        email,
        total_cents,
    )
    order = {"order_id": order_id, "email": email, "total_cents": total_cents}
    await app.enqueue(
        "send_receipt",
        {"order_id": order_id},
        idempotency_key=f"receipt-{order_id}",
        connection=conn,
    )
    await app.enqueue("render_invoice", order, connection=conn)
    return order_id


class PaymentDeclined(Exception):
    pass


async def main(show: bool) -> None:
    client = await app.client()  # jobq's own pool; applies its migrations
    conn = await asyncpg.connect(client.url)  # the application's own connection
    try:
        await setup(conn)
        if show:
            for row in await conn.fetch(f"SELECT * FROM {SCHEMA}.orders ORDER BY id"):
                print(dict(row))
            return
        try:
            async with conn.transaction():
                await place_order(conn, "declined@example.com", 999)
                raise PaymentDeclined("card declined")
        except PaymentDeclined:
            print("order rolled back: neither the order nor its jobs exist")
        async with conn.transaction():
            order_id = await place_order(conn, "ada@example.com", 4200)
        print(f"order {order_id} committed with its jobs; run: jobq worker --app shop:app --burst")
    finally:
        await conn.close()
        await app.close()


if __name__ == "__main__":
    asyncio.run(main(show="--show" in sys.argv[1:]))
