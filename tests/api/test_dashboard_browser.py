"""The dashboard in a real headless browser: Debian's chromium driven by Playwright.

A real `jobq serve --no-workers` runs on 127.0.0.1 (a free port, this module's
own schema); jobs are made through the public API (or, for states a worker
would reach, written by the factory). No fixed sleeps: Playwright's expect()
waits for the page, which refreshes every two seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import asyncpg
import httpx
import pytest

from tests.support import skip_unless_required

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    skip_unless_required(
        "the browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
        module=True,
    )

from playwright.sync_api import (  # noqa: E402 - only once chromium is known to be there
    Browser,
    Locator,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from jobq import Settings  # noqa: E402
from jobq.client import Client  # noqa: E402
from jobq.stats import MINUTE, floor_to  # noqa: E402
from jobq.types import WorkerInfo  # noqa: E402
from tests.support import insert_job  # noqa: E402

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TOKEN = "admin-s3cret-0123456789abcdef0123456789"
READER_TOKEN = "reader-s3cret-0123456789abcdef0123456789"
START_TIMEOUT = 30.0
# The page polls every 2 s; allow a few rounds on a loaded CI machine.
expect.set_options(timeout=10_000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    base_url: str
    settings: Settings
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    token: str | None = None

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}"} if token or self.token else {}
        response = httpx.request(
            method, f"{self.base_url}{path}", json=body, headers=headers, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def enqueue(self, kind: str, queue: str, payload: dict[str, Any] | None = None) -> str:
        body = {"kind": kind, "queue": queue, "payload": payload or {}}
        job_id: str = self.api("POST", "/v1/jobs", body)["id"]
        return job_id


def start_server(database_url: str, schema: str, tokens: list[dict[str, Any]] | None) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    env.update(DATABASE_URL=database_url, JOBQ_SCHEMA=schema)
    if tokens:
        env["JOBQ_API_TOKENS"] = json.dumps(tokens)
    command = [sys.executable, "-m", "jobq", "serve", "--no-workers"]
    # The log goes to a file: a pipe nobody reads would fill and stall the server.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop_server()
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    settings = Settings(database_url, schema=schema)
    server = Server(f"http://127.0.0.1:{port}", settings, process, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:  # wait on a condition (the process answers), not a fixed time
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode()
            log.close()
            raise AssertionError(f"jobq serve exited: {output}")
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_server(server)
            raise AssertionError("jobq serve did not become ready")
        time.sleep(0.05)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.log.close()


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from a sync test. In a thread of its own:
    Playwright's sync API keeps an event loop running in this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def drop_schema(database_url: str, schema: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    run_async(drop)


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[Server]:
    schema = f"t_dash_{uuid.uuid4().hex[:12]}"
    server = start_server(database_url, schema, None)
    try:
        yield server
    finally:
        stop_server(server)
        drop_schema(database_url, schema)


@pytest.fixture(scope="module")
def secured_server(database_url: str) -> Iterator[Server]:
    schema = f"t_dash_{uuid.uuid4().hex[:12]}"
    tokens = [
        {"token": ADMIN_TOKEN, "scopes": ["read", "write", "admin"]},
        {"token": READER_TOKEN, "scopes": ["read"]},
    ]
    server = start_server(database_url, schema, tokens)
    server.token = ADMIN_TOKEN
    try:
        yield server
    finally:
        stop_server(server)
        drop_schema(database_url, schema)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (its own sessionStorage); fails the test on a JavaScript error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], errors


def unique_queue() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def queue_row(page: Page, queue: str) -> Any:
    return page.locator(f'#queues tr[data-queue="{queue}"]')


def confirm(page: Page, title: str) -> None:
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(title)
    dialog.locator("#confirm-ok").click()
    expect(dialog).to_be_hidden()


def test_a_new_job_appears_live_then_is_opened_and_cancelled(server: Server, page: Page) -> None:
    queue = unique_queue()
    page.goto(server.base_url + "/")
    expect(page.locator("#live")).to_contain_text("live")
    expect(queue_row(page, queue)).to_have_count(0)

    job_id = server.enqueue("noop", queue, {"to": "a@example.com"})
    # No reload: the overview refreshes itself.
    row = queue_row(page, queue)
    expect(row.locator('td[data-state="queued"]')).to_have_text("1")
    expect(row).to_contain_text("active")
    latest = page.locator(f'#latest tr[data-job-id="{job_id}"]')
    expect(latest).to_contain_text("queued")

    latest.get_by_role("link").click()
    expect(page).to_have_url(f"{server.base_url}/#/jobs/{job_id}")
    expect(page.locator("h1")).to_contain_text("noop")
    expect(page.locator("h1 .badge")).to_have_text("queued")
    expect(page.locator("#job-fields")).to_contain_text(job_id)
    expect(page.locator("#job-fields")).to_contain_text(queue)
    expect(page.locator("pre.json")).to_contain_text('"to": "a@example.com"')
    expect(page.locator("#attempts")).to_have_text("No attempt yet.")

    page.get_by_role("button", name="Cancel job").click()
    confirm(page, "Cancel job")
    expect(page.locator("#notices")).to_contain_text("cancelled")
    expect(page.locator("h1 .badge")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Retry job")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel job")).to_have_count(0)
    assert server.api("GET", f"/v1/jobs/{job_id}")["status"] == "cancelled"


def test_pause_and_resume_a_queue(server: Server, page: Page) -> None:
    queue = unique_queue()
    server.enqueue("noop", queue)
    page.goto(server.base_url + "/")
    row = queue_row(page, queue)
    expect(row).to_contain_text("active")

    # Changing one's mind changes nothing.
    row.get_by_role("button", name="Pause").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Keep it").click()
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    assert not _queue(server, queue)["paused"]

    row.get_by_role("button", name="Pause").click()
    confirm(page, f"Pause queue “{queue}”?")
    expect(page.locator("#notices")).to_contain_text(f"Queue “{queue}” paused.")
    expect(row.locator(".badge")).to_have_text("paused")
    assert _queue(server, queue)["paused"]

    row.get_by_role("button", name="Resume").click()
    confirm(page, f"Resume queue “{queue}”?")
    expect(page.locator("#notices")).to_contain_text(f"Queue “{queue}” resumed.")
    expect(row.locator(".badge")).to_have_text("active")
    assert not _queue(server, queue)["paused"]


def test_a_queue_shows_the_jobs_no_live_worker_can_run(server: Server, page: Page) -> None:
    """`serve --no-workers`: nothing can run a job until a worker registers its kind."""
    queue = unique_queue()
    server.enqueue("noop", queue)
    server.enqueue("noop", queue)
    page.goto(server.base_url + "/")
    cell = queue_row(page, queue).locator("td.unclaimable")
    expect(cell).to_have_text("2")
    expect(cell).to_have_class("num unclaimable alert")

    worker_id = f"host:1:{queue}"

    async def register(kinds: list[str] | None) -> None:
        client = await Client.connect(server.settings, migrate=False)
        try:
            if kinds is None:
                await client.queries.worker_delete(client.pool, worker_id)
                return
            now = datetime.now(UTC)
            info = WorkerInfo(worker_id, "host", 1, [queue], 1, 0, "x", now, now, kinds=kinds)
            await client.queries.worker_register(client.pool, info)
        finally:
            await client.close()

    run_async(lambda: register(["noop", "send_email"]))
    try:
        expect(cell).to_have_text("0")
        expect(cell).to_have_class("num unclaimable muted")
        worker = page.locator(f'#workers tr[data-key="{worker_id}"]')
        expect(worker.locator("td.kinds")).to_have_text("noop, send_email")
    finally:
        run_async(lambda: register(None))
    expect(cell).to_have_text("2")


def _queue(server: Server, name: str) -> dict[str, Any]:
    queues = server.api("GET", "/v1/queues")["queues"]
    queue: dict[str, Any] = next(q for q in queues if q["name"] == name)
    return queue


def test_the_job_list_filters_and_pages(server: Server, page: Page) -> None:
    queue, other = unique_queue(), unique_queue()
    mine = [server.enqueue("noop", queue, {"n": n}) for n in range(5)]
    emails = [server.enqueue("send_email", other, {"to": f"{n}@example.com"}) for n in range(2)]
    server.api("POST", f"/v1/jobs/{mine[0]}/cancel")
    rows = page.locator("#jobs tbody tr[data-job-id]")

    page.goto(f"{server.base_url}/#/jobs")
    expect(page.locator("#filter-queue")).to_contain_text(queue)
    page.locator("#filter-queue").select_option(queue)
    expect(page).to_have_url(f"{server.base_url}/#/jobs?queue={queue}")
    expect(rows).to_have_count(5)

    page.locator("label.chip", has_text="cancelled").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", mine[0])

    page.goto(f"{server.base_url}/#/jobs?kind=send_email&queue={other}")
    expect(rows).to_have_count(2)
    expect(page.locator("#filter-kind")).to_have_value("send_email")
    page.locator("#filter-kind").fill("noop")
    page.locator("#filter-kind").press("Enter")
    expect(page.locator("#jobs")).to_contain_text("No job matches these filters.")

    # Pages of two, newest first, by next_cursor.
    page.goto(f"{server.base_url}/#/jobs?queue={queue}&limit=2")
    newest_first = list(reversed(mine))
    for start in (0, 2, 4):
        expect(rows).to_have_count(min(2, 5 - start))
        expect(rows.first).to_have_attribute("data-job-id", newest_first[start])
        if start < 4:
            page.get_by_role("button", name="Older →").click()
    expect(page.get_by_role("button", name="Older →")).to_have_count(0)
    page.get_by_role("button", name="← Newer").click()
    expect(rows.first).to_have_attribute("data-job-id", newest_first[2])
    assert emails  # made so the queue filter has something to leave out


def test_the_job_page_shows_the_attempts_with_errors_and_workers(
    server: Server, page: Page
) -> None:
    queue = unique_queue()

    async def make() -> str:
        client = await Client.connect(server.settings, migrate=False)
        try:
            job_id = await insert_job(
                client,
                status="failed_permanent",
                kind="send_email",
                queue=queue,
                payload={"to": "bounce@example.com"},
                attempts=2,
                max_attempts=2,
                finished_offset_s=0,
            )
            await client.pool.execute(
                f"""UPDATE "{server.settings.schema}".jobs SET last_error = $2 WHERE id = $1""",
                job_id,
                "SMTP 550: mailbox unavailable",
            )
            await client.pool.executemany(
                f"""INSERT INTO "{server.settings.schema}".job_attempts
                    (job_id, seq, worker_id, started_at, finished_at, outcome, error)
                    VALUES ($1, $2, $3, now() - make_interval(secs => $4),
                            now() - make_interval(secs => $4 - 1.5), $5, $6)""",
                [
                    (job_id, 1, "host-a:101:w1", 60.0, "lease_expired", "lease expired (w1)"),
                    (job_id, 2, "host-b:202:w2", 10.0, "failed", "SMTP 550: mailbox unavailable"),
                ],
            )
            return str(job_id)
        finally:
            await client.close()

    job_id = run_async(make)
    page.goto(f"{server.base_url}/#/jobs/{job_id}")
    expect(page.locator("h1 .badge")).to_have_text("failed")
    expect(page.locator("pre.error").first).to_have_text("SMTP 550: mailbox unavailable")
    attempts = page.locator("#attempts li")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("#1")
    expect(attempts.nth(0)).to_contain_text("lease expired")
    expect(attempts.nth(0)).to_contain_text("host-a:101:w1")
    expect(attempts.nth(0)).to_contain_text("took 1.5 s")
    expect(attempts.nth(1)).to_contain_text("host-b:202:w2")
    expect(attempts.nth(1).locator("pre.error")).to_have_text("SMTP 550: mailbox unavailable")

    page.get_by_role("button", name="Retry job").click()
    confirm(page, "Retry job")
    expect(page.locator("#notices")).to_contain_text("queued again")
    expect(page.locator("h1 .badge")).to_have_text("queued")
    expect(page.locator("#job-fields")).to_contain_text("0 of 2")
    expect(attempts).to_have_count(2)  # the history is kept


def test_the_job_page_shows_a_failed_attempts_traceback_folded(server: Server, page: Page) -> None:
    trace = (
        "Traceback (most recent call last):\n"
        '  File "/app/billing.py", line 7, in load_invoice\n'
        "    raise KeyError(n)\n"
        "KeyError: '<b>42</b>'\n"
    )

    async def make() -> str:
        client = await Client.connect(server.settings, migrate=False)
        try:
            job_id = await insert_job(
                client, status="retrying", queue=unique_queue(), attempts=1, max_attempts=3
            )
            await client.pool.execute(
                f"""INSERT INTO "{server.settings.schema}".job_attempts (job_id, seq,
                    worker_id, started_at, finished_at, outcome, error, traceback)
                    VALUES ($1, 1, 'w', now(), now(), 'failed', $2, $3)""",
                job_id,
                "KeyError: '<b>42</b>'",
                trace,
            )
            return str(job_id)
        finally:
            await client.close()

    job_id = run_async(make)
    page.goto(f"{server.base_url}/#/jobs/{job_id}")
    details = page.locator("#attempts li details.traceback")
    expect(details).to_have_count(1)
    expect(details.locator("pre")).not_to_be_visible()  # folded until asked
    details.locator("summary").click()
    expect(details.locator("pre")).to_be_visible()
    # Text, not markup: the <b> of the message is shown as typed.
    expect(details.locator("pre")).to_have_text(trace.rstrip("\n"))
    assert details.locator("pre b").count() == 0


def test_the_job_page_shows_the_result_pretty_printed_and_escaped(
    server: Server, page: Page
) -> None:
    result = {"note": "<b>bold</b>", "items": [1, 2], "total": 3}  # in jsonb's key order
    job_id = make_job(
        server,
        "UPDATE {schema}.jobs SET result = $2::jsonb WHERE id = $1",
        json.dumps(result),
        status="succeeded",
        queue=unique_queue(),
        attempts=1,
        finished_offset_s=-1,
    )
    page.goto(f"{server.base_url}/#/jobs/{job_id}")
    shown = page.locator("#job-result")
    expect(shown).to_have_text(json.dumps(result, indent=2))
    assert shown.locator("b").count() == 0  # text, not markup
    expect(page.locator("#job-result-note")).to_have_count(0)
    # A job that has not succeeded has no result section.
    queued = make_job(server, queue=unique_queue())
    page.goto(f"{server.base_url}/#/jobs/{queued}")
    expect(page.locator("#job-fields")).to_be_visible()
    expect(page.locator("#job-result")).to_have_count(0)


def test_a_huge_result_is_cut_for_display(server: Server, page: Page) -> None:
    result = ["x" * 100] * 500  # about 52,000 characters pretty-printed
    job_id = make_job(
        server,
        "UPDATE {schema}.jobs SET result = $2::jsonb WHERE id = $1",
        json.dumps(result),
        status="succeeded",
        queue=unique_queue(),
        attempts=1,
        finished_offset_s=-1,
    )
    page.goto(f"{server.base_url}/#/jobs/{job_id}")
    full = json.dumps(result, indent=2)
    expect(page.locator("#job-result-note")).to_contain_text(
        f"Showing the first 10,000 of {len(full):,} characters"
    )
    text = page.locator("#job-result").inner_text()
    assert text == full[:10000] + "\n…"
    link = page.locator("#job-result-note a")
    assert (link.get_attribute("href") or "").endswith(f"v1/jobs/{job_id}")


def test_an_unknown_job_says_so(server: Server, page: Page) -> None:
    page.goto(f"{server.base_url}/#/jobs/{uuid.uuid4()}")
    expect(page.locator("h1")).to_have_text("Job not found")
    page.goto(f"{server.base_url}/#/jobs/not-a-uuid")
    expect(page.locator("h1")).to_have_text("Job not found")
    expect(page.locator(".inline-error")).to_contain_text("422")


def test_a_lost_connection_shows_a_banner_and_recovers(server: Server, page: Page) -> None:
    page.goto(server.base_url + "/")
    expect(page.locator("#live")).to_contain_text("live")
    page.route("**/v1/**", lambda route: route.abort())
    expect(page.locator("#banner")).to_contain_text("Cannot reach jobq")
    expect(page.locator("#live")).to_have_text("offline")
    page.unroute("**/v1/**")
    expect(page.locator("#banner")).to_be_hidden()
    expect(page.locator("#live")).to_contain_text("live")


def test_with_auth_on_it_asks_for_a_token_and_keeps_it_in_the_session(
    secured_server: Server, page: Page
) -> None:
    queue = unique_queue()
    secured_server.enqueue("noop", queue)
    page.goto(secured_server.base_url + "/")
    dialog = page.locator("#token-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("needs a bearer token")

    page.locator("#token-input").fill("wrong")
    page.locator("#token-input").press("Enter")
    expect(dialog).to_contain_text("not accepted")
    page.locator("#token-input").fill(READER_TOKEN)
    dialog.get_by_role("button", name="Use token").click()
    expect(dialog).to_be_hidden()
    expect(queue_row(page, queue).locator('td[data-state="queued"]')).to_have_text("1")
    assert page.evaluate("sessionStorage.getItem('jobq.token')") == READER_TOKEN
    assert page.evaluate("localStorage.length") == 0

    # A read-only token cannot pause: the refusal is shown, nothing changes.
    queue_row(page, queue).get_by_role("button", name="Pause").click()
    confirm(page, "Pause queue")
    expect(page.locator(".notice-error")).to_contain_text("admin")
    assert not _queue(secured_server, queue)["paused"]

    # The token survives a reload of the tab, and can be forgotten.
    page.reload()
    expect(queue_row(page, queue)).to_be_visible()
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Forget token").click()
    expect(dialog).to_be_visible()
    page.locator("#token-input").fill(ADMIN_TOKEN)
    page.locator("#token-input").press("Enter")
    queue_row(page, queue).get_by_role("button", name="Pause").click()
    confirm(page, "Pause queue")
    expect(queue_row(page, queue).locator(".badge")).to_have_text("paused")
    assert _queue(secured_server, queue)["paused"]


# --- issue 14 item 8: bulk actions, scheduled, times, durations, retry marks, delete, phone ---


def make_job(server: Server, sql: str | None = None, *args: Any, **fields: Any) -> str:
    """A job written by the factory; `sql` then runs with $1 = its id (and `args`)."""

    async def make() -> str:
        client = await Client.connect(server.settings, migrate=False)
        try:
            job_id = await insert_job(client, **fields)
            if sql:
                await client.pool.execute(
                    sql.format(schema=f'"{server.settings.schema}"'), job_id, *args
                )
            return str(job_id)
        finally:
            await client.close()

    return run_async(make)


def add_attempts(server: Server, job_id: str, outcomes: list[str]) -> None:
    """Attempts 1..n of a job, each a second long, oldest first."""

    async def add() -> None:
        client = await Client.connect(server.settings, migrate=False)
        try:
            n = len(outcomes)
            await client.pool.executemany(
                f"""INSERT INTO "{server.settings.schema}".job_attempts
                    (job_id, seq, worker_id, started_at, finished_at, outcome, error)
                    VALUES ($1, $2, 'host:1:w', now() - make_interval(secs => $3),
                            now() - make_interval(secs => $3 - 1), $4, NULL)""",
                [
                    (uuid.UUID(job_id), seq, float(10 * (n - seq + 1)), outcome)
                    for seq, outcome in enumerate(outcomes, 1)
                ],
            )
        finally:
            await client.close()

    run_async(add)


def test_retry_all_failed_jobs_of_a_queue(server: Server, page: Page) -> None:
    queue, other = unique_queue(), unique_queue()
    failed = [
        make_job(server, status="failed_permanent", queue=queue, attempts=3, finished_offset_s=0)
        for _ in range(2)
    ]
    done = make_job(server, status="succeeded", queue=queue, attempts=1, finished_offset_s=0)
    elsewhere = make_job(
        server, status="failed_permanent", queue=other, attempts=3, finished_offset_s=0
    )

    page.goto(f"{server.base_url}/#/jobs")
    expect(page.locator("#retry-failed")).to_have_count(0)  # which queue? choose one first
    page.goto(f"{server.base_url}/#/jobs?queue={queue}")
    expect(page.locator("#jobs tbody tr[data-job-id]")).to_have_count(3)
    page.locator("#retry-failed").click()
    confirm(page, f"Retry every failed job in “{queue}”?")
    expect(page.locator("#notices")).to_contain_text(f"2 failed jobs of “{queue}” queued again.")
    for job_id in failed:
        expect(page.locator(f'#jobs tr[data-job-id="{job_id}"] .badge')).to_have_text("queued")
        assert server.api("GET", f"/v1/jobs/{job_id}")["status"] == "queued"
    assert server.api("GET", f"/v1/jobs/{done}")["status"] == "succeeded"
    assert server.api("GET", f"/v1/jobs/{elsewhere}")["status"] == "failed_permanent"


def test_cancel_the_selected_jobs(server: Server, page: Page) -> None:
    queue = unique_queue()
    jobs = [server.enqueue("noop", queue, {"n": n}) for n in range(3)]
    done = make_job(server, status="succeeded", queue=queue, attempts=1, finished_offset_s=0)
    page.goto(f"{server.base_url}/#/jobs?queue={queue}")

    def row(job_id: str) -> Any:
        return page.locator(f'#jobs tr[data-job-id="{job_id}"]')

    expect(row(done).locator("td.select input")).to_be_disabled()
    button = page.locator("#cancel-selected")
    expect(button).to_be_disabled()

    row(jobs[0]).locator("td.select input").check()
    row(jobs[2]).locator("td.select input").check()
    expect(button).to_have_text("Cancel selected (2)")
    # A refresh (every two seconds) keeps the selection.
    expect(page.locator("#live")).to_contain_text("live")
    button.click()
    page.locator("#confirm-dialog").get_by_role("button", name="Keep it").click()
    assert server.api("GET", f"/v1/jobs/{jobs[0]}")["status"] == "queued"
    button.click()
    confirm(page, "Cancel 2 selected jobs?")
    expect(page.locator("#notices")).to_contain_text("Cancelled 2 jobs.")
    expect(row(jobs[0]).locator(".badge")).to_have_text("cancelled")
    expect(row(jobs[2]).locator(".badge")).to_have_text("cancelled")
    expect(button).to_be_disabled()
    statuses = [server.api("GET", f"/v1/jobs/{j}")["status"] for j in jobs]
    assert statuses == ["cancelled", "queued", "cancelled"]

    # "select all" takes every job on the page that can still be cancelled.
    page.locator("#select-all").check()
    expect(button).to_have_text("Cancel selected (1)")


def test_a_job_due_later_shows_as_scheduled(server: Server, page: Page) -> None:
    queue = unique_queue()
    later = server.api(
        "POST", "/v1/jobs", {"kind": "noop", "queue": queue, "run_at": "2030-01-01T09:00:00Z"}
    )["id"]
    now = server.enqueue("noop", queue)
    rows = page.locator("#jobs tbody tr[data-job-id]")
    page.goto(f"{server.base_url}/#/jobs?queue={queue}")
    expect(page.locator(f'#jobs tr[data-job-id="{later}"] .badge')).to_have_text("scheduled")
    expect(page.locator(f'#jobs tr[data-job-id="{now}"] .badge')).to_have_text("queued")

    page.locator("label.chip", has_text="scheduled").click()
    expect(page).to_have_url(f"{server.base_url}/#/jobs?status=scheduled&queue={queue}")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", later)
    page.locator("label.chip", has_text="scheduled").click()
    page.locator("label.chip", has_text="queued").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", now)

    page.goto(f"{server.base_url}/#/jobs/{later}")
    expect(page.locator("h1 .badge")).to_have_text("scheduled")
    expect(page.locator("#job-fields")).to_contain_text("Runs at")
    assert server.api("GET", f"/v1/jobs/{later}")["status"] == "queued"


def test_every_relative_time_has_the_absolute_time_on_hover(server: Server, page: Page) -> None:
    job_id = server.enqueue("noop", unique_queue())
    created = server.api("GET", f"/v1/jobs/{job_id}")["created_at"]
    page.goto(f"{server.base_url}/#/jobs/{job_id}")
    expect(page.locator("#job-fields time").first).to_be_visible()
    times = page.locator("time[data-relative]")
    titles = times.evaluate_all("els => els.map(e => [e.dateTime, e.title])")
    assert titles and all(iso and title.endswith(f"({iso})") for iso, title in titles)
    local = page.evaluate(
        "d => new Date(d).toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'medium'})",
        created,
    )
    assert [created, f"{local} ({created})"] in [list(t) for t in titles]


def test_a_finished_job_shows_how_long_it_ran(server: Server, page: Page) -> None:
    queue = unique_queue()
    job_id = make_job(
        server,
        "UPDATE {schema}.jobs SET started_at = finished_at - interval '90 seconds' WHERE id = $1",
        status="succeeded",
        queue=queue,
        attempts=1,
        finished_offset_s=-5,
    )
    page.goto(f"{server.base_url}/#/jobs?queue={queue}")
    expect(page.locator(f'#jobs tr[data-job-id="{job_id}"] .took')).to_have_text("took 1m 30s")
    page.goto(f"{server.base_url}/#/jobs/{job_id}")
    fields = page.locator("#job-fields")
    expect(fields.locator(".took")).to_have_text("1m 30s")
    expect(fields).to_contain_text("Duration")
    expect(fields).not_to_contain_text("Runs at")


def test_the_attempts_show_where_a_retry_by_hand_reset_them(server: Server, page: Page) -> None:
    # Failed out after three attempts, retried by hand, failed out again: six attempts.
    job_id = make_job(
        server,
        "UPDATE {schema}.jobs SET attempt_seq = 6 WHERE id = $1",
        status="failed_permanent",
        queue=unique_queue(),
        attempts=3,
        max_attempts=3,
        finished_offset_s=0,
    )
    add_attempts(server, job_id, ["failed"] * 6)
    page.goto(f"{server.base_url}/#/jobs/{job_id}")
    attempts = page.locator("#attempts li")
    expect(attempts).to_have_count(6)
    marks = page.locator("#attempts .retry-mark")
    expect(marks).to_have_count(1)
    expect(attempts.nth(3).locator(".retry-mark")).to_have_text(
        "retried by hand: attempts reset to 0"
    )

    # A second retry by hand: the new round has no attempt yet, the mark closes the list.
    page.get_by_role("button", name="Retry job").click()
    confirm(page, "Retry job")
    expect(marks).to_have_count(2)
    expect(attempts.nth(5).locator(".retry-mark")).to_have_count(1)
    expect(page.locator("#job-fields")).to_contain_text("0 of 3")


def test_a_running_job_shows_its_progress_and_a_snooze_is_in_its_timeline(
    server: Server, page: Page
) -> None:
    queue = unique_queue()
    # Snoozed twice (attempt_seq 3, attempts 1: snoozes are not counted), now at 42%.
    job_id = make_job(
        server,
        """UPDATE {schema}.jobs SET attempt_seq = 3, progress = 0.425,
               progress_details = '{{"step": "resize", "done": 17}}', progress_at = now()
           WHERE id = $1""",
        status="running",
        queue=queue,
        attempts=1,
        max_attempts=1,
        locked_by="host:1:w",
        lease_offset_s=600,
    )
    add_attempts(server, job_id, ["snoozed", "snoozed"])
    quiet = make_job(
        server, status="running", queue=queue, locked_by="host:1:w", lease_offset_s=600
    )
    # A finished job keeps its last progress: the job page shows it, the list does not.
    done = make_job(
        server,
        "UPDATE {schema}.jobs SET progress = 1 WHERE id = $1",
        status="succeeded",
        queue=queue,
        attempts=1,
        finished_offset_s=0,
    )

    page.goto(f"{server.base_url}/#/jobs?queue={queue}")
    row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
    bar = row.locator("progress")
    expect(bar).to_have_attribute("value", "0.425")
    expect(bar).to_have_attribute("aria-label", "Progress 42%")
    expect(row.locator(".progress-text")).to_have_text("42%")
    expect(page.locator(f'#jobs tr[data-job-id="{quiet}"] progress')).to_have_count(0)
    expect(page.locator(f'#jobs tr[data-job-id="{done}"] progress')).to_have_count(0)

    # Live: the next progress the heartbeat writes moves the bar without a reload.
    make_job_update(server, job_id, "UPDATE {schema}.jobs SET progress = 0.9 WHERE id = $1")
    expect(row.locator(".progress-text")).to_have_text("90%")

    page.goto(f"{server.base_url}/#/jobs/{job_id}")
    fields = page.locator("#job-fields")
    expect(fields.locator("#job-progress .progress-text")).to_have_text("90%")
    expect(fields.locator("#job-progress .progress")).to_have_attribute(
        "title", '90% — {"done":17,"step":"resize"}'
    )
    expect(page.locator("#progress-title")).to_have_text("Progress details")
    expect(page.locator("pre.json").first).to_contain_text('"step": "resize"')
    attempts = page.locator("#attempts li")
    expect(attempts).to_have_count(3)
    expect(attempts.nth(0).locator(".badge")).to_have_text("snoozed")
    expect(attempts.nth(1).locator(".badge")).to_have_text("snoozed")
    expect(attempts.nth(2).locator(".badge")).to_have_text("running")
    # Snoozes are not counted: no retry-by-hand mark in a one-attempt job's history.
    expect(page.locator("#attempts .retry-mark")).to_have_count(0)

    page.goto(f"{server.base_url}/#/jobs/{done}")
    expect(page.locator("#job-progress .progress-text")).to_have_text("100%")


def make_job_update(server: Server, job_id: str, sql: str) -> None:
    async def update() -> None:
        client = await Client.connect(server.settings, migrate=False)
        try:
            await client.pool.execute(
                sql.format(schema=f'"{server.settings.schema}"'), uuid.UUID(job_id)
            )
        finally:
            await client.close()

    run_async(update)


def test_delete_a_finished_job(server: Server, page: Page) -> None:
    queue = unique_queue()
    job_id = make_job(server, status="cancelled", queue=queue, finished_offset_s=0)
    waiting = server.enqueue("noop", queue)
    page.goto(f"{server.base_url}/#/jobs/{waiting}")
    expect(page.get_by_role("button", name="Cancel job")).to_be_visible()
    expect(page.get_by_role("button", name="Delete job")).to_have_count(0)

    page.goto(f"{server.base_url}/#/jobs/{job_id}")
    page.get_by_role("button", name="Delete job").click()
    confirm(page, f"Delete job {job_id[:8]}")
    expect(page).to_have_url(f"{server.base_url}/#/jobs")
    expect(page.locator("#notices")).to_contain_text("deleted")
    with pytest.raises(httpx.HTTPStatusError) as missing:
        server.api("GET", f"/v1/jobs/{job_id}")
    assert missing.value.response.status_code == 404


def test_on_a_phone_the_page_is_no_wider_than_the_screen(server: Server, browser: Browser) -> None:
    queue = unique_queue()
    job_id = make_job(
        server,
        "UPDATE {schema}.jobs SET last_error = $2 WHERE id = $1",
        "Traceback: " + "x" * 300,
        status="failed_permanent",
        kind="a_rather_long_kind_name_for_a_phone",
        queue=queue,
        attempts=3,
        max_attempts=3,
        finished_offset_s=0,
    )
    add_attempts(server, job_id, ["failed"] * 3)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        for fragment, ready in [
            ("#/", "#queues tbody tr"),
            (f"#/jobs?queue={queue}", "#jobs tbody tr[data-job-id]"),
            (f"#/jobs/{job_id}", "#attempts li"),
            ("#/schedules", "#schedules tbody tr"),
            ("#/limits", "#limit-form"),
        ]:
            page.goto(f"{server.base_url}/{fragment}")
            expect(page.locator(ready).first).to_be_visible()
            expect(page.locator("#live")).to_contain_text("live")
            width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
            assert width[0] <= width[1] == 390, (fragment, width)
    finally:
        context.close()
    assert errors == [], errors


def test_the_schedules_page_lists_fire_times_and_pauses_resumes_and_runs(
    server: Server, page: Page
) -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    server.api(
        "POST",
        "/v1/schedules",
        {"name": name, "kind": "noop", "cron": "30 2 * * *", "timezone": "Europe/Berlin"},
    )
    page.goto(server.base_url + "/#/schedules")
    expect(page.locator('nav a[data-nav="schedules"]')).to_have_attribute("aria-current", "page")
    row = page.locator(f'#schedules tr[data-schedule="{name}"]')
    expect(row.locator(".when")).to_contain_text("30 2 * * * Europe/Berlin")
    expect(row.locator(".state .badge")).to_have_text("active")
    expect(row.locator(".next time")).to_contain_text("in ")
    expect(row.locator(".last")).to_have_text("—")

    row.get_by_role("button", name="Pause").click()
    confirm(page, f"Pause schedule “{name}”?")
    expect(page.locator("#notices")).to_contain_text(f"Schedule “{name}” paused.")
    expect(row.locator(".state .badge")).to_have_text("paused")
    assert server.api("GET", f"/v1/schedules/{name}")["paused"] is True

    row.get_by_role("button", name="Run now").click()
    expect(page.locator("#notices")).to_contain_text(f"Schedule “{name}” enqueued job")
    jobs = server.api("GET", "/v1/jobs", None)["jobs"]
    assert any(j["metadata"].get("schedule") == name for j in jobs)

    row.get_by_role("button", name="Resume").click()
    confirm(page, f"Resume schedule “{name}”?")
    expect(row.locator(".state .badge")).to_have_text("active")
    assert server.api("GET", f"/v1/schedules/{name}")["paused"] is False


# --- the overview's throughput charts (charts.js) -------------------------------------
# Rollup rows of a known shape are written straight into the server's schema (it
# runs no workers, so no maintenance leader writes beside them), and the SVG's bars
# and lines must say the same: counts, heights in proportion, the 1h/24h toggle and
# the queue picker.

PLOT_HEIGHT = 160 - 10 - 22  # charts.js: HEIGHT - TOP - BOTTOM
# (minutes ago, succeeded, retried, failed_permanent, cancelled, waiting, running)
SHAPE = [
    (10, 6, 2, 1, 1, 4, 2),
    (5, 3, 0, 0, 0, 8, 1),
]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def write_rollup(server: Server, queue: str) -> datetime:
    """SHAPE's minutes for `queue` and for all queues (queue ''), counted and
    sampled; answers the database's current minute."""

    async def write() -> datetime:
        conn = await asyncpg.connect(server.settings.database_url)
        s = f'"{server.settings.schema}"'
        try:
            now = floor_to(await conn.fetchval("SELECT now()"), MINUTE)
            for ago, *counts in SHAPE:
                for name in (queue, ""):
                    await conn.execute(
                        f"""INSERT INTO {s}.stats_minutes (queue, minute, succeeded, retried,
                               failed_permanent, cancelled, waiting, running)
                            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                            ON CONFLICT (queue, minute) DO UPDATE
                            SET succeeded = excluded.succeeded, retried = excluded.retried,
                                failed_permanent = excluded.failed_permanent,
                                cancelled = excluded.cancelled, waiting = excluded.waiting,
                                running = excluded.running""",
                        name,
                        now - ago * MINUTE,
                        *counts,
                    )
            await conn.execute(
                f"UPDATE {s}.stats_rollup SET counted_through = $1, sampled_minute = $1",
                now,
            )
            return now
        finally:
            await conn.close()

    return run_async(write)


