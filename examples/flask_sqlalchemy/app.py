"""A Flask + SQLAlchemy app that enqueues a job in the same transaction as its own write.

POST /signups {"email": ...} inserts a user and enqueues `send_welcome` through the
request's SQLAlchemy Session: both commit together, or neither does (an email
without "@" is refused after the insert and the enqueue, and rolls both back).
A jobq worker runs in this process beside the web server and marks the user
welcomed; GET /signups/<id> shows it.

    pip install -e "../..[psycopg,sqlalchemy]" flask
    python app.py                     # http://127.0.0.1:5000 (PORT=...), with a worker

DATABASE_URL and JOBQ_* configure jobq as everywhere; APP_SCHEMA puts the users
table in a schema of its own (default: public).
"""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import UTC, datetime
from typing import Any

import flask
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, create_engine, select
from sqlalchemy.orm import Session

import jobq

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SCHEMA = os.environ.get("APP_SCHEMA")

# One database, two drivers: SQLAlchemy's psycopg for the app, jobq's asyncpg pool
# for the worker. The enqueue goes through the Session, so it is the app's transaction.
engine = create_engine("postgresql+psycopg://" + DATABASE_URL.split("://", 1)[1])
users = Table(
    "users",
    MetaData(schema=SCHEMA),
    Column("id", Integer, primary_key=True),
    Column("email", Text, nullable=False),
    Column("welcomed_at", DateTime(timezone=True)),
)

jobs = jobq.App(jobq.Settings.from_env(database_url=DATABASE_URL))


@jobs.task("send_welcome")
def send_welcome(ctx: jobq.JobContext, payload: dict[str, Any]) -> str:
    """A sync handler (run in a worker thread): "send" the mail, record it."""
    with Session(engine) as session, session.begin():
        session.execute(
            users.update()
            .where(users.c.id == payload["user_id"])
            .values(welcomed_at=datetime.now(UTC))
        )
    return f"welcomed {payload['email']}"


web = flask.Flask(__name__)


@web.post("/signups")
def sign_up() -> Any:
    email = str((flask.request.get_json(silent=True) or {}).get("email", ""))
    with Session(engine) as session:
        user_id = session.execute(
            users.insert().values(email=email).returning(users.c.id)
        ).scalar_one()
        job = jobs.sync.enqueue(
            "send_welcome", {"user_id": user_id, "email": email}, connection=session
        )
        if "@" not in email:  # found late on purpose: the row and the job both go
            session.rollback()
            return {"title": "not an email address", "status": 422}, 422
        session.commit()
    return {"user": user_id, "job": str(job.id)}, 201


@web.get("/signups/<int:user_id>")
def show(user_id: int) -> Any:
    with Session(engine) as session:
        row = session.execute(select(users).where(users.c.id == user_id)).one_or_none()
    if row is None:
        return {"title": "no such user", "status": 404}, 404
    return {"user": row.id, "email": row.email, "welcomed": row.welcomed_at is not None}


@web.get("/health")
def health() -> Any:
    return {"ok": True}


def run_worker() -> None:
    asyncio.run(jobs.run_worker(concurrency=4))


def main() -> None:
    if SCHEMA:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{SCHEMA}"')
    users.metadata.create_all(engine)
    jobs.sync.open()  # connect and migrate jobq's schema now, before the first request
    threading.Thread(target=run_worker, name="jobq-worker", daemon=True).start()
    web.run(host="127.0.0.1", port=int(os.environ.get("PORT", "5000")))


if __name__ == "__main__":
    main()
