import itertools
import uuid

from jobq.ids import uuid7


def test_uuid7_is_version_7_and_rfc_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_strictly_increasing_within_a_process() -> None:
    ids = [uuid7() for _ in range(50_000)]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert len(set(ids)) == len(ids)
