"""The documented shapes of /v1/stats (built by jobq.stats' `to_dict()`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobq.job_request import QUEUE_PATTERN

_BUCKET_EXAMPLE: dict[str, Any] = {
    "start": "2030-01-01T09:00:00Z",
    "succeeded": 118,
    "retried": 3,
    "failed_permanent": 1,
    "cancelled": 0,
    "waiting": 42,
    "running": 10,
}


_THROUGHPUT_EXAMPLE: dict[str, Any] = {
    "window": "1h",
    "queue": None,
    "bucket_seconds": 60,
    "start": "2030-01-01T08:01:00Z",
    "end": "2030-01-01T09:01:00Z",
    "counted_through": "2030-01-01T09:00:00Z",
    # 60 buckets, one a minute; two shown: a counted one, and the current minute.
    "buckets": [
        _BUCKET_EXAMPLE,
        {
            **_BUCKET_EXAMPLE,
            "start": "2030-01-01T09:00:00Z",
            "succeeded": None,
            "retried": None,
            "failed_permanent": None,
            "cancelled": None,
        },
    ],
}


class ThroughputQuery(BaseModel):
    """Parameters of GET /v1/stats/throughput; unknown parameters are rejected."""

    model_config = ConfigDict(extra="forbid")

    window: Literal["1h", "24h"] = Field(
        default="1h",
        description="`1h`: 60 buckets of a minute; `24h`: 96 buckets of 15 minutes.",
    )
    queue: str | None = Field(
        default=None, pattern=QUEUE_PATTERN, description="One queue; absent: every queue."
    )


class ThroughputBucket(BaseModel):
    """One bucket. Counts are null while none of its minutes is counted yet (a minute
    is counted about 15 s after it ends); depth is the largest sample in the bucket
    (one a minute), null when none was taken (no worker was running)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_BUCKET_EXAMPLE]})

    start: datetime
    succeeded: int | None = Field(description="Jobs that succeeded.")
    retried: int | None = Field(
        description="Attempts that failed (or whose lease expired) with the job to run again."
    )
    failed_permanent: int | None = Field(description="Jobs that failed for good.")
    cancelled: int | None = Field(description="Jobs cancelled, running or not.")
    waiting: int | None = Field(description="Jobs queued or retrying and due, at the sample.")
    running: int | None = Field(description="Jobs running, at the sample.")


class ThroughputOut(BaseModel):
    """Jobs finished by outcome, and queue depth, in buckets from `start` to `end`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_THROUGHPUT_EXAMPLE]})

    window: Literal["1h", "24h"]
    queue: str | None
    bucket_seconds: int
    start: datetime
    end: datetime
    counted_through: datetime | None = Field(
        description="Minutes before this are counted (null: the rollup has not run yet)."
    )
    buckets: list[ThroughputBucket]
