"""The documented shapes of /v1/schedules (requests are jobq.schedules' models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

SCHEDULE_EXAMPLE: dict[str, Any] = {
    "name": "nightly-report",
    "kind": "send_report",
    "cron": "30 2 * * *",
    "every": None,
    "timezone": "Europe/Berlin",
    "queue": "default",
    "priority": 0,
    "max_attempts": None,
    "payload": {"format": "pdf"},
    "missed": "latest",
    "max_backfill": 100,
    "source": "api",
    "paused": False,
    "next_fire_at": "2030-01-02T01:30:00Z",
    "last_fire_at": "2030-01-01T01:30:00Z",
    "last_job_id": "01964f4e-8c5a-7b3c-9d2e-4f6a8b0c2d4e",
    "created_at": "2029-12-01T09:00:00Z",
    "updated_at": "2029-12-01T09:00:00Z",
    "synced_at": None,
}


class ScheduleOut(BaseModel):
    """A schedule (a periodic job). Timestamps are RFC 3339 in UTC."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SCHEDULE_EXAMPLE]})

    name: str
    kind: str
    cron: str | None = Field(description="Cron expression (5 fields, or 6 with seconds first).")
    every: str | None = Field(description="Or an interval such as `30s`, `1h30m`.")
    timezone: str = Field(description="IANA zone the cron expression is read in.")
    queue: str
    priority: int
    max_attempts: int | None = Field(description="Null: the kind's default.")
    payload: dict[str, Any]
    missed: Literal["latest", "all", "none"] = Field(
        description="What happens to fire times missed while no worker ran."
    )
    max_backfill: int = Field(description="With `missed: all`, at most this many missed runs.")
    source: Literal["code", "api"] = Field(
        description="`code`: defined with @app.periodic, upserted by every worker at start; "
        "only pause/resume and run-now apply. `api`: fully editable."
    )
    paused: bool
    next_fire_at: datetime = Field(description="The next fire time (while not paused).")
    last_fire_at: datetime | None = Field(description="The last fire time a job was made for.")
    last_job_id: UUID | None = Field(description="That job.")
    created_at: datetime
    updated_at: datetime
    synced_at: datetime | None = Field(
        description="When a worker last upserted it from its code (null for `api`); an old "
        "one means no running worker's code defines it any more."
    )


class ScheduleList(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"schedules": [SCHEDULE_EXAMPLE]}]}
    )

    schedules: list[ScheduleOut] = Field(description="By name.")
