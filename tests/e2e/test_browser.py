"""The status page in headless Chromium, as a user sees it: live progress, downloads, cancel,
bookmarks, validation, no JavaScript, escaping, and screenshots for the README."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import threading
import time
from urllib.parse import quote

import pytest
from playwright.sync_api import Dialog, Page, expect

from dev.stage import ROOT

from .browser_support import (
    PHONE,
    SCREENSHOTS,
    SECOND,
    STATUS_PATH,
    Contexts,
    browser,
    contexts,
    downloaded_json,
    downloaded_text,
    messages_in_flight,
    open_for_download,
    page,
    start_from_form,
    status_json,
    task_id_of,
    wait_for_bar_above,
    wait_for_status_page,
)
from .conftest import RunningStack, wait_until

__all__ = ["browser", "contexts", "page"]  # the fixtures, for pytest to find here

pytestmark = pytest.mark.browser

DOCS_SCREENSHOT = ROOT / "docs" / "status-page.png"  # committed: README shows it


def cancel_if_running(page: Page, status_url: str) -> None:
    """Frees the worker for the next test (202, or 409 when the task already ended)."""
    response = page.request.delete(status_url, headers={"Accept": "application/json"})
    assert response.status in (202, 409), response.text()


def main_frame_navigations(page: Page) -> list[str]:
    """The URLs the page's main frame navigates to from now on (a reload counts)."""
    seen: list[str] = []
    page.on(
        "framenavigated", lambda frame: seen.append(frame.url) if frame == page.main_frame else None
    )
    return seen


def test_the_bar_message_and_time_left_change_without_a_reload(
    page: Page, stack: RunningStack
) -> None:
    start_from_form(page, stack, "sleep", seconds="12")
    status_url = wait_for_status_page(page, "sleep")
    try:
        page.evaluate("window.sameDocument = true")
        navigations = main_frame_navigations(page)
        expect(page.get_by_role("heading", level=1)).to_have_text("Sleep")

        first = wait_for_bar_above(page, -1)  # determinate: the worker has reported steps
        first_message = page.locator("#message").inner_text()
        second = wait_for_bar_above(page, first)
        wait_for_bar_above(page, second)
        assert navigations == [], f"the page was reloaded: {navigations}"
        assert page.evaluate("window.sameDocument") is True, "the page was reloaded"

        expect(page.locator("#state")).to_have_text("Running")
        expect(page.locator("#message")).not_to_have_text(first_message)
        expect(page.locator("#message")).to_have_text(re.compile(r"^Slept \d+ of 12 s$"))
        expect(page.locator("#steps")).to_have_text(re.compile(r"^\d+ of 12 \(\d+(\.\d+)? %\)$"))
        expect(page.locator("#elapsed")).to_have_text(re.compile(r"^\d+ s$"))
        expect(page.locator("#eta")).to_be_visible(timeout=10 * SECOND)
        expect(page.locator("#eta")).to_have_text(re.compile(r"^about \d+ s left$"))
        assert navigations == [], f"the page was reloaded: {navigations}"
    finally:
        cancel_if_running(page, status_url)


def test_a_report_downloads_as_csv_and_the_page_then_says_done(
    page: Page, stack: RunningStack
) -> None:
    with page.expect_download(timeout=30 * SECOND) as started:
        start_from_form(page, stack, "report", month="2024-02")
    download = started.value
    assert download.suggested_filename == "report-2024-02.csv"
    lines = downloaded_text(download).splitlines()
    assert lines[0].startswith("date,invoices,total,")
    assert len(lines) == 1 + 29
    assert lines[1].startswith("2024-02-01,") and lines[-1].startswith("2024-02-29,")

    # The download did not take the user anywhere: the status page says it is done.
    assert STATUS_PATH.search(page.url), page.url
    expect(page.locator("#state")).to_have_text("Done")
    expect(page).to_have_title(re.compile(r": done · "))
    expect(page.locator("#bar-box")).to_be_hidden()
    expect(page.locator("#cancel")).to_be_hidden()
    again = page.get_by_role("link", name="Download the result")
    expect(again).to_be_visible()
    with page.expect_download() as second:
        again.click()
    assert second.value.suggested_filename == "report-2024-02.csv"
    assert downloaded_text(second.value).splitlines() == lines


