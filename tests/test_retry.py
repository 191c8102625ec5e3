import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobq.retry import RetryPolicy


@given(
    base=st.integers(min_value=1, max_value=10_000),
    extra=st.integers(min_value=0, max_value=10_000_000),
    previous=st.none() | st.integers(min_value=0, max_value=10**9),
    seed=st.integers(),
)
def test_delay_within_decorrelated_jitter_bounds(
    base: int, extra: int, previous: int | None, seed: int
) -> None:
    policy = RetryPolicy(base, base + extra)
    delay = policy.next_delay_ms(previous, random.Random(seed).uniform)
    prev = base if previous is None else max(previous, base)
    assert base <= delay <= min(policy.cap_ms, 3 * prev)


def test_delay_uses_the_extremes_of_the_window() -> None:
    policy = RetryPolicy(1000, 3_600_000)
    assert policy.next_delay_ms(None, lambda lo, hi: lo) == 1000
    assert policy.next_delay_ms(None, lambda lo, hi: hi) == 3000
    assert policy.next_delay_ms(2000, lambda lo, hi: hi) == 6000
    assert policy.next_delay_ms(3_000_000, lambda lo, hi: hi) == 3_600_000


def test_next_retry_at_adds_the_delay_to_now() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    at, delay = RetryPolicy(1000, 5000).next_retry_at(now, None, lambda lo, hi: hi)
    assert delay == 3000
    assert at == now + timedelta(seconds=3)


def test_cap_below_base_is_refused() -> None:
    with pytest.raises(ValueError, match="cap"):
        RetryPolicy(2000, 1000)
