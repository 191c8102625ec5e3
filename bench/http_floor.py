"""The web stack's own CPU per request: a FastAPI app that does nothing, on the
server jobq serve runs (uvicorn, uvloop, httptools), loaded by wrk as
bench/http_wrk.py loads `jobq serve`.

    .venv/bin/python bench/http_floor.py --connections 64 --seconds 10 --rounds 2

Its one route, `POST /v1/jobs`, reads the body into a pydantic model as jobq's
does and answers 201 with a job's JSON made once at start: no validation of
jobq's, no database, no encoding. Whatever `jobq serve` spends per request
beyond this is jobq's (issue 16 target 3 compares the two). Prints requests/s
and server CPU per request (utime + stime of /proc/PID/stat) per round, then
the medians.
"""

# No `from __future__ import annotations`: FastAPI reads the route's annotations,
# and the body model is local to floor_app().
import argparse
import asyncio
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import free_port
from http_wrk import load

ROOT = Path(__file__).resolve().parent.parent


def floor_app() -> Any:
    from fastapi import FastAPI, Response
    from pydantic import BaseModel, Field

    class Body(BaseModel):
        kind: str
        payload: dict[str, Any] = Field(default_factory=dict)

    answer = json.dumps(
        {
            "id": "01934a5e-0000-7000-8000-000000000000",
            "queue": "default",
            "kind": "noop",
            "payload": {},
            "metadata": {},
            "status": "queued",
            "priority": 0,
            "attempts": 0,
            "max_attempts": 25,
            "run_at": "2026-12-04T00:00:00.000000Z",
            "idempotency_key": None,
            "cancel_requested": False,
            "last_error": None,
            "locked_by": None,
            "created_at": "2026-12-04T00:00:00.000000Z",
            "updated_at": "2026-12-04T00:00:00.000000Z",
            "started_at": None,
            "finished_at": None,
            "result": None,
            "progress": None,
            "progress_details": None,
            "progress_at": None,
        }
    ).encode()
    app = FastAPI()

    @app.post("/v1/jobs", status_code=201)
    async def create_job(body: Body) -> Response:
        return Response(answer, 201, media_type="application/json")

    @app.get("/readyz")
    async def ready() -> Response:
        return Response(b"{}", media_type="application/json")

    return app


def serve(port: int) -> None:
    import uvicorn

    uvicorn.run(
        floor_app(),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


async def run(connections: int, seconds: int) -> tuple[float, float]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(port), cwd=ROOT
    )
    rps, cpu, _latency, non_201 = await load(server, port, connections, seconds)
    if non_201:
        raise SystemExit(f"{non_201} answers were not 201")
    return rps, cpu


async def main(connections: int, seconds: int, rounds: int) -> None:
    results = []
    for _ in range(rounds):
        rps, cpu = await run(connections, seconds)
        results.append((rps, cpu))
        print(f"floor app: {rps:,.0f} req/s, {cpu:.0f} µs server CPU/request", flush=True)
    rps = statistics.median(r[0] for r in results)
    cpu = statistics.median(r[1] for r in results)
    print(f"median floor app: {rps:,.0f} req/s, {cpu:.0f} µs CPU/request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    else:
        if shutil.which("wrk") is None:
            parser.error("needs wrk (apt-get install wrk)")
        asyncio.run(main(args.connections, args.seconds, args.rounds))
