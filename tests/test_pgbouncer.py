"""jobq behind PgBouncer in transaction mode, the way managed fleets run it.

A PgBouncer of the host (Debian 12's is 1.18: no prepared-statement
tracking) listens on a free 127.0.0.1 port with a config generated in a
temporary folder, in front of the test database. Real `jobq worker`
processes run through it with `JOBQ_STATEMENT_CACHE=0` and LISTEN on a
direct connection (`JOBQ_LISTEN_DATABASE_URL`), and the worker suite's core
cases run end to end: wake on NOTIFY, many jobs each run once across
processes, retry, permanent failure, cancel of a running job, a clean stop,
rescue of a lost lease, and polling (said at start) without a direct URL.
Beside them, the facts these settings rest on: LISTEN through PgBouncer
hears nothing while NOTIFY passes; asyncpg's statement cache breaks through
it and 0 fixes it; and jobq's SQL takes no session-level advisory lock.

Skipped when PgBouncer is not installed, unless JOBQ_TESTS_REQUIRE_ALL=1
(`make pgbouncer-test` installs it and sets that).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import pytest

from jobq import Settings
from jobq.client import Client
from jobq.demo import build_app
from tests.conftest import drop_schema
from tests.support import insert_job, skip_unless_required, wait_for

ROOT = Path(__file__).resolve().parents[1]
JOBQ = Path(sys.executable).parent / "jobq"
# Session-level advisory locks stay with the server connection, which a
# transaction-mode pooler hands to another client after each transaction.
SESSION_ADVISORY = re.compile(r"pg_(try_)?advisory_(lock|unlock)(_shared|_all)?\b", re.I)
# Other state that outlives a transaction on the server connection, at the
# start of a statement (an UPDATE's SET is fine; SET LOCAL is too).
SESSION_STATEMENT = re.compile(
    r"^(SET\s+(SESSION\s+)?(?!LOCAL\b)\w+|PREPARE\s|LISTEN\s|DECLARE\s.*\bWITH\s+HOLD\b|"
    r"CREATE\s+TEMP(ORARY)?\s)",
    re.I | re.S,
)
SESSION_SET_CONFIG = re.compile(r"set_config\([^)]*,\s*false\s*\)", re.I)


def session_state(sql: str) -> list[str]:
    """Statements of `sql` that leave state on the session (comments stripped)."""
    sql = re.sub(r"--[^\n]*", "", sql)
    found = [m.group(0) for m in SESSION_SET_CONFIG.finditer(sql)]
    for statement in sql.split(";"):
        match = SESSION_STATEMENT.match(statement.strip())
        if match:
            found.append(match.group(0))
    return found


# --- no pooler needed -------------------------------------------------------------


def test_no_session_advisory_locks_or_session_state_in_jobq_sql() -> None:
    sources = [
        p for p in (ROOT / "src" / "jobq").rglob("*") if p.suffix in {".py", ".sql"} and p.is_file()
    ]
    assert len(sources) > 10
    found = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        found += [f"{path.name}: {m.group(0)}" for m in SESSION_ADVISORY.finditer(text)]
        if path.suffix == ".sql":
            found += [f"{path.name}: {stmt}" for stmt in session_state(text)]
    assert not found, f"session-level state breaks behind a transaction pooler: {found}"
    # The one advisory lock jobq takes is transaction-level (the migration's).
    sql = (ROOT / "src" / "jobq" / "db" / "sql" / "queries.sql").read_text(encoding="utf-8")
    assert "pg_advisory_xact_lock" in sql


def test_the_grep_would_catch_a_session_lock() -> None:
    assert SESSION_ADVISORY.search("SELECT pg_try_advisory_lock(42)")
    assert SESSION_ADVISORY.search("select pg_advisory_unlock_all()")
    assert not SESSION_ADVISORY.search("SELECT pg_advisory_xact_lock(hashtext($1))")
    assert session_state("SELECT 1;\n-- why\nSET search_path = jobq;")
    assert session_state("SELECT set_config('search_path', 'jobq', false)")
    assert not session_state("SET LOCAL lock_timeout = '1s'; SELECT set_config('a', 'b', true)")
    assert not session_state("UPDATE jobs\nSET status = 'queued'\nWHERE id = $1;")


# --- the pooler -------------------------------------------------------------------


@dataclass(frozen=True)
class Bouncer:
    url: str  # through PgBouncer
    direct_url: str  # straight to PostgreSQL
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _libpq_target(url: str) -> tuple[str, str, str]:
    """PgBouncer's [databases] line for `url`, the login user, and the database."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = query.get("host") or parts.hostname or "127.0.0.1"
    port = query.get("port") or str(parts.port or 5432)
    user = unquote(parts.username or query.get("user") or "postgres")
    dbname = unquote(parts.path.lstrip("/") or query.get("dbname") or user)
    fields = {"host": host, "port": port, "dbname": dbname, "user": user}
    if parts.password:
        fields["password"] = unquote(parts.password)
    elif query.get("passfile"):  # the embedded server's: *:*:*:postgres:<password>
        fields["password"] = Path(query["passfile"]).read_text().strip().rsplit(":", 1)[1]
    return " ".join(f"{k}={v}" for k, v in fields.items()), user, dbname


