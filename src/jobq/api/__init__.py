"""jobq's HTTP API (SPEC §2): a FastAPI app over the same `Client` the library uses.

Modules:
- app.py            create_app(): routers, middleware, the OpenAPI document
- routes_jobs.py    /v1/jobs...          routes_queues.py  /v1/queues, /v1/workers
- routes_events.py  /v1/jobs/{id}/events (server-sent events of a job's changes)
- prefer.py         `Prefer: wait=N` (RFC 7240) of GET and POST /v1/jobs
- routes_system.py  /healthz, /readyz, /metrics, /docs (the dashboard at / is jobq.dashboard)
- auth.py           bearer tokens and scopes (ASGI middleware)
- middleware.py     HTTP metrics events, request ids and 500s, the body limit
- problems.py       RFC 9457 problem+json for every error (the catalogue)
- models.py         documented request and response shapes
- dependencies.py   the client dependency and documented error responses
- server.py         serve(): uvicorn + the worker runtime in one process
"""

from jobq.api.app import create_app

__all__ = ["create_app"]
