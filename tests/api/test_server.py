"""`jobq.api.server.serve()`: the bind check, and a real process stopped by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobq import App, ConfigError, Settings
from jobq.api.server import check_bind, is_loopback, serve
from jobq.client import Client
from jobq.config import redact
from tests.api.support import with_tokens
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]

SERVE_SCRIPT = """
import sys
from jobq import Settings
from jobq.api.server import serve
from jobq.worker.options import WorkerOptions
from tests.support import build_test_app

settings = Settings.from_env()
app = build_test_app(settings)
workers = sys.argv[2] == "1"
options = WorkerOptions(concurrency=2)
sys.exit(serve(app, settings, port=int(sys.argv[1]), workers=workers, worker_options=options))
"""


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_an_open_api_is_not_exposed_beyond_loopback(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="--allow-unauthenticated"):
        check_bind("0.0.0.0", 8000, settings, allow_unauthenticated=False)
    check_bind("0.0.0.0", 8000, settings, allow_unauthenticated=True)
    check_bind("0.0.0.0", 8000, with_tokens(settings, t={"read"}), allow_unauthenticated=False)
    check_bind("127.0.0.1", 8000, settings, allow_unauthenticated=False)


def test_serve_refuses_before_starting_anything(app: App, settings: Settings) -> None:
    with pytest.raises(ConfigError, match="JOBQ_API_TOKENS"):
        serve(app, settings, host="0.0.0.0", port=1)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, process: asyncio.subprocess.Process, base_url: str, log: Path) -> None:
        self.process = process
        self.base_url = base_url
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
async def served(
    request: pytest.FixtureRequest, client: Client, settings: Settings, tmp_path: Path
) -> AsyncIterator[Served]:
    """`serve()` in a child process on the test's schema; param: run workers too."""
    workers: bool = getattr(request, "param", False)
    port = unused_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "JOBQ_SCHEMA": settings.schema,
        "JOBQ_SHUTDOWN_GRACE_SECONDS": "1",
        "JOBQ_POLL_INTERVAL_MS": "100",
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-c", SERVE_SCRIPT, str(port), "1" if workers else "0"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    result = Served(process, f"http://127.0.0.1:{port}", log)
    try:
        async with httpx.AsyncClient(base_url=result.base_url) as http:

            async def healthy() -> bool:
                assert process.returncode is None, result.output()
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(healthy, timeout=30)
        yield result
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop(served: Served) -> int:
    served.process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(served.process.wait(), 30)


