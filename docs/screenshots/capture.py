"""Take the dashboard screenshots in this folder, with real data.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python docs/screenshots/capture.py [--only-workflow] [--only-limits]

Starts `jobq serve` (API, dashboard and demo workers) on a fresh schema, feeds
it a mix of demo jobs through the public API (some fail and retry, some fail
for good, some run long, one is cancelled while running, one queue is
paused, three are scheduled for later, the job that failed for good is
retried by hand and fails again; the long runners report their progress;
four schedules, one paused, one firing every 10 s), waits for the workers to
get through them,
waits for the workers' maintenance leader to count the minute they finished
in (the overview's throughput charts: a minute is counted about 15 s after
it ends, so this takes up to a minute and a half),
and photographs each page in headless Debian chromium (and the job list on a
390 px phone; the Limits page last, once it has added three flow limits and
jobs for them to hold back). Then a second server with API tokens shows the
token prompt. The schema is dropped at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from playwright.sync_api import Page, expect, sync_playwright

from jobq.worker.producer import LIMITS_REFRESH_SECONDS

HERE = Path(__file__).resolve().parent
SCHEDULED = 3  # jobs seed() schedules for later: they stay queued
ROOT = HERE.parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(
    schema: str, *extra: str, tokens: str | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "JOBQ_SCHEMA": schema,
        "JOBQ_RETRY_BASE_MS": "300",
        "JOBQ_RETRY_CAP_MS": "1500",
    }
    if tokens:
        env["JOBQ_API_TOKENS"] = tokens
    process = subprocess.Popen(
        [sys.executable, "-m", "jobq", "serve", "--port", str(port), *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: ready(base), 30)
    return process, base


def ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the demo to get there")
        time.sleep(0.2)


def post(base: str, path: str, body: Any = None) -> Any:
    response = httpx.post(f"{base}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def get(base: str, path: str) -> Any:
    response = httpx.get(f"{base}{path}", timeout=30)
    response.raise_for_status()
    return response.json()


def seed(base: str) -> dict[str, str]:
    jobs: list[dict[str, Any]] = []
    jobs += [
        {
            "kind": "send_email",
            "queue": "emails",
            "payload": {"to": f"user{n}@example.com", "template": "welcome"},
        }
        for n in range(60)
    ]
    jobs += [
        {
            "kind": "resize_image",
            "queue": "images",
            "payload": {"image": f"s3://uploads/{n}.jpg", "width": 640},
        }
        for n in range(30)
    ]
    jobs += [
        {
            "kind": "webhook_delivery",
            "queue": "webhooks",
            "payload": {
                "url": "https://hooks.example.com/orders",
                "event": "order.paid",
                "order": n,
            },
        }
        for n in range(25)
    ]
    jobs += [
        {"kind": "summarize_text", "queue": "reports", "payload": {"document": f"doc-{n}"}}
        for n in range(12)
    ]
    post(base, "/v1/jobs/batch", {"jobs": jobs})
    # Fails every attempt: ends failed_permanent with three recorded errors.
    doomed = post(
        base,
        "/v1/jobs",
        {
            "kind": "sleep",
            "queue": "webhooks",
            "max_attempts": 3,
            "payload": {"seconds": 0.1, "fail_attempts": 10},
        },
    )
    # Long runners: the workers show jobs in flight; one is cancelled mid-run; the
    # second, shorter, shows a bar that has moved by the time it is photographed.
    long = [
        post(base, "/v1/jobs", {"kind": "sleep", "queue": "images", "payload": {"seconds": s}})
        for s in (600, 100, 600)
    ]
    # Scheduled: queued, due later.
    soon = time.time() + 2 * 3600
    tomorrow = time.time() + 26 * 3600
    for run_at, to in [
        ("2030-01-01T09:00:00Z", "newyear@example.com"),
        (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(soon)), "reminder@example.com"),
        (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tomorrow)), "digest@example.com"),
    ]:
        post(
            base,
            "/v1/jobs",
            {"kind": "send_email", "queue": "emails", "run_at": run_at, "payload": {"to": to}},
        )
    return {"doomed": doomed["id"], "cancel": long[0]["id"], "running": long[1]["id"]}


def seed_schedules(base: str) -> None:
    for schedule in [
        {
            "name": "weekday-digest",
            "kind": "send_email",
            "queue": "emails",
            "cron": "0 8 * * 1-5",
            "timezone": "Europe/Berlin",
            "payload": {"template": "digest"},
        },
        {
            "name": "thumbnail-sweep",
            "kind": "resize_image",
            "queue": "images",
            "every": "10s",
            "payload": {"image": "s3://uploads/pending", "width": 320},
        },
        {
            "name": "nightly-report",
            "kind": "summarize_text",
            "queue": "reports",
            "cron": "30 2 * * *",
            "timezone": "Europe/Berlin",
            "missed": "all",
        },
        {
            "name": "partner-webhooks",
            "kind": "webhook_delivery",
            "queue": "webhooks",
            "every": "15m",
            "paused": True,
            "payload": {"url": "https://hooks.example.com/sync"},
        },
    ]:
        post(base, "/v1/schedules", schedule)
    wait_until(lambda: get(base, "/v1/schedules/thumbnail-sweep")["last_fire_at"] is not None, 30)


def settle(base: str, ids: dict[str, str]) -> None:
    def counts() -> dict[str, int]:
        total: dict[str, int] = {}
        for q in get(base, "/v1/queues")["queues"]:
            for state, n in q["counts"].items():
                total[state] = total.get(state, 0) + n
        return total

    doomed = f"/v1/jobs/{ids['doomed']}"
    wait_until(lambda: get(base, doomed)["status"] == "failed_permanent", 60)
    # Retried by hand, fails three times more: the timeline marks the reset.
    post(base, f"{doomed}/retry")
    wait_until(
        lambda: (
            get(base, doomed)["status"] == "failed_permanent"
            and len(get(base, f"{doomed}/attempts")["attempts"]) == 6
        ),
        60,
    )
    wait_until(lambda: get(base, f"/v1/jobs/{ids['cancel']}")["status"] == "running", 30)
    post(base, f"/v1/jobs/{ids['cancel']}/cancel")
    wait_until(lambda: get(base, f"/v1/jobs/{ids['cancel']}")["status"] == "cancelled", 30)
    wait_until(
        lambda: counts().get("retrying", 0) == 0 and counts().get("queued", 0) <= SCHEDULED, 60
    )
    # The long runners report progress; a heartbeat (every 10 s) writes it.
    wait_until(lambda: get(base, f"/v1/jobs/{ids['running']}")["progress"] is not None, 30)
    # A paused queue with work waiting, for the overview.
    post(base, "/v1/queues/reports/pause")
    post(
        base,
        "/v1/jobs/batch",
        {
            "jobs": [
                {"kind": "summarize_text", "queue": "reports", "payload": {"document": f"late-{n}"}}
                for n in range(7)
            ]
        },
    )
    post(
        base,
        "/v1/jobs/batch",
        {
            "jobs": [
                {"kind": "send_email", "queue": "emails", "payload": {"to": f"late{n}@example.com"}}
                for n in range(4)
            ]
        },
    )


def wait_for_charts(base: str) -> None:
    """Until the rollup has counted the current minute: the charts then have bars."""
    this_minute_ends = get(base, "/v1/stats/throughput")["end"]
    wait_until(
        lambda: (get(base, "/v1/stats/throughput")["counted_through"] or "") >= this_minute_ends,
        150,
    )


def retried_job(base: str) -> str:
    """A send_email that failed once, then succeeded: a two-step timeline."""
    page = get(base, "/v1/jobs?kind=send_email&status=succeeded&limit=200")
    for job in page["jobs"]:
        if job["last_error"]:
            return str(job["id"])
    raise SystemExit("no send_email job failed once this time; run again")


def seed_workflow(base: str) -> str:
    """A workflow caught mid-way: extract and two resizes done, the third
    running, what waits for it pending."""
    nodes = [
        {"name": "extract", "kind": "noop"},
        *(
            {
                "name": f"resize-{i}",
                "kind": "sleep",
                "payload": {"seconds": s},
                "after": ["extract"],
            }
            for i, s in ((1, 0.2), (2, 0.3), (3, 120))
        ),
        {"name": "thumbnails", "kind": "noop", "after": ["resize-1", "resize-2"]},
        {"name": "upload", "kind": "noop", "after": ["resize-3", "thumbnails"]},
        {"name": "report", "kind": "noop", "after": ["upload"], "on_dependency_failure": "run"},
    ]
    workflow = post(base, "/v1/workflows", {"name": "nightly-images", "nodes": nodes})
    wid = str(workflow["id"])
    wait_until(lambda: get(base, f"/v1/workflows/{wid}")["counts"].get("succeeded") == 4, 30)
    return wid


def put(base: str, path: str, body: Any) -> Any:
    response = httpx.put(f"{base}{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def seed_limits(base: str) -> None:
    """Three limits in use: a rate window filled by quick webhooks (the rest wait for
    a start), a per-tenant bound with one long import running per tenant and the
    rest of acme's held back, and a bound over every queue. Two slots suffice: the
    quick jobs go first, then a long one per tenant."""
    put(base, "/v1/limits/webhook-rate", {"queue": "hooks", "rate": 5, "period_seconds": 60})
    put(base, "/v1/limits/all-queues", {"max_running": 50})
    put(
        base,
        "/v1/limits/tenant-imports",
        {"queue": "imports", "key_pattern": "tenant:%", "max_running": 1},
    )
    # Due once every worker has seen the limits (they look every LIMITS_REFRESH_SECONDS):
    # a worker that has not claims without them.
    due = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + LIMITS_REFRESH_SECONDS + 1))
    hooks = [
        {
            "kind": "webhook_delivery",
            "queue": "hooks",
            "run_at": due,
            "payload": {"event": "order.paid", "order": n},
        }
        for n in range(12)
    ]
    post(base, "/v1/jobs/batch", {"jobs": hooks})

    def use(name: str) -> dict[str, Any]:
        return next(u for u in get(base, "/v1/limits")["limits"] if u["name"] == name)

    wait_until(lambda: use("webhook-rate")["recent_starts"] == 5, 60)
    imports = [
        {
            "kind": "sleep",
            "queue": "imports",
            "concurrency_key": f"tenant:{tenant}",
            "payload": {"seconds": 300, "tenant": tenant},
        }
        for tenant in ["acme"] * 4 + ["globex"]
    ]
    post(base, "/v1/jobs/batch", {"jobs": imports})
    wait_until(lambda: use("tenant-imports")["running"] == 2, 60)


def shoot(page: Page, base: str, fragment: str, name: str, ready_selector: str) -> None:
    page.goto(f"{base}/{fragment}")
    page.wait_for_selector(ready_selector)
    # expect(), not wait_for_function: the page's CSP forbids evaluating strings.
    expect(page.locator("#live")).to_contain_text("live")
    page.screenshot(path=str(HERE / name), full_page=True)
    print("wrote", HERE / name)


def shoot_workflow(page: Page, base: str) -> None:
    wid = seed_workflow(base)
    shoot(page, base, f"#/workflows/{wid}", "workflow.png", "#workflow-graph")


def shoot_limits(page: Page, base: str) -> None:
    seed_limits(base)
    shoot(page, base, "#/limits", "limits.png", '#limits tr[data-limit="tenant-imports"] meter')


# `--only-…`: a page on a fresh demo, without the minute and a half of the full run.
ONLY: dict[str, Callable[[Page, str], None]] = {
    "--only-workflow": shoot_workflow,
    "--only-limits": shoot_limits,
}


def main() -> None:
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit("set DATABASE_URL (a PostgreSQL this script may add a schema to)")
    schema = f"shots_{uuid.uuid4().hex[:8]}"
    process, base = serve(schema, "--concurrency", "4")
    secured = None
    only = [ONLY[arg] for arg in sys.argv[1:] if arg in ONLY]
    if only:  # these pages, leaving the other shots as they are
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
                )
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                for take in only:
                    take(page, base)
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=40)
            asyncio.run(drop(os.environ["DATABASE_URL"], schema))
        return
    try:
        ids = seed(base)
        settle(base, ids)
        seed_schedules(base)
        wait_for_charts(base)
        tokens = json.dumps(
            [
                {
                    "token": "demo-admin-0123456789abcdef0123456789",
                    "scopes": ["read", "write", "admin"],
                }
            ]
        )
        secured, secured_base = serve(schema, "--no-workers", tokens=tokens)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            shoot(page, base, "#/", "overview.png", "#workers tbody tr td.mono")
            shoot(page, base, "#/jobs?limit=25", "jobs.png", "#jobs tbody tr[data-job-id]")
            shoot(
                page,
                base,
                "#/jobs?status=failed_permanent&status=cancelled",
                "jobs-filtered.png",
                "#jobs tbody tr[data-job-id]",
            )
            shoot(
                page,
                base,
                "#/jobs?status=scheduled&status=running",
                "jobs-scheduled.png",
                "#jobs tbody tr[data-job-id]",
            )
            shoot(page, base, "#/schedules", "schedules.png", "#schedules tr[data-schedule] time")
            shoot_workflow(page, base)
            shoot(page, base, f"#/jobs/{ids['doomed']}", "job-failed.png", ".retry-mark")
            shoot(page, base, f"#/jobs/{ids['running']}", "job-running.png", "#job-progress")
            done = get(base, "/v1/jobs?status=succeeded&kind=resize_image&limit=1")["jobs"][0]
            shoot(page, base, f"#/jobs/{done['id']}", "job-succeeded.png", "#result-title")
            shoot(page, base, f"#/jobs/{retried_job(base)}", "job-retried.png", "#attempts li")
            page.goto(f"{base}/#/jobs/{ids['cancel']}")
            page.wait_for_selector("#attempts li")
            page.get_by_role("button", name="Retry job").click()
            page.screenshot(path=str(HERE / "confirm.png"))
            print("wrote", HERE / "confirm.png")
            page.locator("#confirm-dialog").get_by_role("button", name="Keep it").click()
            # Bulk: two queued jobs selected, "cancel selected" asks first.
            page.goto(f"{base}/#/jobs?queue=reports&limit=25")
            boxes = page.locator("#jobs td.select input:not(:disabled)")
            boxes.nth(0).check()
            boxes.nth(1).check()
            page.locator("#cancel-selected").click()
            page.screenshot(path=str(HERE / "confirm-bulk.png"))
            print("wrote", HERE / "confirm-bulk.png")
            page.locator("#confirm-dialog").get_by_role("button", name="Keep it").click()
            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            shoot(phone, base, "#/jobs?limit=25", "phone-jobs.png", "#jobs tbody tr[data-job-id]")
            shoot_limits(page, base)
            fresh = browser.new_page(viewport={"width": 1360, "height": 700})
            fresh.goto(f"{secured_base}/")
            fresh.wait_for_selector("#token-dialog[open]")
            fresh.screenshot(path=str(HERE / "token.png"))
            print("wrote", HERE / "token.png")
            browser.close()
    finally:
        for proc in (process, secured):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=40)
        asyncio.run(drop(os.environ["DATABASE_URL"], schema))


async def drop(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