def bar(page: Page, start: datetime, outcome: str) -> Locator:
    return page.locator(
        f'#charts g.bucket[data-start="{iso(start)}"] rect[data-outcome="{outcome}"]'
    )


def test_the_charts_draw_the_rollup_of_a_queue_and_toggle_to_a_day(
    server: Server, page: Page
) -> None:
    queue = unique_queue()
    server.api("POST", f"/v1/queues/{queue}/resume")  # a queue the picker lists
    now = write_rollup(server, queue)
    page.goto(server.base_url + "/")
    expect(page.locator("#live")).to_contain_text("live")
    page.locator("#chart-queue").select_option(queue)
    body = page.locator("#charts .charts-body")
    expect(body).to_have_attribute("data-queue", queue)
    expect(body).to_have_attribute("data-window", "1h")

    bars = page.locator("#charts svg.chart").first
    expect(bars).to_have_attribute("role", "img")
    expect(bars).to_have_attribute("data-max", "10")  # the tallest bar, 10 jobs: a round 10
    title_id = (bars.get_attribute("aria-labelledby") or "").split()
    assert len(title_id) == 2
    expect(page.locator(f"#{title_id[0]}")).to_have_text("Jobs finished per minute, by outcome")
    expect(page.locator(f"#{title_id[1]}")).to_contain_text(
        "9 succeeded, 2 retried, 1 failed, 1 cancelled"
    )
    expect(page.locator("#charts g.bucket")).to_have_count(60)
    # The current minute is not counted yet: an empty bucket, said so on hover.
    expect(page.locator(f'#charts g.bucket.pending[data-start="{iso(now)}"]')).to_have_count(1)

    heights: dict[tuple[int, str], float] = {}
    for ago, *counts in SHAPE:
        start = now - ago * MINUTE
        bucket = page.locator(f'#charts g.bucket[data-start="{iso(start)}"]')
        expect(bucket.locator("title")).to_contain_text(f"{counts[0]} succeeded")
        for outcome, count in zip(
            ("succeeded", "retried", "failed_permanent", "cancelled"), counts, strict=False
        ):
            rect = bar(page, start, outcome)
            expect(rect).to_have_attribute("data-count", str(count))
            heights[(ago, outcome)] = float(rect.get_attribute("height") or "nan")
    # Heights in proportion to the counts, on an axis whose top is 10 jobs.
    assert heights[(10, "succeeded")] == pytest.approx(PLOT_HEIGHT * 6 / 10)
    assert heights[(5, "succeeded")] == pytest.approx(heights[(10, "succeeded")] / 2)
    assert heights[(10, "retried")] == pytest.approx(PLOT_HEIGHT * 2 / 10)
    assert heights[(5, "retried")] == 0
    assert sum(h for (ago, _), h in heights.items() if ago == 10) == pytest.approx(PLOT_HEIGHT)

    depth = page.locator("#charts svg.chart").nth(1)
    expect(depth).to_have_attribute("data-max", "10")  # peak 8 waiting
    for ago, *counts in SHAPE:
        hover = depth.locator(f'rect.hover[data-start="{iso(now - ago * MINUTE)}"]')
        expect(hover).to_have_attribute("data-waiting", str(counts[4]))
        expect(hover).to_have_attribute("data-running", str(counts[5]))
    expect(depth.locator("polyline.line-waiting, circle.line-waiting")).not_to_have_count(0)

    # A day: 96 buckets of 15 minutes, the same jobs in them.
    page.get_by_role("button", name="24h").click()
    expect(page.get_by_role("button", name="24h")).to_have_attribute("aria-pressed", "true")
    expect(body).to_have_attribute("data-window", "24h")
    expect(page.locator("#charts svg.chart").first.locator("g.bucket")).to_have_count(96)
    counts_shown = page.locator('#charts g.bucket rect[data-outcome="succeeded"]').evaluate_all(
        "rects => rects.reduce((t, r) => t + Number(r.dataset.count), 0)"
    )
    assert counts_shown == 9

    # Back to an hour, and every queue: the '' rows hold the same minutes here.
    page.get_by_role("button", name="1h").click()
    expect(body).to_have_attribute("data-window", "1h")
    expect(page.get_by_role("button", name="24h")).to_have_attribute("aria-pressed", "false")
    page.locator("#chart-queue").select_option("")
    expect(body).to_have_attribute("data-queue", "")
    expect(bar(page, now - 10 * MINUTE, "succeeded")).to_have_attribute("data-count", "6")
