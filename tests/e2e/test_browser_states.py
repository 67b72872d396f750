"""Every state of a task as people see it in Chromium: in words, accessible (axe-core, AAA
contrast included), on a desktop and a phone; retrying, failing and running again, losing
the connection; the screenshots in docs/ that the README shows."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from dev.stage import ROOT

from .browser_support import (
    PHONE,
    SCREENSHOTS,
    SECOND,
    Contexts,
    browser,
    contexts,
    page,
    start_from_form,
    status_json,
    task_id_of,
    wait_for_bar_above,
    wait_for_status_page,
)
from .conftest import RunningStack, StackFactory, stack_factory

__all__ = ["browser", "contexts", "page", "stack_factory"]

pytestmark = pytest.mark.browser

DOCS = ROOT / "docs"  # committed: the README shows these
_AXE = Axe()


def assert_accessible(page: Page, what: str) -> None:
    """axe-core's rules on the page as it is, with the AAA contrast rule (7:1) turned on."""
    results = _AXE.run(page, options={"rules": {"color-contrast-enhanced": {"enabled": True}}})
    assert results.violations_count == 0, f"{what}:\n{results.generate_report()}"


class Shots:
    """Screenshots of one state on a desktop and a phone, into screenshots/ and, when
    asked (LONGTASK_UPDATE_SCREENSHOTS=1) or missing, docs/."""

    def __init__(self, contexts: Contexts) -> None:
        self.phone = contexts.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        SCREENSHOTS.mkdir(exist_ok=True)

    def take(self, page: Page, name: str, wait: str | None = None) -> None:
        self._save(page, f"{name}.png")
        self.phone.context.add_cookies(page.context.cookies())  # the same user
        self.phone.goto(page.url)
        if wait:
            expect(self.phone.locator("#state")).to_have_text(re.compile(wait))
        assert_accessible(self.phone, f"{name} on a phone")
        self._save(self.phone, f"{name}-phone.png")

    def _save(self, page: Page, file: str) -> None:
        page.screenshot(path=SCREENSHOTS / file, full_page=True)
        target = DOCS / file
        if not target.exists() or os.environ.get("LONGTASK_UPDATE_SCREENSHOTS") == "1":
            DOCS.mkdir(exist_ok=True)
            shutil.copyfile(SCREENSHOTS / file, target)


@pytest.fixture
def shots(contexts: Contexts) -> Shots:
    return Shots(contexts)


def cancel(page: Page, status_url: str) -> None:
    response = page.request.delete(status_url, headers={"Accept": "application/json"})
    assert response.status in (202, 409), response.text()


def start_json(page: Page, stack: RunningStack, kind: str, **params: Any) -> str:
    """Starts a task as the page's user (its cookie) and returns its status URL."""
    response = page.request.post(
        f"{stack.url}/tasks/{kind}", data=params, headers={"Accept": "application/json"}
    )
    assert response.status == 202, response.text()
    return f"{stack.url}{response.json()['links']['self']}"


@pytest.fixture
def busy_workers(page: Page, stack: RunningStack) -> Iterator[list[str]]:
    """Both workers of the stack busy with a long sleep, so that the next task waits."""
    page.goto(stack.url + "/")
    urls = [start_json(page, stack, "sleep", seconds=120) for _ in range(2)]
    for url in urls:
        page.wait_for_function(
            "url => fetch(url, {headers: {Accept: 'application/json'}})"
            ".then(r => r.json()).then(d => d.status === 'started')",
            arg=url,
            timeout=20 * SECOND,
        )
    yield urls
    for url in urls:
        cancel(page, url)


def test_queued_running_and_cancelled_speak_human_and_pass_axe(
    page: Page, stack: RunningStack, shots: Shots, busy_workers: list[str]
) -> None:
    start_from_form(page, stack, "sleep", seconds="40")
    status_url = wait_for_status_page(page, "sleep")
    try:
        # Queued: both workers are busy. The bar moves without a value; the wait counts up.
        expect(page.locator("#state")).to_have_text("Waiting for a worker")
        expect(page).to_have_title("Queued · Sleep")
        assert page.locator("#bar").get_attribute("value") is None
        expect(page.locator("#waiting")).to_have_text(re.compile(r"^\d+ s$"))
        assert_accessible(page, "queued")
        shots.take(page, "status-queued", wait="Waiting for a worker")

        # Running, once a worker is free.
        cancel(page, busy_workers[0])
        wait_for_bar_above(page, 10, timeout=30 * SECOND)
        expect(page.locator("#state")).to_have_text("Running")
        expect(page).to_have_title(re.compile(r"^\d+ % · Sleep$"))
        expect(page.locator("#eta")).to_have_text(re.compile(r"^about \d+ s$"))
        assert_accessible(page, "running")
        shots.take(page, "status-running", wait="Running")
        # The notification is offered, and asked for only after a click.
        expect(page.get_by_role("button", name="Notify me when it is done")).to_be_visible()

        page.get_by_text("Cancel…").click()
        assert_accessible(page, "the cancel question")
        page.get_by_role("button", name="Yes, cancel it").click()
        expect(page.locator("#state")).to_have_text("Cancelled")
        expect(page.locator("#state")).to_be_focused()
        expect(page).to_have_title("Cancelled · Sleep")
        assert_accessible(page, "cancelled")
        shots.take(page, "status-cancelled", wait="Cancelled")
    finally:
        cancel(page, status_url)


