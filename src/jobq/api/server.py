"""`serve()`: what `jobq serve` runs — uvicorn with the API and, unless told
otherwise, the worker runtime, in one process and one event loop.

Signals are handled here, not by uvicorn (which would re-raise SIGTERM at the
end and make the exit status 143): the first SIGTERM/SIGINT stops the HTTP
server (in-flight requests finish) and asks the worker to stop gracefully
(SPEC §5); a second one stops both at once. A clean stop exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import uvicorn

import jobq
from jobq.api.app import create_app
from jobq.api.http_protocol import guarded_protocol
from jobq.client import Client
from jobq.config import Settings, redact
from jobq.db.pool import POOL_MAX_SIZE
from jobq.errors import ConfigError, JobqError

if TYPE_CHECKING:  # imported late at run time: API-only needs none of the worker
    from jobq.worker.options import WorkerOptions

log = logging.getLogger("jobq.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Connections and requests served at once; uvicorn answers 503 beyond, before
# the process runs out of file descriptors or memory. A `Prefer: wait` request
# holds its connection while it waits (about 30 KiB each, no database
# connection): 2000 leaves room for 1,000 held waits and the rest of the
# traffic (uvicorn counts the connection it is answering, so a limit of 1000
# serves at most 999 at once).
LIMIT_CONCURRENCY = 2000
KEEP_ALIVE_SECONDS = 5
# Descriptors beyond the connections: the pool, LISTEN, logs, the embedded socket.
_SPARE_FILES = 256


def raise_open_files_limit(wanted: int = LIMIT_CONCURRENCY + _SPARE_FILES) -> int:
    """Raise the soft limit on open files towards `wanted` (never above the hard
    limit, never lower): many systems start processes at 1024, below the
    connections `serve` accepts, and accept() would then fail with EMFILE
    instead of uvicorn answering 503. Returns the soft limit in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


class _Worker(Protocol):
    async def run(self, *, install_signal_handlers: bool = ...) -> Any: ...
    def request_stop(self) -> Any: ...


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, port: int, settings: Settings, allow_unauthenticated: bool) -> None:
    """Refuse to expose an open API (no tokens) beyond this machine unless asked to."""
    if settings.api_tokens or allow_unauthenticated or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to serve on {host}:{port} without authentication: JOBQ_API_TOKENS is not "
        "set, so anyone who can reach that address could enqueue, cancel and delete jobs. "
        "Set JOBQ_API_TOKENS, bind to 127.0.0.1, or pass --allow-unauthenticated."
    )


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, data: str) -> None:
        super().__init__(config)
        self.data = data

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # serve() owns the signals (see the module docstring).
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if sockets is not None and self.started:
            # uvicorn names its address only when it binds the socket itself.
            self._log_started_message(sockets)
        if self.started:  # bound: the first screen says where everything is
            port = self.servers[0].sockets[0].getsockname()[1]
            log.info("%s", serving_line(self.config.host, port, self.data))


def serving_line(host: str, port: int, data: str) -> str:
    """The one line `jobq serve` logs once it listens: the dashboard, the API docs, the data."""
    base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    return f"jobq serving: dashboard {base}/  API docs {base}/docs  {data}"


def describe_data(settings: Settings) -> str:
    """Where the jobs are: `database <URL without its password>`, or the embedded
    PostgreSQL's home (and, when elsewhere, as root's can be, its data folder)."""
    if settings.database_url:
        return f"database {redact(settings.database_url)}"
    from jobq.db import embedded

    home = settings.home.resolve()
    pgdata = embedded.data_dir(home)
    where = "" if pgdata.is_relative_to(home) else f", its files in {pgdata}"
    return f"data {home} (embedded PostgreSQL{where})"


