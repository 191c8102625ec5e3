"""Every module of the package imports on its own, first, in a fresh interpreter:
no import cycle can hide behind the order in which other modules happen to load."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import jobq

# Modules whose import sets a program up, as a __main__ runs one: the Django
# worker app sets Django up, which needs a project's DJANGO_SETTINGS_MODULE
# (tests/contrib/django import it in their worker subprocesses).
PROGRAM_MODULES = frozenset({"jobq.contrib.django.worker"})


def all_modules() -> list[str]:
    names = ["jobq"]
    for info in pkgutil.walk_packages(jobq.__path__, prefix="jobq."):
        # A __main__ module runs its program when imported: that is its job.
        if not info.name.endswith(".__main__") and info.name not in PROGRAM_MODULES:
            names.append(info.name)
    return sorted(names)


def import_alone(module: str) -> tuple[str, int, str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return module, done.returncode, done.stderr[-2000:]


def test_every_module_imports_alone() -> None:
    modules = all_modules()
    assert len(modules) > 40  # the walk found the package, not an empty path
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(import_alone, modules))
    failed = {module: err for module, code, err in results if code != 0}
    assert not failed, failed
