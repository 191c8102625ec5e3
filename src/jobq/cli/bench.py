"""`jobq bench`: the command that runs `jobq.bench`'s measurements and prints their report."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from jobq.bench.report import BenchConfig, BenchResult
from jobq.bench.runner import Bench
from jobq.cli.plumbing import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_USAGE,
    JsonOpt,
    fail,
    out,
    run_async,
    with_settings,
)
from jobq.cli.render import print_json, progress_bar
from jobq.client import MAX_BATCH_SIZE
from jobq.config import Settings


class _ProgressBar:
    """The runner's Reporter as a rich progress bar on stderr (only on a terminal)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.task: Any = None

    def phase(self, description: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)
        self.task = self.progress.add_task(description, total=max(total, 1))

    def update(self, completed: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=completed)


def bench_command(
    settings: Settings,
    jobs: Annotated[
        int, typer.Option(min=0, help="Jobs to enqueue and drain (0: skip both).")
    ] = 20_000,
    single: Annotated[
        int, typer.Option(min=0, help="Of those, how many to enqueue one at a time.")
    ] = 1_000,
    batch_size: Annotated[
        int, typer.Option(min=1, max=MAX_BATCH_SIZE, help="Jobs per enqueue_many call.")
    ] = 1_000,
    concurrency: Annotated[int, typer.Option(min=1, help="Jobs at once per worker process.")] = 10,
    processes: Annotated[
        list[int] | None,
        typer.Option(
            "--processes", min=1, help="Worker processes for the drain (repeat: one drain each)."
        ),
    ] = None,
    latency_samples: Annotated[
        int, typer.Option(min=0, help="Jobs for the idle pickup latency (0: skip).")
    ] = 200,
    in_flight: Annotated[
        int, typer.Option(min=0, help="Measure worker RSS with this many sleep jobs running.")
    ] = 0,
    in_flight_seconds: Annotated[
        float, typer.Option(min=0.5, help="How long each of those sleep jobs sleeps.")
    ] = 5.0,
    analyze: Annotated[bool, typer.Option(help="ANALYZE the jobs table before each drain.")] = True,
    keep_schema: Annotated[
        bool, typer.Option("--keep-schema", help="Keep the scratch schema for a look after.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Measure jobq here: enqueue rate, drain rate, idle pickup latency (and worker RSS).

    It works in a scratch schema of its own (dropped at the end) with `jobq worker` processes.

    Exits 1 unless every job succeeded exactly once (the self-check).

    Example: jobq bench --jobs 20000 --concurrency 10 --processes 1 --processes 2

    Example: jobq bench --jobs 0 --latency-samples 500 --json
    """
    config = BenchConfig(
        jobs=jobs,
        single=single,
        batch_size=batch_size,
        concurrency=concurrency,
        processes=tuple(processes or [1]),
        latency_samples=latency_samples,
        in_flight=in_flight,
        in_flight_seconds=in_flight_seconds,
        analyze=analyze,
    )
    if not (jobs or latency_samples or in_flight):
        fail("nothing to measure: give --jobs, --latency-samples or --in-flight", EXIT_USAGE)
    result = _run(settings, config, keep_schema)
    if json_out:
        print_json(result.to_json())
    else:
        out.print(result.table())
    if not result.ok:
        details = "; ".join(f"{name}: {c.describe()}" for name, c in result.checks if not c.ok)
        fail(f"self-check failed: {details}", EXIT_ERROR)


def _run(settings: Settings, config: BenchConfig, keep_schema: bool) -> BenchResult:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description:<44}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with progress_bar(*columns, transient=False) as progress:
        bench = Bench(settings, config, _ProgressBar(progress))
        return run_async(bench.run(keep_schema=keep_schema))


def register(app: typer.Typer) -> None:
    """Add `bench` to `app` (the `jobq` root)."""
    app.command(name="bench", epilog=EXIT_CODES_HELP)(with_settings(bench_command))
