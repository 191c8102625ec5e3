"""The enqueue statements of `sql/queries.sql` for DB-API drivers (format paramstyle).

psycopg 3, psycopg2 and Django's cursor wrapper all take `%s` placeholders, while
queries.sql is written for asyncpg's `$n`. Rather than keep a second copy of the
statements, each is translated once here: `%` doubled, `$n` turned into `%s` with
the argument order it needs. The rows they return differ from asyncpg's too
(tuples; jsonb decoded by psycopg unless the caller's adapters keep it text, as
Django's do; psycopg2 gives uuid as text and bytea as a memoryview), so
`jobs_from_rows` turns either into jobq's `Job`.

Pure: no I/O here; `jobq.transactional` runs these on a caller's cursor.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jobq.db.queries import Queries, job_insert_many_args
from jobq.db.records import InsertRow, job_from_record
from jobq.types import Job

_PLACEHOLDER_RE = re.compile(r"\$(\d+)")

# The blocks an enqueue on a caller's cursor runs.
ENQUEUE_BLOCKS = (
    "job_insert_many",
    "job_get_by_idempotency_keys",
    "job_get_by_unique_keys",
    "enqueue_savepoint",
    "enqueue_savepoint_release",
    "enqueue_savepoint_rollback",
    "enqueue_begin",
    "enqueue_commit",
    "enqueue_rollback",
)


@dataclass(frozen=True, slots=True)
class FormatStatement:
    """A statement in format paramstyle, and which `$n` argument each `%s` takes (0-based)."""

    sql: str
    order: tuple[int, ...]

    def params(self, args: Sequence[Any]) -> list[Any]:
        return [args[i] for i in self.order]


def to_format_paramstyle(sql: str) -> FormatStatement:
    """`sql` with `%` escaped and each `$n` replaced by `%s`, in the order they occur
    (a `$n` used twice takes its argument twice)."""
    order: list[int] = []

    def placeholder(match: re.Match[str]) -> str:
        order.append(int(match.group(1)) - 1)
        return "%s"

    return FormatStatement(_PLACEHOLDER_RE.sub(placeholder, sql.replace("%", "%%")), tuple(order))


class FormatQueries:
    """The enqueue blocks of one schema's queries, translated for DB-API cursors."""

    def __init__(self, schema: str) -> None:
        queries = Queries(schema)
        self.enqueue_channel = queries.enqueue_channel
        self.statements = {name: to_format_paramstyle(queries.sql[name]) for name in ENQUEUE_BLOCKS}

    def job_insert_many(self, rows: Sequence[InsertRow]) -> tuple[str, list[Any]]:
        args = list(job_insert_many_args(rows, self.enqueue_channel))
        # As text: psycopg2 (and so Django on it) cannot adapt uuid.UUID; the
        # statement casts the array to uuid[] either way.
        args[0] = [str(job_id) for job_id in args[0]]
        statement = self.statements["job_insert_many"]
        return statement.sql, statement.params(args)

    def job_get_by_idempotency_keys(self, keys: Sequence[str]) -> tuple[str, list[Any]]:
        statement = self.statements["job_get_by_idempotency_keys"]
        return statement.sql, statement.params([list(keys)])

    def job_get_by_unique_keys(self, keys: Sequence[str]) -> tuple[str, list[Any]]:
        statement = self.statements["job_get_by_unique_keys"]
        return statement.sql, statement.params([list(keys)])

    def plain(self, name: str) -> str:
        """A block that takes no arguments (the savepoint and transaction steps)."""
        return self.statements[name].sql


@lru_cache(maxsize=16)
def format_queries(schema: str) -> FormatQueries:
    """The translated statements of `schema`, made once per process (a parse of queries.sql)."""
    return FormatQueries(schema)


def _as_is(value: Any) -> Any:
    return value


def _json_text(value: Any) -> Any:
    import json

    return json.loads(value) if value is not None else None


def records_from_rows(
    description: Sequence[Any], rows: Sequence[Sequence[Any]]
) -> list[dict[str, Any]]:
    """DB-API rows as dicts by column name, with psycopg2's uuid text and bytea
    memoryviews turned into what asyncpg and psycopg 3 give."""
    names = [column[0] for column in description]
    records = []
    for row in rows:
        record = dict(zip(names, row, strict=True))
        if isinstance(record["id"], str):
            record["id"] = uuid.UUID(record["id"])
        if isinstance(record.get("request_hash"), memoryview):
            record["request_hash"] = bytes(record["request_hash"])
        records.append(record)
    return records


def job_from_dbapi_record(record: dict[str, Any]) -> Job:
    # `payload` is always a JSON object, so its type tells whether this cursor
    # decodes jsonb (psycopg, psycopg2) or gives text (Django's cursors, asyncpg).
    load = _json_text if isinstance(record["payload"], str) else _as_is
    return job_from_record(record, load)


def jobs_from_rows(description: Sequence[Any], rows: Sequence[Sequence[Any]]) -> list[Job]:
    return [job_from_dbapi_record(r) for r in records_from_rows(description, rows)]


def jobs_with_hash_from_rows(
    description: Sequence[Any], rows: Sequence[Sequence[Any]]
) -> list[tuple[Job, bytes | None]]:
    return [
        (job_from_dbapi_record(r), r["request_hash"]) for r in records_from_rows(description, rows)
    ]
