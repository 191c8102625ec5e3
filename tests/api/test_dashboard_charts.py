"""The overview's throughput charts (dashboard/static/charts.js) in headless Chromium:
rollup rows of a known shape are written straight into the server's schema (it runs
no workers, so no leader writes beside them), and the SVG's bars and lines must say
the same: counts, heights in proportion, the 1h/24h toggle and the queue picker."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from playwright.sync_api import Locator, Page, expect

from jobq.stats import MINUTE, floor_to
from tests.api.test_dashboard_browser import (
    Server,
    browser,
    page,
    playwright,
    run_async,
    server,
    unique_queue,
)

__all__ = ["browser", "page", "playwright", "server"]  # fixtures, imported for pytest

PLOT_HEIGHT = 160 - 10 - 22  # charts.js: HEIGHT - TOP - BOTTOM
# (minutes ago, succeeded, retried, failed_permanent, cancelled, waiting, running)
SHAPE = [
    (10, 6, 2, 1, 1, 4, 2),
    (5, 3, 0, 0, 0, 8, 1),
]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def write_rollup(server: Server, queue: str) -> datetime:
    """SHAPE's minutes for `queue` and for all queues (queue ''), counted and
    sampled; answers the database's current minute."""

    async def write() -> datetime:
        conn = await asyncpg.connect(server.settings.database_url)
        s = f'"{server.settings.schema}"'
        try:
            now = floor_to(await conn.fetchval("SELECT now()"), MINUTE)
            for ago, *counts in SHAPE:
                for name in (queue, ""):
                    await conn.execute(
                        f"""INSERT INTO {s}.stats_minutes (queue, minute, succeeded, retried,
                               failed_permanent, cancelled, waiting, running)
                            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                            ON CONFLICT (queue, minute) DO UPDATE
                            SET succeeded = excluded.succeeded, retried = excluded.retried,
                                failed_permanent = excluded.failed_permanent,
                                cancelled = excluded.cancelled, waiting = excluded.waiting,
                                running = excluded.running""",
                        name,
                        now - ago * MINUTE,
                        *counts,
                    )
            await conn.execute(
                f"UPDATE {s}.stats_rollup SET counted_through = $1, sampled_minute = $1",
                now,
            )
            return now
        finally:
            await conn.close()

    return run_async(write)


def bar(page: Page, start: datetime, outcome: str) -> Locator:
    return page.locator(
        f'#charts g.bucket[data-start="{iso(start)}"] rect[data-outcome="{outcome}"]'
    )


def test_the_charts_draw_the_rollup_of_a_queue_and_toggle_to_a_day(
    server: Server, page: Page
) -> None:
    queue = unique_queue()
    server.api("POST", f"/v1/queues/{queue}/resume")  # a queue the picker lists
    now = write_rollup(server, queue)
    page.goto(server.base_url + "/")
    expect(page.locator("#live")).to_contain_text("live")
    page.locator("#chart-queue").select_option(queue)
    body = page.locator("#charts .charts-body")
    expect(body).to_have_attribute("data-queue", queue)
    expect(body).to_have_attribute("data-window", "1h")

    bars = page.locator("#charts svg.chart").first
    expect(bars).to_have_attribute("role", "img")
    expect(bars).to_have_attribute("data-max", "10")  # the tallest bar, 10 jobs: a round 10
    title_id = (bars.get_attribute("aria-labelledby") or "").split()
    assert len(title_id) == 2
    expect(page.locator(f"#{title_id[0]}")).to_have_text("Jobs finished per minute, by outcome")
    expect(page.locator(f"#{title_id[1]}")).to_contain_text(
        "9 succeeded, 2 retried, 1 failed, 1 cancelled"
    )
    expect(page.locator("#charts g.bucket")).to_have_count(60)
    # The current minute is not counted yet: an empty bucket, said so on hover.
    expect(page.locator(f'#charts g.bucket.pending[data-start="{iso(now)}"]')).to_have_count(1)

    heights: dict[tuple[int, str], float] = {}
    for ago, *counts in SHAPE:
        start = now - ago * MINUTE
        bucket = page.locator(f'#charts g.bucket[data-start="{iso(start)}"]')
        expect(bucket.locator("title")).to_contain_text(f"{counts[0]} succeeded")
        for outcome, count in zip(
            ("succeeded", "retried", "failed_permanent", "cancelled"), counts, strict=False
        ):
            rect = bar(page, start, outcome)
            expect(rect).to_have_attribute("data-count", str(count))
            heights[(ago, outcome)] = float(rect.get_attribute("height") or "nan")
    # Heights in proportion to the counts, on an axis whose top is 10 jobs.
    assert heights[(10, "succeeded")] == pytest.approx(PLOT_HEIGHT * 6 / 10)
    assert heights[(5, "succeeded")] == pytest.approx(heights[(10, "succeeded")] / 2)
    assert heights[(10, "retried")] == pytest.approx(PLOT_HEIGHT * 2 / 10)
    assert heights[(5, "retried")] == 0
    assert sum(h for (ago, _), h in heights.items() if ago == 10) == pytest.approx(PLOT_HEIGHT)

    depth = page.locator("#charts svg.chart").nth(1)
    expect(depth).to_have_attribute("data-max", "10")  # peak 8 waiting
    for ago, *counts in SHAPE:
        hover = depth.locator(f'rect.hover[data-start="{iso(now - ago * MINUTE)}"]')
        expect(hover).to_have_attribute("data-waiting", str(counts[4]))
        expect(hover).to_have_attribute("data-running", str(counts[5]))
    expect(depth.locator("polyline.line-waiting, circle.line-waiting")).not_to_have_count(0)

    # A day: 96 buckets of 15 minutes, the same jobs in them.
    page.get_by_role("button", name="24h").click()
    expect(page.get_by_role("button", name="24h")).to_have_attribute("aria-pressed", "true")
    expect(body).to_have_attribute("data-window", "24h")
    expect(page.locator("#charts svg.chart").first.locator("g.bucket")).to_have_count(96)
    counts_shown = page.locator('#charts g.bucket rect[data-outcome="succeeded"]').evaluate_all(
        "rects => rects.reduce((t, r) => t + Number(r.dataset.count), 0)"
    )
    assert counts_shown == 9

    # Back to an hour, and every queue: the '' rows hold the same minutes here.
    page.get_by_role("button", name="1h").click()
    expect(body).to_have_attribute("data-window", "1h")
    expect(page.get_by_role("button", name="24h")).to_have_attribute("aria-pressed", "false")
    page.locator("#chart-queue").select_option("")
    expect(body).to_have_attribute("data-queue", "")
    expect(bar(page, now - 10 * MINUTE, "succeeded")).to_have_attribute("data-count", "6")
