"""The tasks of an app that is not jobq's demo, run from an image of its own.

    docker build -t greeter:1 --build-arg JOBQ_IMAGE=jobq:latest examples/image_app
    docker run -e DATABASE_URL=... greeter:1 worker      # JOBQ_APP=greeter.tasks:app is set

`deploy/scripts/image-test.sh` builds that image, runs an API and a worker
from it, and enqueues both kinds through the API (docs/DEPLOY.md, "Deploy
your own app").
"""

from __future__ import annotations

import logging
from typing import Any

import jobq

app = jobq.App()
log = logging.getLogger("greeter")


@app.task("greet")
async def greet(ctx: jobq.JobContext, payload: dict[str, Any]) -> None:
    """Async: a kind that jobq's demo app does not have."""
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("greet needs a non-empty 'name'")
    log.info("hello, %s (job %s)", name, ctx.job.id)


@app.task("count_words", max_attempts=3)
def count_words(ctx: jobq.JobContext, payload: dict[str, Any]) -> None:
    """Sync: runs in the worker's thread pool."""
    words = len(str(payload.get("text", "")).split())
    log.info("%d words (job %s)", words, ctx.job.id)
