"""`python -m jobq.worker`: runs one worker process, as the supervisor starts its children.

Settings come from the environment (DATABASE_URL, JOBQ_*), which the
supervisor fills in; people run `jobq worker` instead.
"""

from __future__ import annotations

import argparse
import sys

from jobq.appref import load_app
from jobq.config import Settings
from jobq.errors import ConfigError, JobqError
from jobq.logs import configure_logging
from jobq.worker.options import DEFAULT_CONCURRENCY, WorkerOptions
from jobq.worker.process import run_in_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobq.worker")
    parser.add_argument("--app", default=None, help="module:attribute of a jobq.App")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--queues", default=None, help="comma-separated queues (default: all)")
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--log-format", default="text", choices=("text", "json"))
    parser.add_argument("--supervisor-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    queues = [q for q in (args.queues or "").split(",") if q.strip()] or None
    try:
        settings = Settings.from_env()
        # JOBQ_LOG_LEVEL: the supervisor passes its settings on (worker_environment).
        configure_logging(args.log_format, settings.log_level.upper())
        app = load_app(args.app)
        options = WorkerOptions(concurrency=args.concurrency, queues=queues, burst=args.burst)
        return run_in_process(app, settings, options, supervisor_pid=args.supervisor_pid)
    except JobqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


if __name__ == "__main__":
    sys.exit(main())