def serve(
    jobq_app: jobq.App,
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: bool = True,
    worker_options: WorkerOptions | None = None,
    allow_unauthenticated: bool = False,
    migrate: bool = True,
) -> int:
    """Run the API (and the workers) until SIGTERM/SIGINT; returns the exit status.

    Opens its own client in its own event loop (with `migrate=False` it refuses a
    database whose schema is behind instead of migrating it). `worker_options`
    (concurrency and queues; default: WorkerOptions()) apply when `workers`."""
    check_bind(host, port, settings, allow_unauthenticated)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    with contextlib.suppress(RuntimeError):  # already connected: the caller configured it
        jobq_app.configure(settings)
    if workers and worker_options is None:
        from jobq.worker.options import WorkerOptions

        worker_options = WorkerOptions()
    # Bound before anything starts: a port in use is one error line (exit 1),
    # not a started-then-stopped server and worker.
    sock = listen(host, port)
    options = _Options(host, port, worker_options if workers else None, migrate, sock)
    try:
        return _run_loop(_serve(jobq_app, settings, options))
    finally:
        sock.close()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a JobqError naming the address and why."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    try:
        sock = socket.create_server((bare, port), family=family, backlog=2048)
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise JobqError(f"cannot listen on {host}:{port}: {reason} (--host, --port)") from None
    sock.set_inheritable(True)
    return sock


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """uvloop when installed (uvicorn[standard] brings it): measured +8% HTTP enqueues."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


@dataclass(frozen=True, slots=True)
class _Options:
    host: str
    port: int
    worker: WorkerOptions | None  # None: API only
    migrate: bool
    sock: socket.socket


async def _serve(jobq_app: jobq.App, settings: Settings, options: _Options) -> int:
    # A client of this event loop: one the caller opened in another loop (asyncio.run)
    # cannot be used here, so it is replaced.
    # The API's pool, plus one connection per job slot when the worker runs here.
    pool_size = POOL_MAX_SIZE + (options.worker.concurrency if options.worker else 0)
    raise_open_files_limit()
    client = await Client.connect(
        settings, jobq_app, migrate=options.migrate, pool_max_size=pool_size
    )
    jobq_app.use_client(client)
    try:
        api = create_app(jobq_app, client=client, settings=settings)
        # No access log: a line per request costs ~10% of the throughput, and
        # jobq_http_requests_total counts them anyway.
        config = uvicorn.Config(
            api,
            host=options.host,
            port=options.port,
            lifespan="on",
            access_log=False,
            http=guarded_protocol(),
            limit_concurrency=LIMIT_CONCURRENCY,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        server = _Server(config, describe_data(settings))
        worker: _Worker | None = None
        if options.worker is not None:
            from jobq.worker.runtime import Worker  # imported late: API-only needs none of it

            worker = Worker(jobq_app.registry, client, options.worker)
        shutdown = _Shutdown(server, worker)
        with _stop_on_signals(shutdown):
            return await _run_both(server, worker, shutdown, options.sock)
    finally:
        await jobq_app.close()


class _Shutdown:
    """The first request stops both gracefully; a second one stops them at once."""

    def __init__(self, server: uvicorn.Server, worker: _Worker | None) -> None:
        self.server = server
        self.worker = worker
        self.requests = 0

    def request(self, reason: str, *, by_signal: bool = True) -> None:
        self.requests += 1
        if not by_signal:
            log.info("%s: stopping", reason)
            self.server.should_exit = True
        elif self.requests == 1:
            log.info("%s: stopping gracefully (send the signal again to stop at once)", reason)
            self.server.should_exit = True
        else:
            log.warning("%s again: stopping at once", reason)
            self.server.force_exit = True
        if self.worker is not None:
            self.worker.request_stop()


@contextlib.contextmanager
def _stop_on_signals(shutdown: _Shutdown) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, shutdown.request, sig.name)
    try:
        yield
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _run_both(
    server: uvicorn.Server, worker: _Worker | None, shutdown: _Shutdown, sock: socket.socket
) -> int:
    async def run_server() -> int:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits this way when it cannot bind or start
            return exc.code if isinstance(exc.code, int) else 1
        return 0

    async def run_worker() -> int:
        assert worker is not None
        try:
            await worker.run(install_signal_handlers=False)
        except Exception:
            log.exception("the worker runtime failed; stopping the server")
            return 1
        return 0

    tasks = {asyncio.create_task(run_server(), name="jobq-http")}
    if worker is not None:
        tasks.add(asyncio.create_task(run_worker(), name="jobq-worker"))
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    if shutdown.requests == 0:
        # One stopped on its own (a failure): stop the other.
        name = next(iter(done)).get_name().removeprefix("jobq-")
        shutdown.request(f"the {name} stopped", by_signal=False)
    codes = [task.result() for task in done]
    if pending:
        finished, _ = await asyncio.wait(pending)
        codes += [task.result() for task in finished]
    return max(codes)
