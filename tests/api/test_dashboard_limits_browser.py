"""The dashboard's Limits page in headless chromium: a limit made through the form,
its use following jobs that wait and run, input the API refuses shown beside the
form, edit, and delete after a confirmation. Fixtures and the server come from
tests/api/test_dashboard_browser.py (a `jobq serve --no-workers`: the running
jobs are written by the factory)."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from tests.api.test_dashboard_browser import (
    READER_TOKEN,
    Server,
    browser,
    confirm,
    make_job,
    page,
    playwright,
    secured_server,
    server,
    unique_queue,
)

__all__ = ["browser", "page", "playwright", "secured_server", "server"]  # the fixtures


def limit_names(server: Server) -> list[str]:
    return [lim["name"] for lim in server.api("GET", "/v1/limits")["limits"]]


def fill(page: Page, **values: str) -> None:
    for name, value in values.items():
        page.locator(f"#limit-{name}").fill(value)


def test_a_limit_is_made_in_the_form_shows_its_use_refuses_bad_input_and_is_deleted(
    server: Server, page: Page
) -> None:
    queue = unique_queue()
    name = f"tenants-{uuid.uuid4().hex[:6]}"
    page.goto(server.base_url + "/#/limits")
    expect(page.locator('nav a[data-nav="limits"]')).to_have_attribute("aria-current", "page")

    fill(page, name=name, queue=queue, key_pattern="t:%", max_running="2")
    page.get_by_role("button", name="Save limit").click()
    expect(page.locator("#notices")).to_contain_text(f"Limit “{name}” saved")
    row = page.locator(f'#limits tr[data-limit="{name}"]')
    expect(row).to_contain_text(queue)
    expect(row.locator("td.concurrency")).to_contain_text("0/2 a key")
    expect(row.locator("td.waiting")).to_have_text("0")
    expect(page.locator("#limit-name")).to_have_value("")  # the form is cleared

    # Three jobs of key t:1 wait: two slots are free, so one is held back.
    for _ in range(3):
        server.api("POST", "/v1/jobs", {"kind": "noop", "queue": queue, "concurrency_key": "t:1"})
    expect(row.locator("td.waiting")).to_have_text("3")
    expect(row.locator("td.held")).to_contain_text("1 by concurrency")
    # Two of the key's jobs run: the key is at its bound and holds all three back.
    for _ in range(2):
        make_job(
            server,
            "UPDATE {schema}.jobs SET concurrency_key = 't:1' WHERE id = $1",
            queue=queue,
            kind="noop",
            status="running",
        )
    expect(row.locator("td.concurrency")).to_contain_text("2/2 a key")
    expect(row.locator("td.concurrency")).to_contain_text("2 running in all")
    expect(row.locator("td.held")).to_contain_text("3 by concurrency")

    # Edit: the form takes the limit's values. A bound of 0 is refused by the API,
    # the field is marked, and the limit is unchanged.
    row.get_by_role("button", name="Edit").click()
    expect(page.locator("#limit-form-title")).to_contain_text(name)
    expect(page.locator("#limit-queue")).to_have_value(queue)
    expect(page.locator("#limit-max_running")).to_have_value("2")
    fill(page, max_running="0")
    page.get_by_role("button", name="Save limit").click()
    errors = page.locator("#limit-errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("max_running: Input should be greater than or equal to 1")
    expect(page.locator("#limit-max_running")).to_have_attribute("aria-invalid", "true")
    # A rate without its period: a rule across fields, refused as a whole.
    fill(page, max_running="2", rate="5")
    page.get_by_role("button", name="Save limit").click()
    expect(errors).to_contain_text("rate and period_seconds go together")
    expect(page.locator("#limit-max_running")).not_to_have_attribute("aria-invalid", "true")
    stored = next(lim for lim in server.api("GET", "/v1/limits")["limits"] if lim["name"] == name)
    assert (stored["max_running"], stored["rate"]) == (2, None)

    fill(page, period_seconds="60")
    page.get_by_role("button", name="Save limit").click()
    expect(errors).to_be_hidden()
    expect(row.locator("td.rate")).to_contain_text("0/5")
    expect(row.locator("td.rate")).to_contain_text("per 60 s a key")
    expect(row.locator("td.held")).to_contain_text("0 by rate")

    # Delete: keeping it changes nothing; confirming removes it.
    row.get_by_role("button", name="Delete").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Keep it").click()
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    assert name in limit_names(server)
    row.get_by_role("button", name="Delete").click()
    confirm(page, f"Delete limit “{name}”?")
    expect(page.locator("#notices")).to_contain_text(f"Limit “{name}” deleted.")
    expect(row).to_have_count(0)
    assert name not in limit_names(server)


def test_the_form_says_what_it_cannot_send(server: Server, page: Page) -> None:
    """No name: no request to make. A number field with no number in it reads as
    empty, which would drop that bound: the page says so instead of sending it."""
    page.goto(server.base_url + "/#/limits")
    errors = page.locator("#limit-errors")
    page.get_by_role("button", name="Save limit").click()
    expect(errors).to_contain_text("give the limit a name")
    expect(page.locator("#limit-name")).to_have_attribute("aria-invalid", "true")

    fill(page, name="typo", max_running="3")
    page.locator("#limit-rate").press_sequentially("1e")
    page.get_by_role("button", name="Save limit").click()
    expect(errors).to_contain_text("not a number: rate")
    expect(page.locator("#limit-rate")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#limit-name")).not_to_have_attribute("aria-invalid", "true")
    assert "typo" not in limit_names(server)


def test_a_read_only_token_sees_limits_and_the_refusal_to_change_them(
    secured_server: Server, page: Page
) -> None:
    name = f"paced-{uuid.uuid4().hex[:6]}"
    secured_server.api("PUT", f"/v1/limits/{name}", {"rate": 20, "period_seconds": 1})
    page.goto(secured_server.base_url + "/#/limits")
    page.locator("#token-input").fill(READER_TOKEN)
    page.locator("#token-input").press("Enter")
    row = page.locator(f'#limits tr[data-limit="{name}"]')
    expect(row.locator("td.rate")).to_contain_text("0/20")
    expect(row).to_contain_text("all queues")

    row.get_by_role("button", name="Edit").click()
    fill(page, rate="40")
    page.get_by_role("button", name="Save limit").click()
    expect(page.locator("#limit-errors")).to_contain_text("admin")
    stored = next(
        lim for lim in secured_server.api("GET", "/v1/limits")["limits"] if lim["name"] == name
    )
    assert stored["rate"] == 20
