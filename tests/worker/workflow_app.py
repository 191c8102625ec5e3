"""For `jobq worker --app tests.worker.workflow_app:app` (settings from the environment):
the kinds the workflow process tests run."""

from __future__ import annotations

import asyncio
from typing import Any

from jobq import App, JobContext

app = App()


@app.task("step", max_attempts=5)
async def step(ctx: JobContext, payload: dict[str, Any]) -> Any:
    """Returns payload["value"] after payload["seconds"] (default 0)."""
    await asyncio.sleep(float(payload.get("seconds", 0)))
    return payload.get("value")


@app.task("summary")
async def summary(ctx: JobContext, payload: dict[str, Any]) -> Any:
    """A batch callback or a join: what its dependencies ended with."""
    found = await ctx.dependency_results()
    statuses = [d.status.value for d in found.items]
    return {
        "members": len(found),
        "succeeded": statuses.count("succeeded"),
        "results": {name: d.result for name, d in sorted(found.by_name.items())},
    }
