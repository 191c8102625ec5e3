"""A 10,000-job workflow: how long it takes to accept, and its drain rate against the
plain drain of the same number of jobs, both in one run (interleaved) on one worker.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/workflows.py --nodes 10000 --shape layers --repeat 3

Shapes: `layers` (100 nodes a layer, each after two nodes of the layer before:
every finish resolves edges), `fan` (one root, the rest after it, one sink after
them all: every finish decrements the same sink row), `chains` (chains of 10).
Each run works in a fresh schema that it drops at the end. The drains run one
burst worker (`--concurrency`, default 10) over `noop` jobs; the plain drain's
enqueue and the workflow's accept are outside the drain's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from drain import burst_drain  # bench/, the scripts' folder

from jobq import Settings
from jobq.db.pool import resolve_database_url
from jobq.demo import build_app
from jobq.workflows import WorkflowBuilder

BATCH = 1000
WIDTH = 100


def build(builder: WorkflowBuilder, nodes: int, shape: str) -> None:
    for i in range(nodes):
        after: list[str] = []
        if shape == "layers" and i >= WIDTH:
            layer_start = (i // WIDTH - 1) * WIDTH
            after = [f"n{layer_start + i % WIDTH}", f"n{layer_start + (i + 1) % WIDTH}"]
        elif shape == "fan" and 0 < i < nodes - 1:
            after = ["n0"]
        elif shape == "fan" and i == nodes - 1:
            after = [f"n{j}" for j in range(1, nodes - 1)]
        elif shape == "chains" and i % 10:
            after = [f"n{i - 1}"]
        builder.add(f"n{i}", "noop", after=after)


async def run(
    kind: str, nodes: int, shape: str, concurrency: int, settings: Settings
) -> dict[str, float]:
    app = build_app(settings)
    client = await app.client()
    try:
        out: dict[str, float] = {}
        if kind == "plain":
            for start in range(0, nodes, BATCH):
                await app.enqueue_many([{"kind": "noop"}] * min(BATCH, nodes - start))
        else:
            began = time.perf_counter()
            builder = app.workflow("bench")
            build(builder, nodes, shape)
            built = time.perf_counter()
            await builder.submit()
            out["build_s"] = built - began
            out["submit_s"] = time.perf_counter() - built
        await client.queries.jobs_analyze(client.pool)
        out["rate"] = await burst_drain(app, client, concurrency, nodes)
        return out
    finally:
        await client.pool.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
        await app.close()


async def http_accept(nodes: int, shape: str, settings: Settings) -> float:
    """Seconds for POST /v1/workflows of the graph, answer (every node) included."""
    import httpx

    from jobq.api.app import create_app

    app = build_app(settings)
    client = await app.client()
    try:
        builder = app.workflow()
        build(builder, nodes, shape)
        body = {
            "nodes": [
                {"name": f"n{i}", "kind": "noop", "after": list(n.after)}
                for i, n in enumerate(builder.nodes)
            ]
        }
        transport = httpx.ASGITransport(app=create_app(app, client=client))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            began = time.perf_counter()
            response = await http.post("/v1/workflows", json=body, timeout=120)
            elapsed = time.perf_counter() - began
        assert response.status_code == 201, response.text[:500]
        return elapsed
    finally:
        await client.pool.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
        await app.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--shape", choices=["layers", "fan", "chains", "none"], default="layers")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--http", action="store_true", help="also time POST /v1/workflows (in process, ASGI)"
    )
    args = parser.parse_args()
    base = Settings.from_env()
    url = await resolve_database_url(base, start_embedded=True)
    results: dict[str, list[dict[str, float]]] = {"plain": [], "workflow": []}
    for i in range(args.repeat):
        # Alternate which goes first, so a drift of the machine's load hits both.
        order = ["plain", "workflow"] if i % 2 == 0 else ["workflow", "plain"]
        for kind in order:
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            settings = base.with_overrides(database_url=url, schema=schema)
            got = await run(kind, args.nodes, args.shape, args.concurrency, settings)
            results[kind].append(got)
            detail = " ".join(f"{k}={v:,.2f}" for k, v in got.items())
            print(f"{kind:8} run {i + 1}: {detail}", flush=True)
    if args.http:
        for i in range(args.repeat):
            schema = f"bench_{uuid.uuid4().hex[:12]}"
            settings = base.with_overrides(database_url=url, schema=schema)
            print(
                f"http     run {i + 1}: {await http_accept(args.nodes, args.shape, settings):.2f} s"
            )
    plain = statistics.median(r["rate"] for r in results["plain"])
    flow = statistics.median(r["rate"] for r in results["workflow"])
    submit = statistics.median(r["submit_s"] for r in results["workflow"])
    build_s = statistics.median(r["build_s"] for r in results["workflow"])
    print(
        f"nodes={args.nodes} shape={args.shape} concurrency={args.concurrency}: "
        f"accept (build {build_s:.2f} s + submit {submit:.2f} s), "
        f"drain plain {plain:,.0f} jobs/s, workflow {flow:,.0f} jobs/s, "
        f"ratio {flow / plain:.2f} (medians of {args.repeat})"
    )


if __name__ == "__main__":
    asyncio.run(main())
