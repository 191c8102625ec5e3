"""The scripts in bench/ still run against the code: each answers --help, and the
two drains run a few hundred jobs (they build Workers and time Queries methods,
so a changed signature breaks them; docs/BENCHMARKS.md tells people to run them)."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# --- the peers of bench/compare: each wired the same way ------------------------------------

PEERS_DIR = BENCH / "peers"
# What bench/peers/common.py's run_bench calls on a runner's System.
SYSTEM_METHODS = {
    "setup",
    "close",
    "reset",
    "analyze",
    "enqueue_one",
    "enqueue_many",
    "drain_window",
    "succeeded_once",
    "running",
    "unfinished",
}


def compare_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_compare", BENCH / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_runs_every_python_peer_each_in_its_own_database() -> None:
    compare = compare_module()
    assert set(compare.PEERS) == {"pgqueuer", "procrastinate", "oban", "chancy"}
    databases = [compare.DATABASES[name] for name in ("jobq", *compare.PEERS)]
    assert len(set(databases)) == len(databases)
    installer = (BENCH / "compare").read_text()
    assert "for peer in " + " ".join(compare.PEERS) + "; do" in installer


@pytest.mark.parametrize("peer", ["pgqueuer", "procrastinate", "oban", "chancy"])
def test_each_peer_has_pinned_requirements_and_a_complete_runner(peer: str) -> None:
    requirements = (PEERS_DIR / f"requirements-{peer}.txt").read_text().splitlines()
    pins = [line for line in requirements if line and not line.startswith("#")]
    assert pins and all("==" in line for line in pins), pins
    tree = ast.parse((PEERS_DIR / f"{peer}_bench.py").read_text())
    systems = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name.lower().endswith("system")
    ]
    assert len(systems) == 1
    methods = {
        node.name
        for node in systems[0].body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    assert methods >= SYSTEM_METHODS, SYSTEM_METHODS - methods
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert {"run_bench", "parse_args", "config_from", "print_result", "report_start"} <= called


def test_the_table_has_a_column_for_every_peer() -> None:
    compare = compare_module()
    round_ = {
        name: {
            "enqueue_single_jobs_per_s": 100.0 + index,
            "drain": {"1": {"jobs_per_s": 10.0}, "2": {"jobs_per_s": 20.0}},
        }
        for index, name in enumerate(("jobq", *compare.PEERS, "pgqueuer_defaults"))
    }
    meta = {
        "started": "now",
        "rounds": 1,
        "machine": "m",
        "postgres": "p",
        "settings": "s",
        "versions": "v",
        "batch_size": 1000,
        "jobs": 20000,
        "concurrency": 10,
        "in_flight": 1000,
        "http_clients": 32,
    }
    table = compare.render(compare.summarise([round_]), meta)
    header = next(line for line in table.splitlines() if line.startswith("| measure |"))
    assert header == "| measure | jobq | PgQueuer | Procrastinate | oban-py | Chancy |"
    single = next(line for line in table.splitlines() if "one job per call" in line)
    assert single.split(" | ")[1:] == ["100", "101", "102", "103", "104 |"]
