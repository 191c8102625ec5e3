"""Renders docs/CLI.md, the reference of every `jobq` command, from the typer app itself.

docs/generate.py writes it with the other reference pages; tests/test_docs_reference.py
fails when docs/CLI.md and this output differ.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from jobq.cli import cli
from jobq.cli.plumbing import SETTINGS_FLAGS, SETTINGS_PANEL, SETTINGS_WITHOUT_FLAGS
from jobq.config import Settings, env_name, flag_name

COMMAND = "python docs/generate.py"
EXIT_CODES = [
    ("0", "ok"),
    (
        "1",
        "error: the database is unreachable or failed, the schema is too old, "
        "`jobq serve`'s address is in use, ...",
    ),
    ("2", "usage: a bad flag, value, argument, id or payload (nothing was done)"),
    ("3", "not found: no job with that id"),
    ("4", "conflict: the job's state forbids it, or an idempotency key was reused"),
    ("5", "`--wait` (get, enqueue): the job ended `failed_permanent`"),
    ("6", "`--wait` (get, enqueue): the job was cancelled"),
    ("7", "`--wait` (get, enqueue): the wait timed out before the job ended"),
    ("130", "interrupted (Ctrl-C)"),
]


def render() -> str:
    """docs/CLI.md: the exit codes, the settings flags, then every command."""
    root = typer.main.get_command(cli)
    ctx = root.context_class(root, info_name="jobq")
    commands = list(_commands(root, ctx))
    lines = [
        "# The `jobq` command line",
        "",
        f"<!-- Generated from the typer app by `{COMMAND}`; do not edit. -->",
        "",
        *_paragraphs(root.help or "", examples=False),
        "Every command has `--help` with an example. Every command that reports something has",
        "`--json` (one JSON document on stdout); `serve` and `worker` run until stopped and",
        "report in their logs instead (`--log-format json`).",
        "",
        "| command | what it does | `--json` |",
        "|---|---|---|",
    ]
    for path, command, sub in commands:
        has_json = any("--json" in getattr(p, "opts", ()) for p in command.get_params(sub))
        summary = command.get_short_help_str(limit=200)
        lines.append(f"| [`{path}`](#{_anchor(path)}) | {_cell(summary)} | {_yes(has_json)} |")
    lines += ["", "## Exit codes", "", "| code | meaning |", "|---|---|"]
    lines += [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES]
    lines += [
        "",
        "An error is one `error:` line on stderr naming the problem and what to do, never a",
        "traceback (but for an `--app` module that raises on import: its own frames follow).",
        "Each command below says when it exits with a code of its own.",
        "",
        *_settings_section(commands),
    ]
    for path, command, sub in commands:
        lines += _command_section(path, command, sub)
    return "\n".join(lines).rstrip("\n") + "\n"


def _commands(group: Any, ctx: Any, prefix: str = "jobq") -> Any:
    """(`jobq db status`, command, its context) for every command, in `--help` order."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        sub = command.context_class(command, info_name=name, parent=ctx)
        if hasattr(command, "list_commands"):
            yield from _commands(command, sub, f"{prefix} {name}")
        else:
            yield f"{prefix} {name}", command, sub


def _settings_section(commands: list[tuple[str, Any, Any]]) -> list[str]:
    taking = [path for path, command, sub in commands if _settings_params(command, sub)]
    who = "Every command takes" if len(taking) == len(commands) else "These commands take"
    lines = [
        "## Settings flags",
        "",
        f"{who} a flag for each setting; a flag wins over its variable (docs/CONFIGURATION.md).",
        "",
        "| flag | variable | meaning |",
        "|---|---|---|",
    ]
    for name, (_, help_text) in SETTINGS_FLAGS.items():
        lines.append(f"| `{flag_name(name)}` | `{env_name(name)}` | {_cell(help_text)} |")
    lines += ["", "Settings with no flag, on purpose (set the variable):", ""]
    for field in dataclasses.fields(Settings):
        if field.name in SETTINGS_WITHOUT_FLAGS:
            lines.append(f"- `{env_name(field.name)}`: {SETTINGS_WITHOUT_FLAGS[field.name]}.")
    return [*lines, ""]


def _command_section(path: str, command: Any, ctx: Any) -> list[str]:
    usage = " ".join([path, *command.collect_usage_pieces(ctx)])
    lines = [f"## `{path}`", "", f"Usage: `{usage}`", "", *_paragraphs(command.help or "")]
    params = [
        p
        for p in command.get_params(ctx)
        if p.name != "help" and not _is_setting(p) and p.get_help_record(ctx)
    ]
    if params:
        lines += ["| argument or option | meaning |", "|---|---|"]
        for p in params:
            name, help_text = p.get_help_record(ctx)
            lines.append(f"| `{_cell(name)}` | {_cell(help_text)} |")
        lines.append("")
    if _settings_params(command, ctx):
        lines += ["And the [settings flags](#settings-flags).", ""]
    if command.epilog:
        lines += [command.epilog, ""]
    return lines


def _paragraphs(text: str, *, examples: bool = True) -> list[str]:
    """A docstring's paragraphs; `Example:` ones become shell blocks."""
    lines: list[str] = []
    for para in text.strip().split("\n\n"):
        flat = " ".join(para.split())
        if examples and flat.startswith("Example: "):
            lines += ["```sh", flat.removeprefix("Example: "), "```", ""]
        else:
            lines += [flat, ""]
    return lines


def _is_setting(param: Any) -> bool:
    return getattr(param, "rich_help_panel", None) == SETTINGS_PANEL


def _settings_params(command: Any, ctx: Any) -> list[Any]:
    return [p for p in command.get_params(ctx) if _is_setting(p)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(path: str) -> str:
    """GitHub's anchor of a `## \\`jobq db status\\`` heading."""
    return path.replace(" ", "-")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
