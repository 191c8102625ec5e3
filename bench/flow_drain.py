"""The cost of flow control on the drain, its variants interleaved in one run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
      .venv/bin/python bench/flow_drain.py --jobs 20000 --concurrency 10 --rounds 3 \
      [--variants none,keys,fair,bare]

Each round drains `jobs` noop jobs with one in-process burst worker, once per
variant, in a fresh schema each (ANALYZEd after enqueueing, untimed):

- `none`: no limit configured, no fairness key; the worker claims with the
  plain statement (and probes every 2 s whether it should not);
- `keyed`: the same jobs as `keys` (each with its concurrency key), and no
  limit configured: the plain claim. keys / keyed is what the limit costs the
  same jobs; keyed / none what the keys alone cost (an index entry per start);
- `keys`: the jobs spread over `--keys` concurrency keys (k0, k1, ...) and a
  limit of `--per-key` running jobs per key (`k%`); the worker claims through
  job_flow_pick;
- `fair`: the jobs spread over `--keys` fairness keys; the worker claims in the
  fair order (job_fair_candidates);
- `bare`: as `none`, with the producer's probe for limits and fairness keys
  taken out (it answers "plain" without asking): none / bare is what the
  probe costs a worker that uses neither.

Prints each drain's jobs/s and, per round, each variant / none; then the
medians. The machine may be shared: compare the ratios, measured minutes apart.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import uuid

from drain import burst_drain  # bench/, the scripts' folder

from jobq import FlowLimitRequest, JobRequest, Settings
from jobq.db.pool import resolve_database_url
from jobq.db.records import ClaimPaths
from jobq.demo import build_app
from jobq.worker.producer import Producer

BATCH = 1000


VARIANTS = ("none", "keyed", "keys", "fair", "bare")


async def _plain_paths(self: Producer) -> ClaimPaths:
    return ClaimPaths(limited=False, fair=False)


async def drain(
    settings: Settings, variant: str, jobs: int, concurrency: int, keys: int, per_key: int
) -> float:
    app = build_app(settings)
    client = await app.client()
    probe = Producer._claim_paths
    try:
        if variant == "keys":
            await client.set_limit("bench", FlowLimitRequest(key_pattern="k%", max_running=per_key))
        for start in range(0, jobs, BATCH):
            count = min(BATCH, jobs - start)
            await client.enqueue_many([request(variant, start + i, keys) for i in range(count)])
        await client.queries.jobs_analyze(client.pool)
        if variant == "bare":
            Producer._claim_paths = _plain_paths  # type: ignore[method-assign]
        return await burst_drain(app, client, concurrency, jobs)
    finally:
        Producer._claim_paths = probe  # type: ignore[method-assign]
        await client.pool.execute(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE')
        await app.close()


def request(variant: str, i: int, keys: int) -> JobRequest:
    key = f"k{i % keys}"
    if variant in ("keys", "keyed"):
        return JobRequest(kind="noop", concurrency_key=key)
    if variant == "fair":
        return JobRequest(kind="noop", fairness_key=key)
    return JobRequest(kind="noop")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--per-key", type=int, default=1)
    parser.add_argument(
        "--variants", default="none,keys", help=f"comma-separated, of {', '.join(VARIANTS)}"
    )
    args = parser.parse_args()
    variants = ["none"] + [v for v in args.variants.split(",") if v != "none"]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    base = Settings.from_env()
    url = await resolve_database_url(base, start_embedded=True)
    rates: dict[str, list[float]] = {v: [] for v in variants}
    ratios: dict[str, list[float]] = {v: [] for v in variants[1:]}
    limit_cost: list[float] = []  # keys / keyed: the limit's cost on the same jobs
    for round_ in range(args.rounds):
        for variant in variants:
            settings = base.with_overrides(
                database_url=url, schema=f"bench_{uuid.uuid4().hex[:12]}"
            )
            rate = await drain(
                settings, variant, args.jobs, args.concurrency, args.keys, args.per_key
            )
            rates[variant].append(rate)
            print(f"round {round_ + 1} {variant}: {rate:,.0f} jobs/s", flush=True)
        for variant in variants[1:]:
            ratios[variant].append(rates[variant][-1] / rates["none"][-1])
            print(f"round {round_ + 1} {variant}/none: {ratios[variant][-1]:.2f}", flush=True)
        if "keys" in rates and "keyed" in rates:
            limit_cost.append(rates["keys"][-1] / rates["keyed"][-1])
            print(f"round {round_ + 1} keys/keyed: {limit_cost[-1]:.2f}", flush=True)
    medians = ", ".join(f"{v} {statistics.median(r):,.0f} jobs/s" for v, r in rates.items())
    print(f"median ({args.keys} keys, {args.per_key} per key for `keys`): {medians}")
    for variant, values in ratios.items():
        print(f"median {variant}/none: {statistics.median(values):.2f}")
    if limit_cost:
        print(f"median keys/keyed: {statistics.median(limit_cost):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
