"""A job request (SPEC §2's body, §6's enqueue arguments): validation and fingerprint.

`JobRequest` is the one model the HTTP API, the library and the CLI validate
with. `request_hash()` is the idempotency fingerprint of SPEC §3: the fields as
the client sent them (an omitted field equals only an omitted field), JSON
compared by value, timestamps compared as instants.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from jobq.errors import FieldError, InvalidRequestError
from jobq.flow import (
    MAX_CONCURRENCY_KEY_LENGTH,
    MAX_FAIRNESS_KEY_LENGTH,
    DebounceOpts,
    UniqueOpts,
)

QUEUE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
KIND_PATTERN = r"^[a-z][a-z0-9_.-]{0,62}$"
DEFAULT_QUEUE = "default"
MIN_YEAR, MAX_YEAR = 1970, 9999
# Objects and arrays in a payload or metadata nest at most this deep (422 beyond).
MAX_JSON_DEPTH = 64
# Dependencies one job may name in `depends_on`.
MAX_DEPENDENCIES = 1000

QueueName = Annotated[str, StringConstraints(pattern=QUEUE_PATTERN, strict=True)]
KindName = Annotated[str, StringConstraints(pattern=KIND_PATTERN, strict=True)]

# The fields compared by "the same request" (SPEC §3).
FINGERPRINT_FIELDS = ("kind", "queue", "payload", "metadata", "priority", "max_attempts", "run_at")


class JobRequest(BaseModel):
    """A job to enqueue. Unknown fields are rejected."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "send_email",
                    "payload": {"to": "a@example.com", "subject": "Welcome"},
                    "queue": "default",
                    "priority": 0,
                    "idempotency_key": "order-17-welcome",
                }
            ]
        },
    )

    kind: KindName = Field(description="Which handler runs the job; must be registered.")
    payload: dict[str, Any] = Field(
        default_factory=dict, description="JSON object handed to the handler."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="JSON object kept with the job; a W3C `traceparent` is carried to the worker.",
    )
    queue: QueueName = Field(default=DEFAULT_QUEUE, description="Queue name.")
    priority: int = Field(
        default=0, ge=-32768, le=32767, strict=True, description="Higher runs first."
    )
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        strict=True,
        description="Attempts before failed_permanent; default from the kind's retry policy.",
    )
    run_at: datetime | None = Field(
        default=None, description="Earliest start, RFC 3339 with an offset; default now."
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        strict=True,
        description="A repeat of the same request with this key returns the first job (200, "
        "`Idempotent-Replayed: true`); the same key with a different request is a 422.",
    )
    unique: UniqueOpts | bool | None = Field(
        default=None,
        description="Unique-job options, overriding the task's: true for the defaults, false "
        "for none. A duplicate answers the job holding the key (200, `Jobq-Duplicate: true`).",
    )
    debounce: DebounceOpts | bool | None = Field(
        default=None,
        description="Debounce options, overriding the task's: false for none, true for the "
        "task's. Enqueues with one key while its job has not started collapse into that job, "
        "which runs `delay_seconds` after the last with the last payload (200, "
        "`Jobq-Replaced: true`). Not with `run_at`, `unique` or `depends_on`.",
    )
    concurrency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CONCURRENCY_KEY_LENGTH,
        strict=True,
        description="The key flow limits count this job under; default from the task.",
    )
    fairness_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FAIRNESS_KEY_LENGTH,
        strict=True,
        description="The lane (a tenant, say) this job waits in: while jobs with fairness "
        "keys wait, workers take them round-robin across keys. Default from the task.",
    )

    depends_on: list[uuid.UUID] | None = Field(
        default=None,
        max_length=MAX_DEPENDENCIES,
        description="Ids of jobs this one waits for: it stays `pending` until each ended "
        "(one already succeeded counts as done). Not with `idempotency_key`.",
    )
    on_dependency_failure: Literal["cancel", "run"] = Field(
        default="cancel",
        description="When a dependency ends failed_permanent or cancelled: `cancel` this job "
        "(its last_error names the dependency) or `run` it anyway.",
    )

    @field_validator("run_at", mode="before")
    @classmethod
    def _run_at_is_a_timestamp(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("must be an RFC 3339 timestamp string with an offset")
        return value

    @field_validator("run_at")
    @classmethod
    def _run_at_has_offset_and_range(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must carry a UTC offset (e.g. 2030-01-01T00:00:00Z)")
        try:
            utc = value.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"must be within the years {MIN_YEAR}-{MAX_YEAR} in UTC") from None
        if not MIN_YEAR <= utc.year <= MAX_YEAR:
            raise ValueError(f"must be within the years {MIN_YEAR}-{MAX_YEAR} in UTC")
        return utc

    @field_validator(
        "payload",
        "metadata",
        "kind",
        "queue",
        "idempotency_key",
        "concurrency_key",
        "fairness_key",
    )
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = find_unstorable(value)
        if problem:
            raise ValueError(problem)
        return value


def find_unstorable(value: Any) -> str | None:
    """Why jobq will not store this JSON value, or None: PostgreSQL cannot hold
    U+0000, a lone surrogate or NaN, and jobq refuses objects and arrays nested
    deeper than MAX_JSON_DEPTH (a deeper one could not be read back by Python's
    JSON decoder in a list page, and no job needs it).

    The walk keeps one iterator per level and builds a value's path only for
    the message: memory grows with the depth, never with depth x key length or
    with the width of a list."""
    found = _unstorable_scalar(value)
    if found:
        return f"{found} at the value"
    if not isinstance(value, dict | list):
        return None
    stack: list[tuple[Iterator[tuple[Any, Any]], _PathNode]] = [(_entries(value), None)]
    while stack:
        entries, node = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        key, item = entry
        here: _PathNode = (node, key)
        if isinstance(key, str):
            found = _unstorable_text(key)
            if found:
                return f"{found} in a key at {_path_text(node)}"
        found = _unstorable_scalar(item)
        if found:
            return f"{found} at {_path_text(here)}"
        if isinstance(item, dict | list):
            if len(stack) >= MAX_JSON_DEPTH:
                return f"nested deeper than {MAX_JSON_DEPTH} levels at {_path_text(here)}"
            stack.append((_entries(item), here))
    return None


# A path as a chain of (parent, key or index) links, shared by every child.
_PathNode = tuple[Any, str | int] | None
_MAX_PATH_CHARS = 200


def _entries(container: dict[str, Any] | list[Any]) -> Iterator[tuple[Any, Any]]:
    return iter(container.items()) if isinstance(container, dict) else enumerate(container)


def _path_text(node: _PathNode) -> str:
    parts: list[str] = []
    while node is not None:
        node, key = node
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    if not parts:
        return "the top level"
    text = "".join(reversed(parts)).removeprefix(".")
    # A path of long keys could be megabytes: the end says where it is.
    return text if len(text) <= _MAX_PATH_CHARS else "..." + text[-_MAX_PATH_CHARS:]


def _unstorable_scalar(value: Any) -> str | None:
    if isinstance(value, str):
        return _unstorable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "non-finite number"
    return None


def _unstorable_text(text: str) -> str | None:
    if "\x00" in text:
        return "contains U+0000"
    if not text.isascii():
        # JSON may carry a lone surrogate ("\ud800"): not text PostgreSQL can store.
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate"
    return None


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _canonical(value: Any) -> Any:
    """JSON by value: 1, 1.0 and 1e0 are the same number."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def request_hash(request: JobRequest) -> bytes:
    """The idempotency fingerprint: only the fields the client set."""
    sent: dict[str, Any] = {}
    for name in FINGERPRINT_FIELDS:
        if name not in request.model_fields_set:
            continue
        value = getattr(request, name)
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        sent[name] = _canonical(value)
    text = json.dumps(sent, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


def field_errors(exc: Any, prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    """pydantic's ValidationError as our FieldErrors."""
    return [FieldError(prefix + tuple(err["loc"]), error_message(err)) for err in exc.errors()]


def error_message(err: Any) -> str:
    """One of pydantic's errors' message, without the "Value error, " it puts before
    the message of a validator's ValueError (ours already say what is wrong)."""
    message = str(err.get("msg", "invalid"))
    return message.removeprefix("Value error, ") if err.get("type") == "value_error" else message


def parse_request(data: Any, prefix: tuple[str | int, ...] = ()) -> JobRequest:
    """Validate a mapping (library / CLI input) into a JobRequest or raise InvalidRequestError."""
    from pydantic import ValidationError

    if isinstance(data, JobRequest):
        return data
    try:
        return JobRequest.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc, prefix)
        summary = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.message}" for e in errors)
        raise InvalidRequestError(f"invalid job request: {summary}", errors) from None


