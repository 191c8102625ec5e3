"""Runs the real `jobq` command (a subprocess: python -m jobq) against a test's schema.

The tests in this folder check output, --json and the documented exit codes:
0 ok, 1 error, 2 usage (bad flag, id or payload), 3 not found, 4 conflict.
Every error is one `error:` line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobq import Settings

ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def error_line(self) -> str:
        """The one line an error prints (and checks that it is only one)."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("error: "), self.err
        assert "Traceback" not in self.err
        return lines[0]


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQ_")}
    # A fixed, wide, colourless "not a terminal" unless a test asks otherwise.
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        env.pop(name, None)
    env.update(DATABASE_URL=settings.database_url or "", JOBQ_SCHEMA=settings.schema, NO_COLOR="1")
    env.update(extra)
    return env


async def jobq(
    settings: Settings,
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> Run:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobq",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env or cli_env(settings),
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate(stdin.encode() if stdin is not None else None), COMMAND_TIMEOUT
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def ok(settings: Settings, *args: str, stdin: str | None = None) -> Run:
    run = await jobq(settings, *args, stdin=stdin)
    assert run.code == 0, run
    assert "Traceback" not in run.err
    return run


def ids(text: str) -> list[uuid.UUID]:
    return [uuid.UUID(line) for line in text.split()]


def flat(text: str) -> str:
    """Help text with rich's box characters and line breaks flattened to single spaces."""
    return " ".join(text.replace("│", " ").split())
