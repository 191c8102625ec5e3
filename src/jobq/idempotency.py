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
from collections.abc import Mapping, Sequence
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
    @property
    def unique_key(self) -> str | None: ...


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
    unique_holders: Mapping[str, Job] | None = None,
) -> list[tuple[Job, bool, bool]]:
    """Each item's answer, in order, as (job, replayed, duplicate).

    An item inserted answers its job, not replayed. Otherwise its idempotency key
    is held: by a job in the table (`existing`, with the request hash stored
    beside it), replayed if the hash is the item's and an IdempotencyConflictError
    if not; else by the job an earlier item of this batch inserted (its twin),
    replayed. Failing those, its unique key is held (`unique_holders`, jobq.flow):
    a duplicate, answered with the holder. Else the key's job is one the caller's
    snapshot cannot see: IsolationConflictError."""
    by_id = {job.id: job for job in inserted}
    held = {job.idempotency_key or "": (job, stored) for job, stored in existing}
    twins = {job.idempotency_key for job in inserted if job.idempotency_key is not None}
    holders = unique_holders or {}
    results: list[tuple[Job, bool, bool]] = []
    for i, item in enumerate(items):
        job = by_id.get(item.id)
        if job is not None:
            results.append((job, False, False))
            continue
        key = item.idempotency_key
        if key is None or (key not in held and key not in twins):
            holder = holders.get(item.unique_key or "")
            if holder is not None:
                results.append((holder, False, True))
                continue
            if key is None:
                raise IsolationConflictError(
                    f"unique key {item.unique_key!r} is held by a job this transaction "
                    "cannot see; enqueue of a unique job supports READ COMMITTED"
                )
        if key not in held:
            results.append((_twin(key, inserted), True, False))
            continue
        job, stored_hash = held[key]
        if stored_hash != item.request_hash:
            raise IdempotencyConflictError(key, i if batch else None)
        results.append((job, True, False))
    return results


def unique_keys_to_look_up(to_insert: Sequence[Keyed], inserted: Sequence[Job]) -> list[str]:
    """The unique keys of the items the insert skipped (a job may hold each)."""
    ids = {job.id for job in inserted}
    skipped = dict.fromkeys(r.unique_key for r in to_insert if r.id not in ids)
    return [key for key in skipped if key]


def unique_holders(inserted: Sequence[Job], found: Sequence[Job]) -> dict[str, Job]:
    """Per unique key, the job that holds it: one this insert made (a batch's
    first item of that key), else the one read back. The read back prefers a job
    still in its states, and may answer one that left them just after the insert
    skipped the item: that job held the key when it mattered."""
    holders = {job.unique_key: job for job in found if job.unique_key}
    holders.update({job.unique_key: job for job in inserted if job.unique_key})
    return holders


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