@pytest.mark.slow
async def test_serve_api_only_create_get_cancel_list_then_sigterm(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        created = await http.post("/v1/jobs", json={"kind": "script", "payload": {"n": 1}})
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert (await http.get(location)).json()["status"] == "queued"
        cancelled = await http.post(f"{location}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        listed = (await http.get("/v1/jobs")).json()["jobs"]
        assert [j["id"] for j in listed] == [created.json()["id"]]
        assert (await http.get("/readyz")).status_code == 200
        assert (await http.get("/docs")).status_code == 200
    assert await stop(served) == 0, served.output()


@pytest.mark.slow
@pytest.mark.parametrize("served", [True], indirect=True)
async def test_serve_with_workers_runs_jobs_and_stops_gracefully(
    served: Served, client: Client
) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        done = (await http.post("/v1/jobs", json={"kind": "script"})).json()["id"]
        busy = await http.post("/v1/jobs", json={"kind": "script", "payload": {"action": "sleep"}})
        busy_id = busy.json()["id"]

        async def status(job_id: str) -> str:
            return str((await http.get(f"/v1/jobs/{job_id}")).json()["status"])

        async def finished() -> bool:
            return await status(done) == "succeeded"

        async def running() -> bool:
            return await status(busy_id) == "running"

        await wait_for(finished, timeout=20)
        await wait_for(running, timeout=20)
        workers = (await http.get("/v1/workers")).json()["workers"]
        assert len(workers) == 1
    assert await stop(served) == 0, served.output()
    # No job is left running by a clean stop (SPEC §5).
    assert (await client.get(uuid.UUID(busy_id))).status.value == "queued"
    assert await client.workers() == []


# --- what one client may cost the server (issue 12 #2, #13) ------------------------


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.mark.slow
async def test_a_deep_body_of_long_keys_costs_the_server_little_memory(served: Served) -> None:
    # The review's body: 800 nested objects with 2,000-byte keys, 1.6 MB in all.
    # Validating it used to build every path string (640 MB).
    key = "k" * 2000
    body = ('{"kind": "noop", "payload": ' + f'{{"{key}":' * 800 + "1" + "}" * 800 + "}").encode()
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
        warm = b'{"kind": "noop", "payload": ' + b'{"a":' * 70 + b"1" + b"}" * 70 + b"}"
        assert (await http.post("/v1/jobs", content=warm, headers=headers)).status_code == 422
        before = peak_rss_bytes(served.process.pid)
        response = await http.post("/v1/jobs", content=body, headers=headers)
        assert response.status_code in {413, 422}, response.text[:300]
        growth = peak_rss_bytes(served.process.pid) - before
        assert growth < 50 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.0f} MiB"
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/v1/jobs")).json()["jobs"] == []


async def raw_exchange(port: int, request: bytes, deadline: float = 10.0) -> bytes:
    """Send raw bytes and read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), deadline)
    finally:
        writer.close()


@pytest.mark.slow
async def test_serve_refuses_a_huge_header(served: Served) -> None:
    port = int(served.base_url.rsplit(":", 1)[1])
    huge = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 2_000_000 + b"\r\n\r\n"
    try:
        answer = await raw_exchange(port, huge)
    except ConnectionError:
        answer = b"closed by the server"  # it refuses as the header grows, maybe mid-send
    assert answer.startswith((b"HTTP/1.1 431", b"closed by the server")), answer[:100]
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        assert (await http.get("/healthz")).status_code == 200


@asynccontextmanager
async def guarded_server(
    header_timeout: float = 10.0, write_stall_timeout: float = 30.0, body: bytes = b"ok"
) -> AsyncIterator[tuple[int, Any]]:
    """uvicorn with jobq's protocol on a free port, serving `body` to every request;
    yields the port and the uvicorn server (its `server_state.connections`)."""
    import uvicorn

    from jobq.api.http_protocol import guarded_protocol

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    port = unused_port()
    protocol = guarded_protocol(header_timeout, write_stall_timeout=write_stall_timeout)
    config = uvicorn.Config(app, port=port, lifespan="off", log_level="warning", http=protocol)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return server.started

        await wait_for(started, timeout=10)
        yield port, server
    finally:
        server.should_exit = True
        await task


async def test_partial_headers_are_not_held_open(caplog: pytest.LogCaptureFixture) -> None:
    async with guarded_server(header_timeout=0.3) as (port, _):
        slow = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: "  # never finished
        answer = await raw_exchange(port, slow, deadline=5)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        # A connection that sends nothing at all is closed too.
        assert (await raw_exchange(port, b"", deadline=5)).startswith(b"HTTP/1.1 408")
        # A prompt request is served, and the connection is kept alive for the next.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), 5)
            assert head.startswith(b"HTTP/1.1 200")
        writer.close()


async def test_a_header_that_never_ends_is_refused_as_it_grows() -> None:
    # httptools reports a header only once its line ends; the raw bytes count, so
    # the server gives up long before its 60 s header deadline here.
    async with guarded_server(header_timeout=60) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = b""
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
            for _ in range(64):  # up to 4 MiB, never a line end
                writer.write(b"a" * 65536)
                await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
        except ConnectionError:
            answer = b"closed by the server"  # it may reset before we read its 431
        finally:
            writer.close()
        assert answer.startswith((b"HTTP/1.1 431", b"closed by the server")), answer[:80]


async def test_a_client_that_stops_reading_is_dropped() -> None:
    big = b"x" * (32 * 1024 * 1024)  # far over the socket buffers
    async with guarded_server(write_stall_timeout=0.5, body=big) as (port, server):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")  # and never read

        async def dropped() -> bool:
            return not server.server_state.connections

        try:
            await wait_for(dropped, timeout=15)
        finally:
            sock.close()


# --- The first screen (issue 14, item 9) --------------------------------------------


@asynccontextmanager
async def jobq_serve(env: dict[str, str], cwd: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """A real `jobq serve --port 0 --no-workers`; yields its `jobq serving` line and the lines
    before it, once it has logged that line, and stops it with SIGTERM afterwards."""
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "jobq", "serve", "--port", "0", "--no-workers"],
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        while not lines or "jobq serving: " not in lines[-1]:
            line = await asyncio.wait_for(process.stderr.readline(), 60)
            assert line, "\n".join(lines)  # exited before serving
            lines.append(line.decode().rstrip("\n"))
        yield lines[-1], lines[:-1]
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, "\n".join(lines)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def follow(line: str) -> tuple[str, str]:
    """The dashboard's and the API docs' URLs of a `jobq serving` line, checked to answer."""
    words = line.split()
    dashboard, docs = words[words.index("dashboard") + 1], words[words.index("docs") + 1]
    async with httpx.AsyncClient() as http:
        assert "jobq" in (await http.get(dashboard)).text
        assert (await http.get(docs)).status_code == 200
    return dashboard, docs


@pytest.mark.slow
async def test_jobq_serve_says_where_the_dashboard_the_docs_and_the_database_are(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.cli.run import cli_env

    url = settings.database_url or ""
    # A password in the URL (the test server ignores it, or it has none) is not shown.
    secret_url = url.replace("postgres@", "postgres:hunter2@", 1) if "@127." in url else url
    async with jobq_serve(cli_env(settings, DATABASE_URL=secret_url), tmp_path) as (line, _):
        dashboard, _ = await follow(line)
    port = dashboard.removeprefix("http://127.0.0.1:").removesuffix("/")
    assert line.endswith(
        f"jobq serving: dashboard http://127.0.0.1:{port}/  API docs "
        f"http://127.0.0.1:{port}/docs  database {redact(secret_url)}"
    ), line
    assert "hunter2" not in line


@pytest.mark.slow
async def test_jobq_serve_says_where_the_embedded_data_lives(
    settings: Settings, xdg_data_home: Path, tmp_path: Path
) -> None:
    """Without DATABASE_URL, in the user's data directory (here a test's XDG_DATA_HOME)."""
    from jobq.db.embedded import data_dir
    from tests.cli.run import cli_env

    env = cli_env(settings, XDG_DATA_HOME=str(xdg_data_home))
    env.pop("DATABASE_URL")
    async with jobq_serve(env, tmp_path) as (line, before):
        await follow(line)
    home = xdg_data_home / "jobq"
    pgdata = data_dir(home)
    # The first start is one line, with the time it took; initdb's and pg_ctl's
    # output stays out of the terminal.
    started = [b for b in before if "jobq.db.embedded" in b]
    assert len(started) == 1, before
    assert re.search(
        rf"embedded PostgreSQL created and started in \d+\.\ds, data in {re.escape(str(pgdata))}$",
        started[0],
    ), started
    assert not any("initdb" in b or "The files belonging" in b or "Success." in b for b in before)
    where = "" if pgdata.is_relative_to(home) else f", its files in {pgdata}"
    assert line.endswith(f"  data {home} (embedded PostgreSQL{where})"), line


def test_describe_data_hides_the_password(tmp_path: Path) -> None:
    from jobq.api.server import describe_data

    shown = describe_data(Settings(database_url="postgresql://jobq:hunter2@db:5432/jobq"))
    assert shown == "database postgresql://jobq:***@db:5432/jobq"


def test_serve_raises_a_low_open_files_limit_to_its_connection_limit() -> None:
    """At a soft limit of 1024 (common), accept() would fail with EMFILE before
    uvicorn's 503 at LIMIT_CONCURRENCY connections."""
    import resource
    import subprocess
    import sys

    from jobq.api.server import LIMIT_CONCURRENCY

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < LIMIT_CONCURRENCY + 256:
        pytest.skip(f"the hard limit here ({hard}) is below what serve asks for")

    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    code = (
        "import resource; from jobq.api.server import raise_open_files_limit as r; "
        "print(r(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=low_soft_limit,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [str(LIMIT_CONCURRENCY + 256)] * 2