def test_a_done_primes_page_says_the_count_and_the_start_page_lists_it(
    contexts: Contexts, stack: RunningStack, shots: Shots
) -> None:
    # A million is counted in a blink: the task may end before its page has loaded, and
    # then the page shows the result without a download (it did not watch it end).
    page = contexts.new_page()
    start_from_form(page, stack, "primes", limit="1000000")
    status_url = wait_for_status_page(page, "primes")
    expect(page.locator("#result-headline")).to_have_text("78,498 primes up to 1,000,000")

    # Opened later in a fresh browser: the result page, and no download until asked.
    fresh = contexts.new_page()
    downloads: list[Any] = []
    fresh.on("download", lambda download: downloads.append(download))
    fresh.goto(status_url)
    expect(fresh.locator("#result-headline")).to_have_text("78,498 primes up to 1,000,000")
    expect(fresh.get_by_role("link", name="Download")).to_be_visible()
    expect(fresh).to_have_title("Done · Count primes")
    assert_accessible(fresh, "done (primes)")
    shots.take(fresh, "status-done", wait="Done")
    fresh.reload()
    expect(fresh.locator("#state")).to_have_text("Done")
    fresh.wait_for_timeout(1000)
    assert downloads == []

    start_from_form(page, stack, "report", month="2024-02")
    wait_for_status_page(page, "report")
    # A month of rows takes seconds on a loaded machine.
    expect(page.locator("#state")).to_have_text("Done", timeout=30 * SECOND)
    assert_accessible(page, "done (report)")
    shots.take(page, "status-done-report", wait="Done")

    page.goto(stack.url + "/")
    recent = page.get_by_role("region", name="Your recent tasks")
    expect(recent.locator(".chip")).to_have_text(["Done", "Done"])
    expect(page.get_by_role("button", name="Count primes")).to_be_visible()
    expect(page.locator("#primes-limit")).to_have_value("1000000")
    expect(page.locator("#report-month")).to_have_attribute("type", "month")
    expect(page.locator("#sleep-fail_times")).to_have_attribute("max", "3")
    assert_accessible(page, "start page")
    shots.take(page, "start")


def test_a_retry_shows_the_attempt_and_a_countdown(
    contexts: Contexts, stack_factory: StackFactory, shots: Shots
) -> None:
    slow_retry = stack_factory(env={"LONGTASK_RETRY_SECONDS": "8"}, workers=1)
    page = contexts.new_page()
    start_from_form(page, slow_retry, "sleep", seconds="2", fail_times="1")
    status_url = wait_for_status_page(page, "sleep")
    expect(page.locator("#state")).to_have_text("Retrying: attempt 2 of 3 soon")
    expect(page.locator("#retry-in")).to_have_text(re.compile(r"^in [1-8] s$"))
    first = page.locator("#retry-in").inner_text()
    expect(page.locator("#retry-in")).not_to_have_text(first)  # it counts down
    expect(page.locator("#error-message")).to_have_text(
        "Failed on purpose: attempt 1 of 1 set to fail, as asked."
    )
    expect(page.locator("#error-type")).to_have_text("PlannedFailure")
    expect(page).to_have_title("Retrying · Sleep")
    assert_accessible(page, "retrying")
    shots.take(page, "status-retrying", wait="Retrying")
    # The second attempt runs and finishes.
    expect(page.locator("#state")).to_have_text("Done", timeout=30 * SECOND)
    assert status_json(page, status_url)["attempts"] == 2


def test_a_failed_task_says_what_to_do_and_runs_again_with_the_same_parameters(
    page: Page, stack: RunningStack, shots: Shots
) -> None:
    start_from_form(page, stack, "sleep", seconds="0", fail_times="3")
    status_url = wait_for_status_page(page, "sleep")
    expect(page.locator("#state")).to_have_text("Failed", timeout=30 * SECOND)
    expect(page.locator("#message")).to_have_text("It failed on all 3 attempts, so it was stopped.")
    expect(page.locator("#error-message")).to_have_text(
        "Failed on purpose: attempt 3 of 3 set to fail, as asked."
    )
    expect(page).to_have_title("Failed · Sleep")
    assert_accessible(page, "failed")
    shots.take(page, "status-failed", wait="Failed")

    page.get_by_role("button", name="Run again").click()
    again = wait_for_status_page(page, "sleep")
    assert task_id_of(again) != task_id_of(status_url)
    assert status_json(page, again)["parameters"] == {"seconds": 0, "fail_times": 3}
    expect(page.locator("#state")).to_have_text("Failed", timeout=30 * SECOND)


def test_a_lost_connection_is_said_at_once_and_polling_resumes_when_it_is_back(
    contexts: Contexts, stack: RunningStack, shots: Shots
) -> None:
    context = contexts.new()
    page = context.new_page()
    start_from_form(page, stack, "sleep", seconds="40")
    status_url = wait_for_status_page(page, "sleep")
    try:
        wait_for_bar_above(page, 0)
        notice = page.get_by_text("Connection lost, retrying…")
        expect(notice).to_be_hidden()
        context.set_offline(True)
        expect(notice).to_be_visible(timeout=3 * SECOND)
        assert_accessible(page, "offline")
        page.screenshot(path=SCREENSHOTS / "status-offline.png", full_page=True)
        context.set_offline(False)
        with page.expect_response(lambda r: r.url == status_url, timeout=3 * SECOND):
            pass  # the page asks at once, not at its next scheduled poll
        expect(notice).to_be_hidden(timeout=3 * SECOND)
        expect(page.locator("#state")).to_have_text("Running")
    finally:
        cancel(page, status_url)
