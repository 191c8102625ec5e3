"""Reads jobq's bundled SQL files and fills in the quoted schema name, written once here."""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable

_BLOCK_RE = re.compile(r"^-- name: (\w+)\n((?:--.*\n)*)", re.MULTILINE)


def quote_schema(schema: str) -> str:
    """`schema` as a quoted SQL identifier (a `"` inside is doubled)."""
    return '"' + schema.replace('"', '""') + '"'


def fill_schema(sql: str, schema: str) -> str:
    """`sql` with every `{schema}` replaced by the quoted schema name."""
    return sql.replace("{schema}", quote_schema(schema))


def sql_folder() -> Traversable:
    """The package's `db/sql/` folder (queries, bench queries, migrations)."""
    return resources.files("jobq.db") / "sql"


def read_package_sql(name: str) -> str:
    return (sql_folder() / name).read_text(encoding="utf-8")


def load_sql(text: str, schema: str) -> dict[str, str]:
    """Split a queries file into {name: sql} with `{schema}` filled in."""
    blocks: dict[str, str] = {}
    matches = list(_BLOCK_RE.finditer(text))
    for here, nxt in zip(matches, [*matches[1:], None], strict=True):
        end = nxt.start() if nxt else len(text)
        body = text[here.end() : end].strip()
        blocks[here.group(1)] = fill_schema(body, schema)
    return blocks