def request_from_arguments(
    kind: str,
    payload: Mapping[str, Any] | None = None,
    *,
    queue: str | None = None,
    priority: int | None = None,
    max_attempts: int | None = None,
    run_at: datetime | None = None,
    idempotency_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    depends_on: Iterable[uuid.UUID | str] | None = None,
    on_dependency_failure: str | None = None,
    unique: UniqueOpts | bool | None = None,
    concurrency_key: str | None = None,
    debounce: DebounceOpts | bool | None = None,
    fairness_key: str | None = None,
) -> JobRequest:
    """The library's keyword arguments (App.enqueue, SyncClient.enqueue) as a validated
    request: an argument left None is omitted, so it takes its default and counts as
    omitted in the idempotency fingerprint."""
    fields: dict[str, Any] = {"kind": kind}
    optional = {
        "payload": dict(payload) if payload is not None else None,
        "queue": queue,
        "priority": priority,
        "max_attempts": max_attempts,
        "run_at": run_at,
        "idempotency_key": idempotency_key,
        "metadata": dict(metadata) if metadata is not None else None,
        "depends_on": [str(d) for d in depends_on] if depends_on is not None else None,
        "on_dependency_failure": on_dependency_failure,
        "unique": unique,
        "concurrency_key": concurrency_key,
        "debounce": debounce,
        "fairness_key": fairness_key,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    return parse_request(fields)
