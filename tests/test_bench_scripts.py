"""The scripts in bench/ still run against the code: each answers --help, and the
two drains run a few hundred jobs (they build Workers and time Queries methods,
so a changed signature breaks them; docs/BENCHMARKS.md tells people to run them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobq import Settings

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py"))


def run(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_bench_script_answers_help(script: str) -> None:
    done = run(script, "--help")
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("drain.py", ["--jobs", "300", "--concurrency", "5"]),
        ("trace_drain.py", ["--jobs", "300"]),
        ("workflows.py", ["--nodes", "300", "--repeat", "1"]),
        ("flow_drain.py", ["--jobs", "300", "--rounds", "1", "--variants", "keys,fair,bare"]),
        ("finish_ab.py", ["--jobs", "300", "--repeat", "1", "--ref", "HEAD"]),
        ("concurrent_enqueue.py", ["--callers", "8", "--jobs", "80", "--rounds", "1"]),
        ("insert_shapes.py", ["--calls", "20", "--rounds", "1"]),
    ],
)
def test_the_drain_scripts_run(settings: Settings, script: str, args: list[str]) -> None:
    env = {**os.environ, "DATABASE_URL": settings.database_url or ""}
    done = run(script, *args, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
