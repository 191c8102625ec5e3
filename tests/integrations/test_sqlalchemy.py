"""SQLAlchemy 2 as `connection=`: a Flask route with a sync Session, an async FastAPI
route with an AsyncSession (asyncpg and psycopg beneath), in the session's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import flask
import httpx
import pytest
from fastapi import Depends, FastAPI
from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, registry

from jobq import App, IdempotencyConflictError, PayloadTooLargeError, Settings, UnknownKindError
from jobq.client import Client
from jobq.worker.runtime import Worker
from tests.integrations.support import job_count, succeeded


@dataclass
class Order:
    email: str
    id: int | None = None


def sa_url(database_url: str, driver: str) -> str:
    return f"postgresql+{driver}://{database_url.split('://', 1)[1]}"


@pytest.fixture
def orders(settings: Settings) -> Table:
    """An orders table in the test's schema (dropped with it), mapped to Order once."""
    table = Table(
        "orders",
        MetaData(schema=settings.schema),
        Column("id", Integer, primary_key=True),
        Column("email", Text, nullable=False),
    )
    mapper = registry()
    mapper.map_imperatively(Order, table)
    return table


@pytest.fixture
def engine(client: Client, database_url: str, orders: Table) -> Iterator[Engine]:
    engine = create_engine(sa_url(database_url, "psycopg"))
    orders.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _unmap() -> Iterator[None]:
    yield
    from sqlalchemy.orm import clear_mappers

    clear_mappers()


def flask_app(app: App, engine: Engine) -> flask.Flask:
    web = flask.Flask(__name__)

    @web.post("/orders")
    def place() -> Any:
        body = flask.request.get_json()
        with Session(engine) as session:
            order = Order(email=body["email"])
            session.add(order)
            # The session is flushed first: the order has its id for the payload.
            job = app.sync.enqueue("script", {"result": body["email"]}, connection=session)
            order_id = order.id
            assert order_id is not None
            if body.get("decline"):
                session.rollback()
                return {"declined": True}
            session.commit()
        return {"job": str(job.id), "order": order_id}

    return web


async def test_a_flask_route_enqueues_in_its_sqlalchemy_session(
    app: App, client: Client, worker: Worker, engine: Engine, settings: Settings
) -> None:
    web = flask_app(app, engine).test_client()
    assert web.post("/orders", json={"email": "no@example.com", "decline": True}).json == {
        "declined": True
    }
    assert await job_count(client) == 0
    response = web.post("/orders", json={"email": "ada@example.com"})
    placed = response.json
    assert placed is not None, response.text
    job_id = placed["job"]
    await succeeded(client, job_id)
    assert await app.result(job_id, timeout=5) == "ada@example.com"
    rows = await client.pool.fetch(f'SELECT email FROM "{settings.schema}".orders')
    assert [r["email"] for r in rows] == ["ada@example.com"]


async def test_a_sync_sqlalchemy_connection_and_bad_input(
    app: App, client: Client, engine: Engine, settings: Settings
) -> None:
    with engine.connect() as conn:
        with pytest.raises(UnknownKindError):
            app.sync.enqueue("nope", connection=conn)
        with pytest.raises(PayloadTooLargeError):
            app.sync.enqueue("noop", {"x": "y" * settings.max_payload_bytes}, connection=conn)
        job = app.sync.enqueue("noop", connection=conn)
        assert conn.execute(text("SELECT 1")).scalar() == 1
        conn.commit()
    assert (await client.get(job.id)).id == job.id


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_an_async_fastapi_route_enqueues_in_its_async_session(
    app: App,
    client: Client,
    worker: Worker,
    orders: Table,
    database_url: str,
    settings: Settings,
    driver: str,
) -> None:
    engine = create_async_engine(sa_url(database_url, driver))
    async with engine.begin() as conn:
        await conn.run_sync(orders.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def db() -> AsyncIterator[AsyncSession]:
        async with sessions() as session:
            yield session

    api = FastAPI()

    @api.post("/orders")
    async def place(body: dict[str, Any], session: AsyncSession = Depends(db)) -> Any:
        order = Order(email=body["email"])
        session.add(order)
        job = await app.enqueue("script", {"result": body["email"]}, connection=session)
        assert order.id is not None  # flushed before the job row
        if body.get("decline"):
            await session.rollback()
            return {"declined": True}
        await session.commit()
        return {"job": str(job.id)}

    try:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            declined = await http.post("/orders", json={"email": "x", "decline": True})
            assert declined.json() == {"declined": True}
            assert await job_count(client) == 0
            placed = (await http.post("/orders", json={"email": "ada"})).json()
        await succeeded(client, placed["job"])
        rows = await client.pool.fetch(f'SELECT email FROM "{settings.schema}".orders')
        assert [r["email"] for r in rows] == ["ada"]
    finally:
        await engine.dispose()


async def test_idempotency_through_a_session_and_a_clear_error_for_other_objects(
    app: App, client: Client, engine: Engine
) -> None:
    original = await app.enqueue("noop", {"a": 1}, idempotency_key="k")
    with Session(engine) as session:
        again = app.sync.enqueue("noop", {"a": 1}, idempotency_key="k", connection=session)
        assert again.id == original.id
        with pytest.raises(IdempotencyConflictError):
            app.sync.enqueue("noop", {"a": 2}, idempotency_key="k", connection=session)
    with pytest.raises(TypeError, match="connection= takes"):
        app.sync.enqueue("noop", connection=object())
    async with client.pool.acquire() as conn:
        with pytest.raises(TypeError, match="async connection"):
            app.sync.enqueue("noop", connection=conn)
    with pytest.raises(TypeError, match="connection= takes"):
        await app.enqueue("noop", connection=engine)
