"""`jobq limits list|set|delete`, with --json and exit codes."""

from __future__ import annotations

from jobq import JobRequest, Settings
from jobq.client import Client
from tests.cli.run import jobq, ok


async def test_set_list_delete(client: Client, settings: Settings) -> None:
    assert "no flow limits" in (await ok(settings, "limits", "list")).out
    await client.enqueue_many([JobRequest(kind="script", concurrency_key="t:1")] * 2)
    await ok(settings, "limits", "set", "tenants", "--key-pattern", "t:%", "--max-running", "3")
    await ok(
        settings, "limits", "set", "paced", "--queue", "default", "--rate", "20", "--period", "1"
    )
    table = (await ok(settings, "limits", "list")).out
    assert "tenants" in table and "20/1 s" in table
    listed = (await ok(settings, "limits", "list", "--json")).json()["limits"]
    assert {u["name"]: u["waiting"] for u in listed} == {"paced": 2, "tenants": 2}
    assert "deleted" in (await ok(settings, "limits", "delete", "tenants")).out
    missing = await jobq(settings, "limits", "delete", "tenants")
    assert missing.code != 0 and "no flow limit named 'tenants'" in missing.err


async def test_bad_limits_exit_with_a_usage_error(client: Client, settings: Settings) -> None:
    no_bound = await jobq(settings, "limits", "set", "x")
    assert no_bound.code != 0 and "give max_running" in no_bound.err
    bad_period = await jobq(settings, "limits", "set", "x", "--rate", "5", "--period", "0")
    assert bad_period.code == 2 and "period_seconds" in bad_period.err
