"""Apps for `jobq worker --app tests.worker.flow_support:...` in the flow-control tests.

Each handler returns when it started and ended (the host's clock, seconds): the
tests check overlaps from these as well as from the attempt history."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from jobq import App, JobContext


async def keyed(ctx: JobContext, payload: dict[str, Any]) -> dict[str, float]:
    started = time.time()
    await asyncio.sleep(float(payload.get("seconds", 0.01)))
    return {"started": started, "finished": time.time()}


async def paced(ctx: JobContext, payload: dict[str, Any]) -> None:
    return None


def register_flow_tasks(app: App) -> App:
    app.register("keyed", keyed, concurrency_key="tenant")
    app.register("paced", paced)
    app.register("fair", paced, fairness_key="tenant")
    return app


flow_app = register_flow_tasks(App())
