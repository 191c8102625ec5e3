"""`jobq serve` and `jobq worker`: their defaults (the worker tests run them)."""

from __future__ import annotations


def test_worker_metrics_bind_loopback_unless_asked() -> None:
    """Finding 14: /metrics of `jobq worker` was on every interface by default."""
    import typer

    from jobq.cli import cli
    from jobq.worker.options import DEFAULT_METRICS_HOST, WorkerOptions

    command = typer.main.get_command(cli).get_command(None, "worker")  # type: ignore[attr-defined]
    assert command is not None
    params = command.make_context("worker", []).params
    assert params["metrics_host"] == DEFAULT_METRICS_HOST == "127.0.0.1"
    assert WorkerOptions().metrics_host == "127.0.0.1"
    assert params["concurrency"] == WorkerOptions().concurrency
