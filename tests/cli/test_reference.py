"""docs/CLI.md is generated from the typer app, and every CLI module imports alone."""

from __future__ import annotations

import asyncio
import pkgutil
import sys

import jobq.bench
import jobq.cli
from tests.cli.run import ROOT


def test_docs_cli_md_is_the_generated_reference() -> None:
    from jobq.cli.reference import COMMAND, render

    written = (ROOT / "docs" / "CLI.md").read_text(encoding="utf-8")
    assert written == render(), f"docs/CLI.md is out of date: run {COMMAND}"


def modules() -> list[str]:
    found = ["jobq.cli", "jobq.bench"]
    for package in (jobq.cli, jobq.bench):
        found += [m.name for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")]
    return sorted(found)


async def test_every_cli_module_imports_alone_in_a_fresh_interpreter() -> None:
    """An import cycle hides behind import order; a fresh interpreter per module finds it."""
    assert "jobq.cli.plumbing" in modules() and "jobq.cli.bench" in modules()

    async def import_alone(module: str) -> tuple[str, int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            f"import {module}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return module, proc.returncode, err.decode()

    results = await asyncio.gather(*(import_alone(m) for m in modules()))
    failed = {module: err for module, code, err in results if code != 0}
    assert not failed, failed
