"""Log lines (issue 12, finding 8): one record is one line; traceparent is W3C or nothing."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from jobq import App, JobContext
from jobq.client import Client
from jobq.handlers import valid_traceparent
from jobq.job_request import JobRequest
from jobq.logs import JsonFormatter, TextFormatter, one_line
from jobq.testing import drain

FORGED = "boom\n2025-01-01 00:00:00,000 CRITICAL jobq.worker: forged"
BREAKS = "a\nb\rc\x0bd\x0ce\x1cf\x85g\u2028h\u2029i\x00j\x7fk\x9bl\tm"
VALID_TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def record(msg: str, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("jobq.worker", logging.INFO, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_one_line_escapes_every_line_break_and_control_character() -> None:
    escaped = one_line(BREAKS)
    assert escaped.splitlines() == [escaped]
    assert escaped == ("a\\nb\\rc\\x0bd\\x0ce\\x1cf\\x85g\\u2028h\\u2029i\\x00j\\x7fk\\x9bl\\tm")
    assert all(ch.isprintable() for ch in escaped)
    assert one_line("plain text, é and 日本") == "plain text, é and 日本"
    # Bidirectional overrides and zero-width characters read as something else.
    assert one_line("a\u202eb\u2066c\u200bd\ufeff") == "a\\u202eb\\u2066c\\u200bd\\ufeff"


def test_text_format_keeps_a_forged_message_and_its_fields_on_one_line() -> None:
    rec = record("job failed: %s", queue="q\u2028x")
    rec.args = (FORGED,)
    line = TextFormatter().format(rec)
    assert line.splitlines() == [line]
    assert "boom\\n2025-01-01" in line and "queue=q\\u2028x" in line


def test_text_format_puts_a_traceback_on_the_same_line() -> None:
    try:
        raise ValueError(FORGED)
    except ValueError:
        rec = record("handler raised")
        rec.exc_info = sys.exc_info()
    line = TextFormatter().format(rec)
    assert line.splitlines() == [line]
    assert "Traceback (most recent call last):\\n" in line
    assert "ValueError: boom\\n2025" in line


def test_json_format_is_one_line_and_keeps_the_text() -> None:
    rec = record("%s", job_id="x", kind="k\n")
    rec.args = (BREAKS,)
    line = JsonFormatter().format(rec)
    assert line.splitlines() == [line]
    entry = json.loads(line)
    assert entry["msg"] == BREAKS and entry["kind"] == "k\n"


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (VALID_TP, True),
        ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", True),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False),
        ("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", False),
        (VALID_TP + "\n", False),
        (VALID_TP + "\n2025-01-01 CRITICAL forged", False),
        ("00-abc-def-01", False),
        ("", False),
        (None, False),
        (17, False),
    ],
)
def test_valid_traceparent(value: object, valid: bool) -> None:
    assert valid_traceparent(value) == (value if valid else None)


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def test_a_worker_logs_a_forged_error_and_traceparent_on_one_line(
    app: App, client: Client, text_log: io.StringIO
) -> None:
    seen: list[str | None] = []

    @app.task("forge", max_attempts=1)
    async def forge(ctx: JobContext, payload: dict[str, Any]) -> None:
        seen.append(ctx.traceparent)
        raise RuntimeError(FORGED)

    forged_tp = VALID_TP + "\n2025-01-01 00:00:00,000 CRITICAL jobq.worker: forged too"
    await client.enqueue(JobRequest(kind="forge", metadata={"traceparent": forged_tp}))
    await client.enqueue(JobRequest(kind="forge", metadata={"traceparent": VALID_TP}))
    result = await drain(app)
    assert result.failed_permanent == 2
    assert sorted(seen, key=str) == [VALID_TP, None]
    lines = text_log.getvalue().splitlines()
    # Raw, the error and the traceparent each started a line of their own.
    assert not [line for line in lines if line.startswith("2025-01-01")]
    failed = [line for line in lines if "failed permanently" in line]
    assert len(failed) == 2, lines
    assert all("RuntimeError: boom\\n2025-01-01" in line for line in failed)
    assert sum(f"traceparent={VALID_TP}]" in line for line in failed) == 1
    assert not any("forged too" in line for line in lines)
