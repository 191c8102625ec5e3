"""jobq.job_request: what PostgreSQL cannot store, the depth cap and a walk whose
memory does not grow with key length x depth (issue 12 #2); names validated by
pattern, where a trailing newline is not a name (#14).

Python's `re.match` with `$` accepts "default\n" (`$` matches before a final
newline); pydantic-core's Rust regex does not. Every check of jobq's patterns
must refuse it: the pydantic models, and the Python checks (fullmatch).
"""

from __future__ import annotations

import math
import tracemalloc
from typing import Any

import pytest
from pydantic import ValidationError

from jobq import App
from jobq.api.models import BulkFilter, JobListQuery
from jobq.errors import InvalidRequestError
from jobq.job_request import MAX_JSON_DEPTH, JobRequest, find_unstorable, parse_request

TRAILING = ["\n", "\r\n", " ", "\t"]


def nested(depth: int, key: str = "a", leaf: Any = 1) -> Any:
    """An object `depth` levels deep: {"a": {"a": ... leaf}}, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = {key: value}
    return value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a\x00b", "contains U+0000 at the value"),
        ({"a": [1, {"b": "\ud800"}]}, "contains a lone UTF-16 surrogate at a[1].b"),
        ({"a": {"\x00": 1}}, "contains U+0000 in a key at a"),
        ({"\udfff": 1}, "contains a lone UTF-16 surrogate in a key at the top level"),
        ([1.0, math.nan], "non-finite number at [1]"),
        ({"n": math.inf}, "non-finite number at n"),
    ],
)
def test_unstorable_values_are_named_by_their_path(value: Any, problem: str) -> None:
    assert find_unstorable(value) == problem


@pytest.mark.parametrize(
    "value", [{}, [], "text", 1, 1.5, None, True, {"a": [1, "x", {"b": None}]}, "é😀"]
)
def test_storable_values(value: Any) -> None:
    assert find_unstorable(value) is None


def test_depth_is_capped_at_max_json_depth() -> None:
    assert find_unstorable(nested(MAX_JSON_DEPTH)) is None
    assert find_unstorable(nested(MAX_JSON_DEPTH, leaf=[])) is not None
    problem = find_unstorable(nested(MAX_JSON_DEPTH + 1))
    assert problem is not None
    assert problem.startswith(f"nested deeper than {MAX_JSON_DEPTH} levels at a.a.a")
    # Far deeper than Python's recursion limit: refused, not a RecursionError.
    assert find_unstorable(nested(100_000)) is not None


def test_the_depth_cap_is_a_clear_validation_error() -> None:
    with pytest.raises(InvalidRequestError, match=f"nested deeper than {MAX_JSON_DEPTH}"):
        parse_request({"kind": "noop", "payload": nested(MAX_JSON_DEPTH + 5)})
    with pytest.raises(InvalidRequestError, match="metadata"):
        parse_request({"kind": "noop", "metadata": nested(MAX_JSON_DEPTH + 5)})


def test_memory_does_not_grow_with_key_length_times_depth() -> None:
    # The review's body: 800 levels of 2,000-byte keys. Building every path took
    # 640 MB; the walk now needs the stack of levels and one message.
    value = nested(800, key="k" * 2000)
    tracemalloc.start()
    try:
        assert find_unstorable(value) is not None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak
    wide = list(range(1_000_000))
    tracemalloc.start()
    try:
        assert find_unstorable(wide) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000, peak  # no entry per element


def test_a_long_path_is_shortened_in_the_message() -> None:
    problem = find_unstorable(nested(10, key="k" * 1000, leaf="\x00"))
    assert problem is not None
    assert len(problem) < 300


# --- names: a trailing newline is not a name (#14) ---------------------------------


@pytest.mark.parametrize("tail", TRAILING, ids=repr)
def test_the_job_request_model_refuses_a_name_with_a_trailing_newline(tail: str) -> None:
    assert JobRequest(kind="noop", queue="default").queue == "default"
    with pytest.raises(ValidationError, match="kind"):
        JobRequest(kind="noop" + tail)
    with pytest.raises(ValidationError, match="queue"):
        JobRequest(kind="noop", queue="default" + tail)
    with pytest.raises(ValidationError):
        BulkFilter(queue="default" + tail)
    with pytest.raises(ValidationError):
        BulkFilter(kind="noop" + tail)
    with pytest.raises(ValidationError):
        JobListQuery(queue="default" + tail)
    with pytest.raises(ValidationError):
        JobListQuery(kind="noop" + tail)


def test_a_kind_with_a_trailing_newline_cannot_be_registered() -> None:
    app = App()
    with pytest.raises(ValueError, match="must match"):
        app.register("noop\n", lambda ctx, payload: None)
