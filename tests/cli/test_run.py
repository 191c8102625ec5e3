"""`jobq serve` and `jobq worker`: their defaults (tests/test_worker_process.py runs them)."""

from __future__ import annotations


def test_worker_metrics_bind_loopback_unless_asked() -> None:
    """Finding 14: /metrics of `jobq worker` was on every interface by default."""
    import inspect

    import typer

    from jobq.cli import cli
    from jobq.worker import process, supervisor

    command = typer.main.get_command(cli).get_command(None, "worker")  # type: ignore[attr-defined,arg-type]
    assert command is not None
    params = command.make_context("worker", []).params
    assert params["metrics_host"] == process.DEFAULT_METRICS_HOST == "127.0.0.1"
    for fn in (process.run_in_process, supervisor.run_worker_command):
        default = inspect.signature(fn).parameters["metrics_host"].default
        assert default == "127.0.0.1", fn
