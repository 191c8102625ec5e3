"""The idempotency rules of an enqueue (SPEC §3) as pure functions, without a database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from jobq import IdempotencyConflictError, IsolationConflictError, Job
from jobq.idempotency import first_of_each_key, keys_to_look_up, match_results
from tests.support import make_job


@dataclass(frozen=True)
class Item:
    """An enqueued item as the rules see it (the client passes InsertRow)."""

    idempotency_key: str | None = None
    request_hash: bytes | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    unique_key: str | None = None
    debounce_key: str | None = None


def keyed(key: str, request: bytes = b"a") -> Item:
    return Item(key, b"hash-" + request)


def job_of(item: Item, **changes: Any) -> Job:
    """The job the insert returns for `item`."""
    return make_job(id=item.id, idempotency_key=item.idempotency_key, **changes)


# --- which items are inserted ------------------------------------------------


def test_every_item_without_a_key_is_inserted() -> None:
    items = [Item(), Item(), Item()]
    assert first_of_each_key(items, batch=True) == items


def test_only_the_first_item_of_a_key_is_inserted() -> None:
    a, b, plain = keyed("k"), keyed("k"), Item()
    other = keyed("other")
    assert first_of_each_key([a, plain, b, other], batch=True) == [a, plain, other]


def test_a_later_item_with_a_key_and_another_request_names_its_index() -> None:
    items = [keyed("k"), Item(), keyed("j"), keyed("k", b"b")]
    with pytest.raises(IdempotencyConflictError) as raised:
        first_of_each_key(items, batch=True)
    assert raised.value.key == "k"
    assert raised.value.index == 3
    assert raised.value.errors[0].loc == ("jobs", 3, "idempotency_key")


def test_a_conflict_is_checked_against_the_first_item_of_the_key() -> None:
    # The third item matches the second but not the first: the first decides.
    items = [keyed("k", b"a"), keyed("k", b"a"), keyed("k", b"b")]
    with pytest.raises(IdempotencyConflictError) as raised:
        first_of_each_key(items, batch=True)
    assert raised.value.index == 2


def test_outside_a_batch_a_conflict_names_no_index() -> None:
    with pytest.raises(IdempotencyConflictError) as raised:
        first_of_each_key([keyed("k"), keyed("k", b"b")], batch=False)
    assert raised.value.index is None
    assert raised.value.errors[0].loc == ("idempotency_key",)


# --- which keys are looked up after the insert ---------------------------------


def test_no_key_is_looked_up_when_every_item_went_in() -> None:
    items = [keyed("k"), Item()]
    assert keys_to_look_up(items, [job_of(i) for i in items]) == []


def test_the_keys_of_skipped_items_are_looked_up_once_each_in_order() -> None:
    a, b, c = keyed("b"), keyed("a"), keyed("c")
    assert keys_to_look_up([a, b, c], [job_of(c)]) == ["b", "a"]
    # Items sharing a key (possible only if the caller did not dedupe) ask once.
    assert keys_to_look_up([a, keyed("b")], []) == ["b"]


def test_a_skipped_item_without_a_key_is_not_looked_up() -> None:
    assert keys_to_look_up([Item(), Item(""), keyed("k")], []) == ["k"]


# --- what each item answers -------------------------------------------------------


def test_inserted_items_answer_their_job_not_replayed() -> None:
    items = [Item(), keyed("k")]
    inserted = [job_of(i) for i in items]
    assert match_results(items, inserted, [], batch=True) == [
        (inserted[0], False, False, False),
        (inserted[1], False, False, False),
    ]


def test_a_later_item_of_the_batch_replays_its_twin() -> None:
    first, plain, twin = keyed("k"), Item(), keyed("k")
    inserted = [job_of(first), job_of(plain)]
    assert match_results([first, plain, twin], inserted, [], batch=True) == [
        (inserted[0], False, False, False),
        (inserted[1], False, False, False),
        (inserted[0], True, False, False),
    ]


def test_a_key_in_the_table_with_the_same_request_is_replayed() -> None:
    new, old = Item(), keyed("k")
    stored = make_job(idempotency_key="k")
    inserted = [job_of(new)]
    results = match_results([new, old], inserted, [(stored, old.request_hash)], batch=True)
    assert results == [(inserted[0], False, False, False), (stored, True, False, False)]


def test_a_key_in_the_table_wins_over_a_twin() -> None:
    # Both items were skipped: the table's job answers both, replayed.
    a, b = keyed("k"), keyed("k")
    stored = make_job(idempotency_key="k")
    results = match_results([a, b], [], [(stored, a.request_hash)], batch=True)
    assert results == [(stored, True, False, False), (stored, True, False, False)]


def test_a_key_in_the_table_with_another_request_conflicts_at_its_index() -> None:
    new, old = Item(), keyed("k", b"mine")
    stored = make_job(idempotency_key="k")
    with pytest.raises(IdempotencyConflictError) as raised:
        match_results([new, old], [job_of(new)], [(stored, b"hash-theirs")], batch=True)
    assert raised.value.key == "k"
    assert raised.value.index == 1


def test_a_single_enqueue_conflicts_without_an_index() -> None:
    item = keyed("k", b"mine")
    stored = make_job(idempotency_key="k")
    with pytest.raises(IdempotencyConflictError) as raised:
        match_results([item], [], [(stored, None)], batch=False)
    assert raised.value.index is None


def test_a_key_held_by_a_job_the_snapshot_cannot_see_is_an_isolation_conflict() -> None:
    # The insert skipped the item (the key is taken) yet the look-up found nothing.
    item = keyed("k")
    with pytest.raises(IsolationConflictError, match=r"'k'.*READ COMMITTED"):
        match_results([item], [], [], batch=False)


def test_a_twin_is_only_a_job_with_the_same_key() -> None:
    other, item = keyed("other"), keyed("k")
    with pytest.raises(IsolationConflictError):
        match_results([other, item], [job_of(other)], [], batch=True)


def test_a_skipped_item_whose_unique_key_is_held_answers_the_holder_as_a_duplicate() -> None:
    new, dup = Item(unique_key="u"), Item(unique_key="u")
    holder = make_job()
    inserted = [job_of(new)]
    results = match_results([new, dup], inserted, [], batch=True, unique_holders={"u": holder})
    assert results == [(inserted[0], False, False, False), (holder, False, True, False)]


def test_an_idempotent_replay_wins_over_a_unique_duplicate() -> None:
    item = Item(idempotency_key="k", request_hash=b"a", unique_key="u")
    stored = make_job(idempotency_key="k")
    results = match_results(
        [item], [], [(stored, b"a")], batch=False, unique_holders={"u": make_job()}
    )
    assert results == [(stored, True, False, False)]


def test_a_unique_key_held_by_an_invisible_job_is_an_isolation_conflict() -> None:
    with pytest.raises(IsolationConflictError):
        match_results([Item(unique_key="u")], [], [], batch=False, unique_holders={})
