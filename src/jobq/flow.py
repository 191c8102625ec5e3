"""Flow control declared on a task or an enqueue: unique jobs, debounce and concurrency keys.

Unique jobs (River's `UniqueOpts`): a job is unique by its kind plus, by choice,
its payload (whole or chosen fields), its queue and a time period, for as long
as it is in one of its unique states. The digest of those parts is the job's
`unique_key`; a partial unique index (migration 0009) holds one job per key among
the jobs in their states, so a duplicate enqueue is skipped by the insert and
answers the job that holds the key. Distinct from an idempotency key, which means
"this exact request".

Throttle ("keep the first, drop the rest within a window") is a unique job with a
period: `UniqueOpts(by_args=[...], period_seconds=60)`, plus the finished states
to also drop enqueues after the first one ran.

Debounce (graphile-worker's `job_key` in replace mode): enqueues with one
debounce key while its job has not started collapse into that job, which runs
`delay_seconds` after the last of them with the last one's payload. The key is
the enqueue's, else a payload field's value or a function of the payload (as a
concurrency key), else the kind alone; it is scoped to the kind. A partial
unique index (migration 0010) holds one never-started queued job per key, and
job_insert_many's ON CONFLICT ... DO UPDATE replaces it.

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
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.json_schema import SkipJsonSchema

UniqueState = Literal["queued", "retrying", "running", "succeeded", "failed_permanent", "cancelled"]
# Always in a job's unique states: a job moves among these on its own (a claim,
# a snooze, a rescue, a retry), and a move into the unique set could collide with
# another job holding the key. Only the finished states are a choice.
ACTIVE_STATES: tuple[UniqueState, ...] = ("queued", "retrying", "running")
ALL_STATES: tuple[UniqueState, ...] = get_args(UniqueState)
MAX_CONCURRENCY_KEY_LENGTH = 255
MAX_DEBOUNCE_KEY_LENGTH = 255
# A debounced job waits at most this long after its last enqueue: a longer wait is
# a schedule, not a debounce.
MAX_DEBOUNCE_SECONDS = 7 * 86400
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

    @classmethod
    def throttle(cls, period_seconds: float, by_args: bool | list[str] = False) -> UniqueOpts:
        """Throttle: keep the first job of each period (aligned to the epoch) and drop
        the rest, whatever became of the first (every state holds the key)."""
        return cls(by_args=by_args, period_seconds=period_seconds, states=list(ALL_STATES))


class DebounceOpts(BaseModel):
    """Collapse enqueues with one key into one job that runs `delay_seconds` after
    the last of them, with the last one's payload (and queue, priority, metadata)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_seconds: float = Field(
        gt=0,
        le=MAX_DEBOUNCE_SECONDS,
        description="The job runs this long after the last enqueue with its key.",
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_DEBOUNCE_KEY_LENGTH,
        strict=True,
        description="The debounce key (scoped to the kind). None: the value of `key_from`'s "
        "payload field, else the kind alone.",
    )
    # A payload field's name, or (in Python only) a function of the payload.
    # SkipJsonSchema: a function has no JSON form, and JSON input is never one.
    key_from: str | SkipJsonSchema[Callable[[Mapping[str, Any]], str | None]] | None = Field(
        default=None,
        description="The payload field whose value is the key (a missing field or null: "
        "not debounced).",
    )

    @field_validator("key")
    @classmethod
    def _storable_key(cls, value: str | None) -> str | None:
        # (pydantic already refuses a lone surrogate in a strict str)
        if value is not None and "\x00" in value:
            raise ValueError("contains U+0000")
        return value

    @field_validator("key_from")
    @classmethod
    def _field_name(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("key") is not None:
            raise ValueError("give key or key_from, not both")
        if isinstance(value, str) and not 1 <= len(value) <= MAX_DEBOUNCE_KEY_LENGTH:
            raise ValueError(f"must be 1 to {MAX_DEBOUNCE_KEY_LENGTH} characters")
        return value

    @field_validator("delay_seconds")
    @classmethod
    def _finite_delay(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be finite")
        return value


@dataclass(frozen=True, slots=True)
class TaskFlow:
    """A task's flow control, from `@app.task(unique=..., concurrency_key=...,
    debounce=..., fairness_key=...)`."""

    unique: UniqueOpts | None = None
    concurrency_key: ConcurrencyKeySource | None = None
    debounce: DebounceOpts | None = None
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


def resolve_debounce(
    declared: DebounceOpts | None, requested: DebounceOpts | bool | None
) -> DebounceOpts | None:
    """The options in force: the enqueue's (`False` turns the task's off, `True`
    keeps them), else the task's."""
    if requested is None or requested is True:
        return declared
    if requested is False:
        return None
    return requested


def debounce_key(opts: DebounceOpts, kind: str, payload: Mapping[str, Any]) -> str | None:
    """The stored key: the kind and the enqueue's key, the key from the payload, or
    none (None: the payload has no key, so the job is not debounced)."""
    key: str | None
    if opts.key is not None:
        key = opts.key
    elif opts.key_from is not None:
        key = _key_from(opts.key_from, payload, "debounce key", MAX_DEBOUNCE_KEY_LENGTH)
        if key is None:
            return None
    else:
        key = ""
    return json.dumps([kind, key], ensure_ascii=False, separators=(",", ":"))


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
