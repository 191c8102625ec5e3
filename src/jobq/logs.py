"""Logging setup: human-readable lines by default, JSON lines with `--log-format json`.

Job log records carry `job_id`, `kind`, `queue`, `attempt` and `worker_id` (passed
with `extra=`); both formats print them.

One record is always one line, whatever its text (a handler's error message, a
job's metadata): the text format escapes control characters (C0, DEL, C1) and
U+2028/U+2029 as `\\n`, `\\r`, `\\t`, `\\xNN` or `\\uNNNN`, tracebacks included, so a
newline in a message cannot forge a record of its own. The JSON format is one
line by its encoding: `json.dumps` escapes C0 controls, and every non-ASCII
character (C1, U+2028/U+2029) as `\\uNNNN`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

JOB_FIELDS = ("job_id", "kind", "queue", "attempt", "worker_id", "traceparent")
LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in JOB_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = str(value) if name == "job_id" else value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _escape_table() -> dict[int, str]:
    table = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    table.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})
    # Bidirectional overrides and zero-width characters: they make a line read
    # differently from what it holds (Trojan Source).
    for c in (*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xFEFF):
        table[c] = f"\\u{c:04x}"
    return table


# Everything that a terminal or a log shipper may take as the end of a line
# (str.splitlines() splits at \x1c-\x1e and \x85 too), that moves the cursor,
# or that reorders or hides text.
_ESCAPES = _escape_table()


def one_line(text: str) -> str:
    """`text` with its control characters escaped: printable on one line."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            f"{name}={getattr(record, name)}"
            for name in JOB_FIELDS
            if getattr(record, name, None) is not None
        ]
        # Escaped as a whole: the message, the fields and a traceback's lines.
        return one_line(f"{line} [{' '.join(fields)}]" if fields else line)


def configure_logging(fmt: str = "text", level: int | str = logging.INFO) -> None:
    if fmt not in LOG_FORMATS:
        from jobq.errors import ConfigError

        raise ConfigError(f"--log-format: expected one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn installs its own handlers; route its records through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
