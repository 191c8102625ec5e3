"""Check a running jobq deployment from the outside, as a user would (the image test's step 6).

    python deploy/scripts/demo_check.py --api http://127.0.0.1:8000 \
        --worker http://127.0.0.1:9100 --worker http://127.0.0.1:9101

Waits for the API's /readyz and each worker's /healthz, enqueues a `noop`
job and a batch through the API, waits for them to succeed, checks the
attempt history and the registered workers, and scrapes /metrics of the API
and of every worker; with --leave-running, starts a long job for the caller
to stop the workers under. With --app-job (an app that is not the demo),
enqueues those jobs instead and waits for them to succeed, and checks that
the demo's `noop` is refused with the JOBQ_APP hint. Exits non-zero with a
message on the first failure. Standard library plus prometheus_client's
parser (a jobq dependency).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

BATCH = 20


def request(method: str, url: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def get_json(url: str) -> Any:
    status, _, body = request("GET", url)
    if status != 200:
        fail(f"GET {url}: {status} {body[:300]!r}")
    return json.loads(body)


def fail(message: str) -> None:
    sys.exit(f"demo_check: FAILED: {message}")


def wait(what: str, condition: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except (OSError, urllib.error.URLError):
            pass  # not listening yet
        if time.monotonic() - start > timeout:
            fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def samples(url: str, name: str) -> list[tuple[dict[str, str], float]]:
    status, _, body = request("GET", f"{url}/metrics")
    if status != 200:
        fail(f"GET {url}/metrics: {status}")
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    ]


def total(url: str, name: str, **labels: str) -> float:
    return sum(
        v for lab, v in samples(url, name) if all(lab.get(k) == x for k, x in labels.items())
    )


def post_job(api: str, path: str, body: Any) -> dict[str, Any]:
    status, headers, raw = request("POST", f"{api}{path}", body)
    if status != 201:
        fail(f"POST {path}: {status} {raw[:300]!r}")
    if path == "/v1/jobs" and "location" not in {k.lower() for k in headers}:
        fail("POST /v1/jobs: no Location header")
    result: dict[str, Any] = json.loads(raw)
    return result


def wait_status(api: str, ids: list[str], status: str, timeout: float) -> float:
    return wait(
        f"{len(ids)} job(s) {status}",
        lambda: all(get_json(f"{api}/v1/jobs/{i}")["status"] == status for i in ids),
        timeout,
    )


def answers_200(url: str) -> bool:
    return request("GET", url)[0] == 200


def check_ready(api: str, workers: list[str]) -> None:
    took = wait("API /readyz 200", functools.partial(answers_200, f"{api}/readyz"), 90)
    print(f"demo_check: API ready after {took:.1f} s")
    for worker in workers:
        url = f"{worker}/healthz"
        wait(f"{url} 200", functools.partial(answers_200, url), 60)
    wait(
        f"{len(workers)} workers registered",
        lambda: len(get_json(f"{api}/v1/workers")["workers"]) >= len(workers),
        30,
    )


def check_jobs(api: str) -> None:
    job = post_job(api, "/v1/jobs", {"kind": "noop", "payload": {}})
    took = wait_status(api, [job["id"]], "succeeded", 30)
    print(f"demo_check: job {job['id']} succeeded {took:.2f} s after enqueue")
    attempts = get_json(f"{api}/v1/jobs/{job['id']}/attempts")["attempts"]
    if [a["outcome"] for a in attempts] != ["succeeded"]:
        fail(f"attempts of {job['id']}: {attempts}")
    batch = post_job(api, "/v1/jobs/batch", {"jobs": [{"kind": "noop"} for _ in range(BATCH)]})
    ids = [j["id"] for j in batch["jobs"]]
    wait_status(api, ids, "succeeded", 30)
    holders = {get_json(f"{api}/v1/jobs/{i}/attempts")["attempts"][0]["worker_id"] for i in ids}
    print(f"demo_check: {BATCH} batch jobs succeeded, run by {len(holders)} worker(s)")


def check_metrics(api: str, workers: list[str]) -> None:
    enqueued = total(api, "jobq_jobs_enqueued_total", kind="noop")
    if enqueued < 1 + BATCH:
        fail(f"API /metrics: jobq_jobs_enqueued_total{{kind=noop}} = {enqueued}")
    if not samples(api, "jobq_http_requests_total"):
        fail("API /metrics: no jobq_http_requests_total")
    finished = [
        total(w, "jobq_jobs_finished_total", kind="noop", outcome="succeeded") for w in workers
    ]
    if workers and sum(finished) < 1 + BATCH:
        fail(f"workers' /metrics: jobq_jobs_finished_total{{noop, succeeded}} = {finished}")
    print(f"demo_check: metrics ok (enqueued {enqueued:g}; finished per worker {finished})")


def check_own_app(api: str, jobs: list[dict[str, Any]]) -> None:
    """An API and workers of an app that is not the demo: the demo's kinds are
    refused with the JOBQ_APP hint, the app's run."""
    status, _, raw = request("POST", f"{api}/v1/jobs", {"kind": "noop"})
    detail = json.loads(raw).get("detail", "") if status == 422 else ""
    if "unknown kind 'noop'" not in detail or "JOBQ_APP" not in detail:
        fail(f"POST noop to the app's API: expected 422 unknown kind with a JOBQ_APP hint: {raw!r}")
    ids = [post_job(api, "/v1/jobs", job)["id"] for job in jobs]
    took = wait_status(api, ids, "succeeded", 30)
    kinds = sorted({job["kind"] for job in jobs})
    print(f"demo_check: the app's kinds {kinds} succeeded {took:.2f} s after enqueue")


def leave_running(api: str, path: str) -> None:
    job = post_job(api, "/v1/jobs", {"kind": "sleep", "payload": {"seconds": 600}})
    wait_status(api, [job["id"]], "running", 10)
    with open(path, "w", encoding="utf-8") as f:
        f.write(job["id"])
    print(f"demo_check: job {job['id']} left running")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--worker", action="append", default=[])
    parser.add_argument(
        "--leave-running",
        metavar="FILE",
        help="at the end, start a long `sleep` job and write its id to FILE (for a stop test)",
    )
    parser.add_argument(
        "--app-job",
        metavar="JSON",
        action="append",
        type=json.loads,
        help='the app is not the demo: enqueue this job (e.g. {"kind": "greet"}), '
        "expect it to succeed, and the demo's noop to be refused",
    )
    args = parser.parse_args()
    api = args.api.rstrip("/")
    check_ready(api, args.worker)
    if args.app_job:
        check_own_app(api, args.app_job)
        return
    check_jobs(api)
    check_metrics(api, args.worker)
    if args.leave_running:
        leave_running(api, args.leave_running)


if __name__ == "__main__":
    main()