def test_cancel_stops_a_running_sleep_and_it_stays_cancelled(
    page: Page, stack: RunningStack
) -> None:
    start_from_form(page, stack, "sleep", seconds="60")
    status_url = wait_for_status_page(page, "sleep")
    try:
        expect(page.locator("#state")).to_have_text("Running")
        wait_for_bar_above(page, 0)  # the worker is at it

        page.get_by_role("button", name="Cancel").click()

        expect(page.locator("#state")).to_have_text("Cancelled")
        expect(page.locator("#cancel")).to_be_hidden()
        expect(page.locator("#bar-box")).to_be_hidden()
        expect(page.locator("#result")).to_be_hidden()
        # The worker noticed at its next progress report, stopped and let the message go.
        # (This test runs alone on the stack's queue: the earlier tests' tasks are over.)
        wait_until(lambda: messages_in_flight(stack) == 0, 10, "the worker stopping")

        polls: list[str] = []
        page.on("request", lambda request: polls.append(request.url))
        cancelled = status_json(page, status_url)
        assert cancelled["status"] == "cancelled" and cancelled["done"] is True, cancelled
        assert cancelled["links"]["cancel"] is None
        assert cancelled["progress"]["percent"] < 100
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            later = status_json(page, status_url)
            assert later["status"] == "cancelled"
            assert later["updated_at"] == cancelled["updated_at"], "the task was written to"
            assert later["progress"] == cancelled["progress"], "the task went on"
            time.sleep(0.25)
        assert polls == [], "the page kept polling a finished task"
        expect(page.locator("#state")).to_have_text("Cancelled")
    finally:
        cancel_if_running(page, status_url)


def test_a_bookmarked_status_url_works_in_a_fresh_browser_while_running_and_after(
    contexts: Contexts, stack: RunningStack
) -> None:
    owner = contexts.new(permissions=["clipboard-read", "clipboard-write"]).new_page()
    start_from_form(owner, stack, "sleep", seconds="2")
    status_url = wait_for_status_page(owner, "sleep")

    # Someone the link was sent to, while the task runs: the progress page, then the result.
    friend_context = contexts.new()
    assert friend_context.cookies() == []
    friend = friend_context.new_page()
    with friend.expect_download(timeout=20 * SECOND) as moved_on:
        friend.goto(status_url)
        expect(friend.locator("#state")).to_have_text(
            re.compile(r"^(Waiting for a worker…|Running)$")
        )
        expect(friend.locator("#bar")).to_be_visible()
        expect(friend.locator("#share-url")).to_have_value(status_url)
    assert downloaded_json(moved_on.value) == {"slept": 2}
    expect(friend.locator("#state")).to_have_text("Done")

    # The owner's page, done too, hands out the same address with its Copy link button.
    expect(owner.locator("#state")).to_have_text("Done")
    owner.get_by_role("button", name="Copy link").click()
    expect(owner.get_by_role("button", name="Copied")).to_be_visible()
    assert owner.evaluate("navigator.clipboard.readText()") == status_url

    # Later, in yet another browser: the bookmark leads straight to a fresh result link.
    later = contexts.new_page()
    answer = later.request.get(status_url, max_redirects=0)
    assert answer.status == 303
    location = answer.headers["location"]
    assert location.startswith(stack.moto_url) and "X-Amz-Signature=" in location
    download = open_for_download(later, status_url)
    assert download.suggested_filename == f"sleep-{task_id_of(status_url)}.json"
    assert downloaded_json(download) == {"slept": 2}


