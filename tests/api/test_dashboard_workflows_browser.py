"""The dashboard's workflow pages in headless chromium: the list, the graph drawn
with each node's state, the link from a job, and cancel. Fixtures and the server
come from tests/api/test_dashboard_browser.py (a `jobq serve --no-workers`)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.api.test_dashboard_browser import (
    Server,
    browser,
    confirm,
    page,
    playwright,
    server,
)

__all__ = ["browser", "page", "playwright", "server"]  # the fixtures, for pytest


def submit_diamond(server: Server) -> dict[str, Any]:
    body = {
        "name": "diamond",
        "nodes": [
            {"name": "a", "kind": "noop"},
            {"name": "b", "kind": "noop", "after": ["a"]},
            {"name": "c", "kind": "noop", "after": ["a"]},
            {"name": "d", "kind": "noop", "after": ["b", "c"]},
        ],
    }
    workflow: dict[str, Any] = server.api("POST", "/v1/workflows", body)
    return workflow


def test_a_workflow_is_drawn_with_each_nodes_state_and_cancelled(
    server: Server, page: Page
) -> None:
    workflow = submit_diamond(server)
    jobs = {n["name"]: n["job_id"] for n in workflow["nodes"]}
    # b cancelled by hand: d, waiting for it, is cancelled by the policy.
    server.api("POST", f"/v1/jobs/{jobs['b']}/cancel")

    page.goto(server.base_url + "/#/workflows")
    row = page.locator(f'#workflows tr[data-key="{workflow["id"]}"]')
    expect(row).to_contain_text("diamond")
    row.get_by_role("link").click()
    expect(page).to_have_url(f"{server.base_url}/#/workflows/{workflow['id']}")
    graph = page.locator("#workflow-graph")
    expect(graph.locator(".wf-node")).to_have_count(4)
    expected = {"a": "queued", "b": "cancelled", "c": "pending", "d": "cancelled"}
    for name, state in expected.items():
        node = graph.locator(f'[data-node="{name}"]')
        expect(node).to_have_attribute("data-status", state)
        expect(node).to_have_class(f"wf-node state-{state}")
    expect(graph.locator("path")).to_have_count(4)
    # The layers: a above b and c, which are above d.
    y = {n: float(graph.locator(f'[data-node="{n}"] rect').get_attribute("y") or 0) for n in "abcd"}
    assert y["a"] < y["b"] == y["c"] < y["d"]
    expect(page.locator('#workflow-nodes tr[data-key="d"]')).to_contain_text(
        f"dependency {jobs['b']} (b) ended cancelled"
    )

    # A node opens its job; the job links back to its workflow.
    graph.locator('[data-node="c"]').click()
    expect(page).to_have_url(f"{server.base_url}/#/jobs/{jobs['c']}")
    expect(page.locator("h1 .badge")).to_have_text("pending")
    page.locator("#job-workflow").click()
    expect(page).to_have_url(f"{server.base_url}/#/workflows/{workflow['id']}")

    page.get_by_role("button", name="Cancel workflow").click()
    confirm(page, "Cancel workflow")
    expect(page.locator("#notices")).to_contain_text("2 jobs changed")
    for name in "ac":
        expect(graph.locator(f'[data-node="{name}"]')).to_have_attribute("data-status", "cancelled")
    expect(page.get_by_role("button", name="Cancel workflow")).to_have_count(0)


def test_the_job_list_filters_pending_jobs(server: Server, page: Page) -> None:
    workflow = submit_diamond(server)
    d = next(n["job_id"] for n in workflow["nodes"] if n["name"] == "d")
    page.goto(server.base_url + "/#/jobs?status=pending")
    expect(page.locator(f'tr[data-job-id="{d}"]')).to_contain_text("pending")
