"""`jobq workflows list|show|cancel`, with --json and exit codes."""

from __future__ import annotations

import uuid

from jobq import App, Settings
from jobq.client import Client
from tests.cli.run import jobq, ok


async def test_list_show_cancel(app: App, client: Client, settings: Settings) -> None:
    assert "no workflows yet" in (await ok(settings, "workflows", "list")).out
    submitted = await (
        app.workflow("nightly").add("a", "script").add("b", "noop", after=["a"]).submit()
    )
    wid = str(submitted.workflow_id)
    listed = (await ok(settings, "workflows", "list", "--json")).json()["workflows"]
    assert [(w["id"], w["counts"]) for w in listed] == [(wid, {"queued": 1, "pending": 1})]
    assert "nightly" in (await ok(settings, "workflows", "list")).out
    shown = (await ok(settings, "workflows", "show", wid, "--json")).json()
    assert {n["name"]: n["after"] for n in shown["nodes"]} == {"a": [], "b": ["a"]}
    assert "pending" in (await ok(settings, "workflows", "show", wid)).out
    assert (await ok(settings, "workflows", "cancel", wid, "--json")).json() == {"count": 2}
    missing = await jobq(settings, "workflows", "show", str(uuid.UUID(int=3)))
    assert missing.code == 3 and "no workflow" in missing.err
    bad = await jobq(settings, "workflows", "cancel", "nope")
    assert bad.code == 2
