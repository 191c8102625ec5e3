"""`jobq --help` and every command's help: an example and the exit codes."""

from __future__ import annotations

import asyncio

import pytest

from jobq import Settings
from tests.cli.run import flat, jobq, ok

COMMANDS = [
    ["serve"],
    ["worker"],
    ["migrate"],
    ["enqueue"],
    ["get"],
    ["list"],
    ["cancel"],
    ["retry"],
    ["queues"],
    ["workers"],
    ["pause"],
    ["resume"],
    ["db", "status"],
    ["db", "url"],
    ["db", "stop"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example_and_the_exit_codes(command: list[str]) -> None:
    # In process (typer's runner) to keep it fast; the real command is run below.
    from typer.testing import CliRunner

    from jobq.cli import cli

    result = CliRunner().invoke(cli, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = flat(result.output)
    assert "Example:" in text
    assert "Exit codes: 0 ok, 1 error, 2 usage" in text and "4 conflict" in text


async def test_the_real_command_shows_help(settings: Settings) -> None:
    top, enqueue = await asyncio.gather(ok(settings, "--help"), ok(settings, "enqueue", "--help"))
    for name in ("serve", "enqueue", "list", "queues", "pause", "db"):
        assert name in top.out
    assert "Exit codes: 0 ok, 1 error, 2 usage" in flat(top.out)
    text = flat(enqueue.out)
    for flag in ("--queue", "--priority", "--run-at", "--max-attempts", "--idempotency-key"):
        assert flag in text
    assert "--count" in text and "--jsonl" in text and "Example: jobq enqueue" in text
    no_args = await jobq(settings)
    assert no_args.code in (0, 2) and "Usage" in no_args.out + no_args.err
