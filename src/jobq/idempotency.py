"""The idempotency rules of an enqueue (SPEC §3) as pure functions: which items of a
batch to insert, and what each item answers once the insert has run.

The client does the I/O around them: it inserts `first_of_each_key(...)`, reads
back the jobs that hold `keys_to_look_up(...)`, and answers `match_results(...)`.

Errors: IdempotencyConflictError (a key used with a different request, by an
earlier item of the batch or by a job in the table; `index` names the item in a
batch) and IsolationConflictError (the key's job is invisible to the caller's
snapshot: stricter isolation than READ COMMITTED).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol, TypeVar

from jobq.errors import IdempotencyConflictError, IsolationConflictError
from jobq.types import Job


class Keyed(Protocol):
    """An item of an enqueue as these rules see it (`jobq.db.records.InsertRow` is one)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def idempotency_key(self) -> str | None: ...
    @property
    def request_hash(self) -> bytes | None: ...


K = TypeVar("K", bound=Keyed)


def first_of_each_key(items: Sequence[K], *, batch: bool) -> list[K]:
    """The items to insert: every item without a key and the first item of each key.

    Two items with one key must be the same request (the same request hash):
    a later one that is not raises IdempotencyConflictError naming its index
    (in a batch; a single enqueue names none)."""
    first_with_key: dict[str, K] = {}
    to_insert: list[K] = []
    for i, item in enumerate(items):
        key = item.idempotency_key
        if key is None:
            to_insert.append(item)
        elif key not in first_with_key:
            first_with_key[key] = item
            to_insert.append(item)
        elif first_with_key[key].request_hash != item.request_hash:
            raise IdempotencyConflictError(key, i if batch else None)
    return to_insert


def keys_to_look_up(to_insert: Sequence[Keyed], inserted: Sequence[Job]) -> list[str]:
    """The keys of the items the insert skipped: a job in the table holds each."""
    ids = {job.id for job in inserted}
    skipped = dict.fromkeys(r.idempotency_key for r in to_insert if r.id not in ids)
    return [key for key in skipped if key]


def match_results(
    items: Sequence[Keyed],
    inserted: Sequence[Job],
    existing: Sequence[tuple[Job, bytes | None]],
    *,
    batch: bool,
) -> list[tuple[Job, bool]]:
    """Each item's answer, in order, as (job, replayed).

    An item inserted answers its job, not replayed. Otherwise its key is held:
    by a job in the table (`existing`, with the request hash stored beside it),
    replayed if the hash is the item's and an IdempotencyConflictError if not;
    else by the job an earlier item of this batch inserted (its twin), replayed;
    else by a job the caller's snapshot cannot see: IsolationConflictError."""
    by_id = {job.id: job for job in inserted}
    held = {job.idempotency_key or "": (job, stored) for job, stored in existing}
    results: list[tuple[Job, bool]] = []
    for i, item in enumerate(items):
        job = by_id.get(item.id)
        if job is not None:
            results.append((job, False))
            continue
        key = item.idempotency_key or ""
        if key not in held:
            results.append((_twin(key, inserted), True))
            continue
        job, stored_hash = held[key]
        if stored_hash != item.request_hash:
            raise IdempotencyConflictError(key, i if batch else None)
        results.append((job, True))
    return results


def _twin(key: str, inserted: Sequence[Job]) -> Job:
    """The job an earlier item with `key` inserted, or IsolationConflictError: the
    key's job exists (the insert skipped the item) but this snapshot cannot see it."""
    twin = next((job for job in inserted if job.idempotency_key == key), None)
    if twin is None:
        raise IsolationConflictError(
            f"idempotency key {key!r} is held by a job this transaction cannot see; "
            "enqueue with a key supports READ COMMITTED"
        )
    return twin
