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
    @property
    def debounce_key(self) -> str | None: ...


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
) -> list[tuple[Job, bool, bool, bool]]:
    """Each item's answer, in order, as (job, replayed, duplicate, replaced).

    An item whose idempotency key a job in the table holds (`existing`, with the
    request hash stored beside it) is replayed if the hash is the item's and an
    IdempotencyConflictError if not; one whose key an earlier item of this batch
    took (its twin) is replayed. A debounced item answers the job that now holds
    its debounce key (jobq.flow): replaced, unless it is its key's first item in
    the batch and that job is new, as if the items had been enqueued one by one.
    An item inserted answers its job. Failing those, its unique key is held
    (`unique_holders`): a duplicate, answered with the holder. Else the key's job
    is one the caller's snapshot cannot see: IsolationConflictError."""
    by_id = {job.id: job for job in inserted}
    item_ids = {item.id for item in items}
    held = {job.idempotency_key or "": (job, stored) for job, stored in existing}
    twins = {job.idempotency_key for job in inserted if job.idempotency_key is not None}
    debounced = {job.debounce_key: job for job in inserted if job.debounce_key is not None}
    seen_debounce: set[str] = set()
    holders = unique_holders or {}
    results: list[tuple[Job, bool, bool, bool]] = []
    for i, item in enumerate(items):
        key = item.idempotency_key
        job = by_id.get(item.id)
        if key is not None and key in held:
            stored, stored_hash = held[key]
            if stored_hash != item.request_hash:
                raise IdempotencyConflictError(key, i if batch else None)
            results.append((stored, True, False, False))
        elif job is None and key is not None and key in twins:
            results.append((_twin(key, inserted), True, False, False))
        elif item.debounce_key is not None and item.debounce_key in debounced:
            latest = debounced[item.debounce_key]
            first = item.debounce_key not in seen_debounce
            seen_debounce.add(item.debounce_key)
            results.append((latest, False, False, not (first and latest.id in item_ids)))
        elif job is not None:
            results.append((job, False, False, False))
        elif (holder := holders.get(item.unique_key or "")) is not None:
            results.append((holder, False, True, False))
        else:
            held_key = f"idempotency key {key!r}" if key else f"unique key {item.unique_key!r}"
            raise IsolationConflictError(
                f"{held_key} is held by a job this transaction cannot see; "
                "enqueue with a key supports READ COMMITTED"
            )
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
    """The job an earlier item of the batch with `key` inserted."""
    return next(job for job in inserted if job.idempotency_key == key)