def _pgbouncer_user(target: str) -> str:
    """PgBouncer refuses to run as root. Over TCP any user will do; over a Unix
    socket (the embedded server's, in its 0700 data folder) only its owner
    can reach it, and only through folders it may traverse: pytest keeps its
    root 0700, so this test opens those for traversal (jobq does not)."""
    host = re.search(r"host=(\S+)", target)
    if not (host and host.group(1).startswith("/")):
        return "nobody"
    socket_dir = Path(host.group(1))
    for folder in socket_dir.parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
    return pwd.getpwuid(socket_dir.stat().st_uid).pw_name


@pytest.fixture(scope="module")
def pgbouncer(database_url: str) -> Iterator[Bouncer]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        skip_unless_required(
            "pgbouncer is not installed; `make pgbouncer-test` installs it and runs these"
        )
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"PgBouncer (\d+)\.(\d+)", version)
    assert match, version
    # 1.21+ can track prepared statements; off, it behaves like Debian 12's
    # 1.18, the case JOBQ_STATEMENT_CACHE=0 is for.
    tracking = "max_prepared_statements = 0\n" if (int(match[1]), int(match[2])) >= (1, 21) else ""
    target, user, _ = _libpq_target(database_url)
    port = _free_port()
    # Not under pytest's 0700 basetemp: as root, PgBouncer drops to another
    # user, who must read the config.
    folder = Path(tempfile.mkdtemp(prefix="jobq-pgbouncer-"))
    folder.chmod(0o755)
    (folder / "users.txt").write_text(f'"{user}" ""\n', encoding="utf-8")
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
jobq = {target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = 8
max_client_conn = 400
{tracking}""",
        encoding="utf-8",
    )
    for f in folder.iterdir():
        f.chmod(0o644)
    log_path = folder / "pgbouncer.log"
    as_user = ["-u", _pgbouncer_user(target)] if os.geteuid() == 0 else []
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [binary, *as_user, str(folder / "pgbouncer.ini")], stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"pgbouncer did not start: {log_path.read_text()}")
                time.sleep(0.05)
        yield Bouncer(f"postgresql://{user}@127.0.0.1:{port}/jobq", database_url, log_path)
    finally:
        proc.send_signal(signal.SIGINT)  # safe shutdown: waits for clients to go
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def pooled_settings(bouncer: Bouncer, schema: str, **overrides: object) -> Settings:
    return Settings(
        database_url=bouncer.url,
        listen_database_url=bouncer.direct_url,
        schema=schema,
        statement_cache=0,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
async def pooled(pgbouncer: Bouncer, schema: str) -> AsyncIterator[Client]:
    """The demo app's client, connected and migrated through PgBouncer."""
    app = build_app(pooled_settings(pgbouncer, schema))
    client = await app.client()
    try:
        yield client
    finally:
        await app.close()
        await drop_schema(pgbouncer.direct_url, schema)


# --- what the settings rest on ----------------------------------------------------


async def test_listen_through_pgbouncer_hears_nothing_but_notify_passes(
    pgbouncer: Bouncer,
) -> None:
    channel = f"jobq_probe_{uuid.uuid4().hex[:12]}"
    heard: dict[str, asyncio.Event] = {"pooled": asyncio.Event(), "direct": asyncio.Event()}
    pooled_listener = await asyncpg.connect(pgbouncer.url, statement_cache_size=0)
    direct_listener = await asyncpg.connect(pgbouncer.direct_url)
    try:
        await pooled_listener.add_listener(channel, lambda *_: heard["pooled"].set())
        await direct_listener.add_listener(channel, lambda *_: heard["direct"].set())
        # NOTIFY sent through the pooler reaches a direct session...
        sender = await asyncpg.connect(pgbouncer.url, statement_cache_size=0)
        try:
            await sender.execute(f"NOTIFY {channel}, 'x'")
        finally:
            await sender.close()
        await asyncio.wait_for(heard["direct"].wait(), 5)
        # ...but the LISTEN made through the pooler, silently, hears nothing.
        await asyncio.sleep(0.5)
        assert not heard["pooled"].is_set()
    finally:
        await pooled_listener.close()
        await direct_listener.close()


@pytest.mark.parametrize(("cache", "breaks"), [(100, True), (0, False)])
async def test_statement_cache_must_be_off_before_pgbouncer_1_21(
    pgbouncer: Bouncer, cache: int, breaks: bool
) -> None:
    """A prepared statement lives on one server connection; in transaction mode the
    next use of it may land on another. Made deterministic: after `a` prepares its
    statement, `b` holds that server connection (PgBouncer hands out the most
    recently used one) in an open transaction, so `a` is sent to a different one."""
    a = await asyncpg.connect(pgbouncer.url, statement_cache_size=cache)
    b = await asyncpg.connect(pgbouncer.url, statement_cache_size=0)
    try:
        assert await a.fetchval("SELECT $1::int + 1", 1) == 2
        async with b.transaction():
            await b.fetchval("SELECT 1")
            try:
                broke = await a.fetchval("SELECT $1::int + 1", 2) != 3
            except asyncpg.PostgresError:
                broke = True
    finally:
        await a.close()
        await b.close()
    assert broke is breaks


# --- the worker suite's core cases through the pooler -----------------------------


class WorkerProcess:
    """`jobq worker` (the demo app) with its output in a file."""

    def __init__(self, env: dict[str, str], args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(JOBQ), "worker", "--no-migrate", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    @property
    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM (if still running) and its exit code; idempotent."""
        if self._log.closed:
            return self.proc.wait()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not stop on SIGTERM:\n{self.output}") from None
        finally:
            self._log.close()


@pytest.fixture
def start_worker(
    pgbouncer: Bouncer, pooled: Client, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(*args: str, listen: bool = True, **settings: str) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
        env.update(
            DATABASE_URL=pgbouncer.url,
            JOBQ_SCHEMA=pooled.settings.schema,
            JOBQ_STATEMENT_CACHE="0",
            JOBQ_RETRY_BASE_MS="20",
            JOBQ_RETRY_CAP_MS="50",
            **settings,
        )
        if listen:
            env["JOBQ_LISTEN_DATABASE_URL"] = pgbouncer.direct_url
        worker = WorkerProcess(env, list(args), tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def status_of(client: Client, job_id: uuid.UUID) -> str:
    return str((await client.get(job_id)).status)


async def wait_status(
    client: Client, job_id: uuid.UUID, status: str, worker: WorkerProcess, within: float = 10
) -> None:
    async def reached() -> bool:
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.output}")
        return await status_of(client, job_id) == status

    try:
        await wait_for(reached, timeout=within)
    except AssertionError as exc:
        now = await status_of(client, job_id)
        raise AssertionError(f"{exc}: job {job_id} is {now}\n{worker.output[-3000:]}") from None


async def wait_registered(client: Client, count: int, worker: WorkerProcess) -> None:
    async def registered() -> bool:
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited {worker.proc.returncode}:\n{worker.output}")
        return len(await client.workers()) >= count

    await wait_for(registered, timeout=20)


async def test_worker_wakes_on_notify_and_runs_each_job_once_through_pgbouncer(
    pooled: Client, start_worker: Callable[..., WorkerProcess]
) -> None:
    app = pooled.catalog
    assert app is not None
    # A minute between polls: only a NOTIFY can wake the worker in time.
    worker = start_worker("--processes=2", "--concurrency=8", JOBQ_POLL_INTERVAL_MS="60000")
    await wait_registered(pooled, 2, worker)

    async def both_listening() -> bool:  # each process's LISTEN passed its start-up probe
        return worker.output.count("LISTEN connection hears NOTIFY") == 2

    await wait_for(both_listening, timeout=20)

    # Wakes on NOTIFY sent through the pooler, heard on the direct connection.
    job = await app.enqueue("noop")  # type: ignore[attr-defined]
    start = time.monotonic()
    await wait_status(pooled, job.id, "succeeded", worker, within=5)
    assert time.monotonic() - start < 5

    # Many jobs over two processes: each runs exactly once. Each takes 20 ms, so
    # one process alone needs ~0.75 s for them all: time enough for the other to
    # wake and claim its share even on a loaded machine (no-op jobs were drained
    # by one process before the other's event loop got to run).
    jobs = await app.enqueue_many(  # type: ignore[attr-defined]
        [{"kind": "sleep", "payload": {"seconds": 0.02}} for _ in range(300)]
    )
    for j in jobs:
        await wait_status(pooled, j.id, "succeeded", worker, within=20)
    attempts = await asyncio.gather(*(pooled.attempts(j.id) for j in jobs))
    assert all([a.outcome for a in history] == ["succeeded"] for history in attempts)
    claimers = {history[0].worker_id for history in attempts}
    assert len(claimers) == 2, f"both processes claimed: {claimers}\n{worker.output[-3000:]}"

    assert worker.stop() == 0, worker.output
    output = worker.output
    assert "polling" not in output, output
    assert "prepared statement" not in output, output
    assert await pooled.workers() == [], "a clean stop unregisters"


async def test_worker_retries_fails_and_cancels_through_pgbouncer(
    pooled: Client, start_worker: Callable[..., WorkerProcess]
) -> None:
    app = pooled.catalog
    assert app is not None
    # Retries become runnable with no NOTIFY: the poll finds them.
    worker = start_worker(JOBQ_POLL_INTERVAL_MS="100")

    # Fails once, is retried, succeeds.
    flaky = await app.enqueue("sleep", {"seconds": 0, "fail_attempts": 1})  # type: ignore[attr-defined]
    # Fails every attempt: permanently failed after max_attempts.
    doomed = await app.enqueue(  # type: ignore[attr-defined]
        "sleep", {"seconds": 0, "fail_attempts": 99}, max_attempts=2
    )
    await wait_status(pooled, flaky.id, "succeeded", worker)
    await wait_status(pooled, doomed.id, "failed_permanent", worker)
    assert [a.outcome for a in await pooled.attempts(flaky.id)] == ["failed", "succeeded"]
    assert [a.outcome for a in await pooled.attempts(doomed.id)] == ["failed", "failed"]

    # A cancel of a running job, sent through the pooler, reaches its worker.
    long = await app.enqueue("sleep", {"seconds": 60})  # type: ignore[attr-defined]
    await wait_status(pooled, long.id, "running", worker)
    await pooled.cancel(long.id)
    start = time.monotonic()
    await wait_status(pooled, long.id, "cancelled", worker, within=5)
    assert time.monotonic() - start < 3

    assert worker.stop() == 0, worker.output
    assert "prepared statement" not in worker.output, worker.output


async def test_clean_stop_through_pgbouncer_returns_running_jobs(
    pooled: Client, start_worker: Callable[..., WorkerProcess]
) -> None:
    app = pooled.catalog
    worker = start_worker(JOBQ_SHUTDOWN_GRACE_SECONDS="0.5")
    job = await app.enqueue("sleep", {"seconds": 60})  # type: ignore[union-attr]
    await wait_status(pooled, job.id, "running", worker)
    assert worker.stop() == 0, worker.output
    after = await pooled.get(job.id)
    assert after.status == "queued" and after.attempts == 0
    assert [a.outcome for a in await pooled.attempts(job.id)] == ["interrupted"]


async def test_lost_lease_is_rescued_through_pgbouncer(
    pooled: Client, start_worker: Callable[..., WorkerProcess]
) -> None:
    job_id = await insert_job(
        pooled, kind="noop", status="running", attempts=1, locked_by="gone:1:abc",
        lease_offset_s=-120,
    )  # fmt: skip
    worker = start_worker(JOBQ_LEASE_SECONDS="2", JOBQ_POLL_INTERVAL_MS="200")
    await wait_status(pooled, job_id, "succeeded", worker, within=15)
    job = await pooled.get(job_id)
    assert job.last_error is not None and job.last_error.startswith("lease expired")
    assert "gone:1:abc" in job.last_error


async def test_without_a_listen_url_the_worker_polls_and_says_so(
    pooled: Client, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker(listen=False, JOBQ_POLL_INTERVAL_MS="200")
    await wait_registered(pooled, 1, worker)

    async def warned() -> bool:
        return "JOBQ_LISTEN_DATABASE_URL" in worker.output

    await wait_for(warned, timeout=10)
    job = await pooled.catalog.enqueue("noop")  # type: ignore[union-attr]
    await wait_status(pooled, job.id, "succeeded", worker, within=5)
    assert worker.stop() == 0, worker.output
