"""The `$n` → `%s` translation of queries.sql, and that the core imports no driver."""

from __future__ import annotations

import subprocess
import sys

from jobq.db.dbapi import format_queries, to_format_paramstyle


def test_placeholders_become_format_paramstyle_in_the_order_they_occur() -> None:
    statement = to_format_paramstyle("SELECT $2::int, '100%', $1, $2, $10")
    assert statement.sql == "SELECT %s::int, '100%%', %s, %s, %s"
    assert statement.order == (1, 0, 1, 9)
    assert statement.params(["a", "b", *"cdefghij"]) == ["b", "a", "b", "j"]


def test_the_insert_is_queries_sql_own_statement_translated() -> None:
    queries = format_queries("my schema")
    sql, params = queries.job_insert_many([])
    assert '"my schema".jobs' in sql and "$" not in sql
    assert len(params) == 17 and params[-1] == "my schema.jobs"  # $12-$17 come first in the text


def test_import_jobq_imports_no_driver_or_orm() -> None:
    code = (
        "import sys, jobq; jobq.App(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'psycopg', 'psycopg2', 'sqlalchemy', 'flask', 'django'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
