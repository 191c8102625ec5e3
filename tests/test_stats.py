"""The rollup's pure rules (jobq.stats): which minutes a run counts, and buckets."""

from __future__ import annotations

from datetime import timedelta

from jobq.stats import MINUTE, MinuteRow, bucket_minutes, plan_rollup
from tests.support import utc


def test_a_minute_is_counted_once_it_has_settled() -> None:
    counted = utc("2030-01-01T12:00:00Z")
    early = plan_rollup(utc("2030-01-01T12:01:10Z"), counted, utc("2030-01-01T12:01:00Z"))
    assert early.count_from == early.count_to == counted  # 12:00 not settled yet
    assert early.sample_minute is None  # 12:01 already sampled
    later = plan_rollup(utc("2030-01-01T12:01:20Z"), counted, utc("2030-01-01T12:00:00Z"))
    assert (later.count_from, later.count_to) == (counted, counted + MINUTE)
    assert later.sample_minute == utc("2030-01-01T12:01:00Z")


def test_a_run_counts_at_most_max_minutes_and_backfills_a_day_at_most() -> None:
    now = utc("2030-01-02T12:00:30Z")
    first = plan_rollup(now, None, None, max_minutes=60)
    assert first.count_from == utc("2030-01-01T12:00:00Z")
    assert first.count_to == first.count_from + timedelta(hours=1)
    stale = plan_rollup(now, utc("2029-12-01T00:00:00Z"), None)
    assert stale.count_from == utc("2030-01-01T12:00:00Z")


def test_buckets_sum_counted_minutes_and_keep_the_largest_depth() -> None:
    now = utc("2030-01-01T12:20:00Z")

    def row(minute: str, succeeded: int, waiting: int | None) -> MinuteRow:
        return MinuteRow(utc(minute), succeeded, 0, 0, 0, waiting, None)

    rows = [
        row("2030-01-01T12:00:00Z", 2, 5),
        row("2030-01-01T12:14:00Z", 3, 9),
        row("2030-01-01T12:15:00Z", 4, 1),  # not counted yet: its count is left out
    ]
    day = bucket_minutes("24h", None, now, utc("2030-01-01T12:15:00Z"), rows)
    by_start = {b.start: b for b in day.buckets}
    assert len(day.buckets) == 96 and day.end == utc("2030-01-01T12:30:00Z")
    assert (
        by_start[utc("2030-01-01T12:00:00Z")].succeeded,
        by_start[utc("2030-01-01T12:00:00Z")].waiting,
    ) == (5, 9)
    assert by_start[utc("2030-01-01T12:15:00Z")].succeeded is None
    assert by_start[utc("2030-01-01T12:15:00Z")].waiting == 1
    assert by_start[utc("2030-01-01T11:45:00Z")].succeeded == 0
