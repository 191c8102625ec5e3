"""Jobs waiting for dependencies are counted apart: jobq_queue_jobs{status="pending"}."""

from __future__ import annotations

from jobq import App
from jobq.client import Client
from jobq.metrics import Metrics
from tests.test_metrics import samples


async def test_pending_jobs_are_a_status_of_the_queue_gauge(app: App, client: Client) -> None:
    metrics = Metrics()
    try:
        first = await app.enqueue("script", queue="wq")
        await app.enqueue("script", queue="wq", depends_on=[first.id])
        await app.enqueue("script", queue="wq", depends_on=[first.id])
        got = samples((await metrics.render(client)).decode())
        pending = frozenset({("queue", "wq"), ("status", "pending")})
        queued = frozenset({("queue", "wq"), ("status", "queued")})
        assert got[("jobq_queue_jobs", pending)] == 2
        assert got[("jobq_queue_jobs", queued)] == 1
    finally:
        metrics.close()
