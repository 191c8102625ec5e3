"""Flow control declared on a task or an enqueue: unique jobs and concurrency keys.

Unique jobs (River's `UniqueOpts`): a job is unique by its kind plus, by choice,
its payload (whole or chosen fields), its queue and a time period, for as long
as it is in one of its unique states. The digest of those parts is the job's
`unique_key`; a partial unique index (migration 0009) holds one job per key among
the jobs in their states, so a duplicate enqueue is skipped by the insert and
answers the job that holds the key. Distinct from an idempotency key, which means
"this exact request".

A concurrency key is the name a limit (`jobq.types.FlowLimit`) counts a job
under: a payload field, a function of the payload, or given at enqueue.

A fairness key is the lane a job waits in (a tenant, say), from the same
sources: while jobs with fairness keys wait in a worker's queues, its claim
takes them round-robin across keys (migration 0011), so one key's backlog does
not hold back another key's jobs.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

UniqueState = Literal["queued", "retrying", "running", "succeeded", "failed_permanent", "cancelled"]
# Always in a job's unique states: a job moves among these on its own (a claim,
# a snooze, a rescue, a retry), and a move into the unique set could collide with
# another job holding the key. Only the finished states are a choice.
ACTIVE_STATES: tuple[UniqueState, ...] = ("queued", "retrying", "running")
MAX_CONCURRENCY_KEY_LENGTH = 255
MAX_FAIRNESS_KEY_LENGTH = 255

# A payload field's name, or a function of the payload; for either kind of key.
KeySource = str | Callable[[Mapping[str, Any]], str | None]
ConcurrencyKeySource = KeySource
FairnessKeySource = KeySource


class UniqueOpts(BaseModel):
    """What makes a job unique. The kind always counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by_args: bool | list[str] = Field(
        default=True,
        description="The payload counts: all of it (true), these top-level fields, or none.",
    )
    by_queue: bool = Field(default=False, description="The queue counts.")
    period_seconds: float | None = Field(
        default=None,
        gt=0,
        le=366 * 86400,
        description="Unique within each period of this many seconds (aligned to the epoch); "
        "none: for as long as a job is in its states.",
    )
    states: list[UniqueState] = Field(
        default_factory=lambda: list(ACTIVE_STATES),
        description="States in which a job holds its key; queued, retrying and running "
        "always do, add finished states to also refuse a job that already ran.",
    )

    @field_validator("states")
    @classmethod
    def _active_states_included(cls, states: list[UniqueState]) -> list[UniqueState]:
        missing = [s for s in ACTIVE_STATES if s not in states]
        if missing:
            raise ValueError(f"must include {', '.join(ACTIVE_STATES)} (missing {missing})")
        return sorted(set(states))

    @field_validator("period_seconds")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be finite")
        return value


@dataclass(frozen=True, slots=True)
class TaskFlow:
    """A task's flow control, from `@app.task(unique=..., concurrency_key=...,
    fairness_key=...)`."""

    unique: UniqueOpts | None = None
    concurrency_key: ConcurrencyKeySource | None = None
    fairness_key: FairnessKeySource | None = None


@dataclass(frozen=True, slots=True)
class UniqueKey:
    key: str
    states: str  # comma-joined, as job_insert_many takes them


def resolve_unique(
    declared: UniqueOpts | None, requested: UniqueOpts | bool | None
) -> UniqueOpts | None:
    """The options in force: the enqueue's (`False` turns the task's off, `True`
    is the defaults), else the task's."""
    if requested is None:
        return declared
    if requested is True:
        return declared or UniqueOpts()
    if requested is False:
        return None
    return requested


def unique_key(
    opts: UniqueOpts, kind: str, queue: str, payload: Mapping[str, Any], now: datetime
) -> UniqueKey:
    """The digest of the parts `opts` chooses. The period is read on the enqueuing
    host's clock (as River does): hosts whose clocks differ by more than a small
    part of the period may each open a period at its edge."""
    parts: dict[str, Any] = {"kind": kind}
    if opts.by_queue:
        parts["queue"] = queue
    if opts.by_args is True:
        parts["args"] = payload
    elif isinstance(opts.by_args, list):
        parts["args"] = {name: payload.get(name) for name in sorted(set(opts.by_args))}
    if opts.period_seconds is not None:
        parts["period"] = math.floor(now.timestamp() / opts.period_seconds)
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return UniqueKey(f"{kind}:{digest}", ",".join(opts.states))


def concurrency_key(source: ConcurrencyKeySource, payload: Mapping[str, Any]) -> str | None:
    """The key from a payload field's value (a string names the field) or a function."""
    return _key_from(source, payload, "concurrency key", MAX_CONCURRENCY_KEY_LENGTH)


def fairness_key(source: FairnessKeySource, payload: Mapping[str, Any]) -> str | None:
    """The fairness key from a payload field's value or a function, as `concurrency_key`."""
    return _key_from(source, payload, "fairness key", MAX_FAIRNESS_KEY_LENGTH)


def _key_from(source: KeySource, payload: Mapping[str, Any], what: str, longest: int) -> str | None:
    value = source(payload) if callable(source) else payload.get(source)
    if value is None:
        return None
    key = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if not key or len(key) > longest or "\x00" in key:
        raise ValueError(
            f"{what} must be 1 to {longest} characters, without U+0000; got {key[:40]!r}"
        )
    return key


LIMIT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
MAX_RATE = 10_000  # a rate window keeps one timestamp per start within its period


class FlowLimitRequest(BaseModel):
    """A flow limit to create or replace (`PUT /v1/limits/{name}`, `jobq limits set`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"queue": "default", "key_pattern": "tenant:%", "max_running": 3},
                {"queue": "emails", "rate": 20, "period_seconds": 1},
            ]
        },
    )

    queue: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
        description="The queue it limits; none: every queue.",
    )
    key_pattern: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CONCURRENCY_KEY_LENGTH,
        description="A SQL LIKE pattern on the concurrency key (`%` any text, `_` one "
        "character): each matching key gets the limit. None: the queue as a whole.",
    )
    max_running: int | None = Field(
        default=None, ge=1, le=1_000_000, strict=True, description="Jobs running at once."
    )
    rate: int | None = Field(
        default=None, ge=1, le=MAX_RATE, strict=True, description="Starts per period."
    )
    period_seconds: float | None = Field(
        default=None, gt=0, le=86400, description="The rate's period (sliding window)."
    )

    @field_validator("key_pattern")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("contains U+0000")
        return value

    def check(self) -> None:
        """The rules across fields (ValueError): something to limit, a rate with its period."""
        if self.max_running is None and self.rate is None:
            raise ValueError("give max_running, rate (with period_seconds) or both")
        if (self.rate is None) != (self.period_seconds is None):
            raise ValueError("rate and period_seconds go together")
