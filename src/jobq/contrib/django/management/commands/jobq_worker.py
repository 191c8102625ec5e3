"""`python manage.py jobq_worker [jobq worker's flags]`: the project's jobq worker.

It runs `jobq worker --app jobq.contrib.django.worker:app` (Django tasks and
the kinds of JOBQ['APP']) on the project's database: DATABASE_URL and
JOBQ_SCHEMA default to JOBQ['DATABASE']'s connection and JOBQ['SCHEMA'], so
the worker reads the tables the project's views write. Any flag of `jobq
worker` passes through (`--burst`, `--concurrency 20`, `--queues emails`).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from jobq.contrib.django.conf import config, worker_database_url

WORKER_APP_REF = "jobq.contrib.django.worker:app"


class Command(BaseCommand):
    help = "Run a jobq worker for this project (Django tasks and JOBQ['APP']'s kinds)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("worker_args", nargs=argparse.REMAINDER, help="jobq worker's flags")

    def handle(self, *args: Any, **options: Any) -> None:
        from jobq.cli import cli

        os.environ["DATABASE_URL"] = worker_database_url()
        schema = config().schema
        if schema is not None:
            os.environ["JOBQ_SCHEMA"] = schema
        # typer exits with the worker's code (jobq's exit codes, docs/CLI.md).
        cli(["worker", "--app", WORKER_APP_REF, *options["worker_args"]], prog_name="jobq")