def test_validation_errors_show_beside_their_field_with_what_was_typed(
    page: Page, stack: RunningStack
) -> None:
    cases = [
        ("primes", "limit", "1", "at least 2"),
        ("report", "month", "2024-13", "must be a month"),
    ]
    for kind, name, typed, problem in cases:
        assert start_from_form(page, stack, kind, **{name: typed}).status == 400
        field = page.locator(f"#{kind}-{name}")
        error = page.locator(f"#{kind}-{name}-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text(problem)
        expect(field).to_have_value(typed)
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(field).to_have_attribute(
            "aria-describedby", re.compile(rf"(^| ){kind}-{name}-error( |$)")
        )
        expect(field).to_be_focused()  # the first wrong field takes the focus
        expect(page.locator(".field-error")).to_have_count(1)  # only that field is marked
        form = page.locator(f"form[action$='/tasks/{kind}']")
        expect(form.get_by_role("alert")).to_have_text("Please correct the marked fields.")


def test_without_javascript_the_page_refreshes_itself_to_the_result(
    contexts: Contexts, stack: RunningStack
) -> None:
    page = contexts.new_page(java_script_enabled=False)
    navigations = main_frame_navigations(page)
    with page.expect_download(timeout=30 * SECOND) as started:
        start_from_form(page, stack, "sleep", seconds="3")
    assert downloaded_json(started.value) == {"slept": 3}
    refreshes = [url for url in navigations if url.endswith("?wait=1")]
    assert len(refreshes) >= 2, navigations  # meta refresh did the waiting
    expect(page.locator("#state")).to_have_text("Done")
    expect(page.get_by_role("link", name="Download the result")).to_be_visible()
    expect(page.locator("#bar-box")).to_be_hidden()


def test_markup_typed_into_a_form_stays_text(page: Page, stack: RunningStack) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    payload = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    start_from_form(page, stack, "report", month=payload)
    expect(page.locator("#report-month-error")).to_have_text(
        "Month must be a month, YYYY-MM, e.g. 2024-02."
    )
    expect(page.locator("#report-month")).to_have_value(payload)
    expect(page.locator("main script, main img")).to_have_count(0)

    # An error page that repeats a part of the URL.
    markup = "<img src=x onerror=alert(3)>"
    page.goto(f"{stack.url}/tasks/{quote(markup)}/x")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    # API Gateway decodes the path (the page shows the markup as text); Chalice's local
    # server does not (it shows %3cimg...): either way, no element is made of it.
    expect(page.locator(".error-message")).to_contain_text("onerror")
    expect(page.locator("main img")).to_have_count(0)
    assert dialogs == []


def test_screenshots_of_the_start_running_and_done_pages(
    contexts: Contexts, stack: RunningStack
) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page = contexts.new_page()
    start_from_form(page, stack, "sleep", seconds="20")
    status_url = wait_for_status_page(page, "sleep")
    try:
        wait_for_bar_above(page, 15)
        expect(page.locator("#eta")).to_have_text(re.compile(r"left$"))
        running = SCREENSHOTS / "status-running.png"
        page.screenshot(path=running)

        phone = contexts.new_page(viewport=PHONE, is_mobile=True, has_touch=True)
        phone.goto(status_url)
        wait_for_bar_above(phone, 15)
        expect(phone.locator("#eta")).to_have_text(re.compile(r"left$"))
        phone.screenshot(path=SCREENSHOTS / "status-running-phone.png", full_page=True)
    finally:
        cancel_if_running(page, status_url)
    expect(page.locator("#state")).to_have_text("Cancelled")
    page.screenshot(path=SCREENSHOTS / "status-cancelled.png")

    with page.expect_download(timeout=30 * SECOND):
        start_from_form(page, stack, "report", month="2024-02")
    expect(page.locator("#state")).to_have_text("Done")
    page.screenshot(path=SCREENSHOTS / "status-done.png")

    # The start page, with the two tasks under "Your recent tasks".
    page.goto(stack.url + "/")
    expect(page.locator(".recent li")).to_have_count(2)
    page.screenshot(path=SCREENSHOTS / "start.png", full_page=True)

    # README's picture is committed: replace it only when asked, so that a test run
    # leaves the working tree clean.
    if not DOCS_SCREENSHOT.exists() or os.environ.get("LONGTASK_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(running, DOCS_SCREENSHOT)


def test_the_start_page_lists_my_tasks_and_only_mine(
    contexts: Contexts, stack: RunningStack
) -> None:
    mine = contexts.new_page()
    with mine.expect_download(timeout=30 * SECOND):
        start_from_form(mine, stack, "sleep", seconds="1")
        status_url = wait_for_status_page(mine, "sleep")
    mine.goto(stack.url + "/")
    recent = mine.get_by_role("region", name="Your recent tasks")
    expect(recent.get_by_role("listitem")).to_have_count(1)
    link = recent.get_by_role("link", name="sleep")
    expect(link).to_have_attribute("href", status_url.removeprefix(stack.url))
    expect(recent.locator(".status")).to_have_text("done")

    someone_else = contexts.new_page()
    someone_else.goto(stack.url + "/")
    expect(someone_else.get_by_role("heading", name="Start a task")).to_be_visible()
    expect(someone_else.get_by_role("region", name="Your recent tasks")).to_have_count(0)


def test_a_form_posted_from_another_site_is_refused(page: Page, stack: RunningStack) -> None:
    # Another site (localhost, not 127.0.0.1) with a form that targets the app: what a
    # CSRF attack looks like to the browser.
    target = f"{stack.url}/tasks/sleep"
    evil = (
        "<!doctype html><title>elsewhere</title>"
        f'<form method="post" action="{target}"><input name="seconds" value="1">'
        '<button type="submit">Win a prize</button></form>'
    ).encode()

    class Elsewhere(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(evil)))
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"http://localhost:{server.server_address[1]}/")
        with page.expect_navigation() as navigation:
            page.get_by_role("button", name="Win a prize").click()
        response = navigation.value
        assert response is not None and response.status == 403
        expect(page.locator("main")).to_contain_text("Requests from other sites are refused")
    finally:
        server.shutdown()
        server.server_close()
