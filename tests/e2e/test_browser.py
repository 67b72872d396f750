"""The status page in headless Chromium, as a user sees it: live progress, downloads, cancel,
bookmarks, validation, no JavaScript, escaping, and screenshots for the README."""

from __future__ import annotations

import http.server
import re
import threading
import time
from urllib.parse import quote

import pytest
from playwright.sync_api import Dialog, Page, expect

from .browser_support import (
    SECOND,
    STATUS_PATH,
    Contexts,
    browser,
    contexts,
    downloaded_json,
    downloaded_text,
    messages_in_flight,
    page,
    start_from_form,
    status_json,
    task_id_of,
    wait_for_bar_above,
    wait_for_status_page,
    watch_downloads,
)
from .conftest import RunningStack, wait_until

__all__ = ["browser", "contexts", "page"]  # the fixtures, for pytest to find here

pytestmark = pytest.mark.browser


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
        expect(page.locator("#steps")).to_have_text(re.compile(r"^\d+ of 12$"))
        expect(page.locator("#elapsed")).to_have_text(re.compile(r"^\d+ s$"))
        expect(page.locator("#eta")).to_be_visible(timeout=10 * SECOND)
        # "Time left" is its label: the value does not say "left" again.
        expect(page.locator("#eta")).to_have_text(re.compile(r"^(about \d+ s|almost done)$"))
        expect(page.locator("#bar")).to_have_attribute(
            "aria-valuetext", re.compile(r"^\d+ %(, (about \d+ s left|almost done))?$")
        )
        expect(page).to_have_title(re.compile(r"^\d+ % · Sleep$"))
        assert navigations == [], f"the page was reloaded: {navigations}"
    finally:
        cancel_if_running(page, status_url)


def test_the_live_page_downloads_once_when_the_task_ends_and_then_shows_the_result(
    page: Page, stack: RunningStack
) -> None:
    downloads = watch_downloads(page)
    with page.expect_download(timeout=30 * SECOND) as started:
        start_from_form(page, stack, "report", month="2024-02")
    download = started.value
    assert download.suggested_filename == "report-2024-02.csv"
    lines = downloaded_text(download).splitlines()
    assert lines[0].startswith("date,invoices,total,")
    assert len(lines) == 1 + 29
    assert lines[1].startswith("2024-02-01,") and lines[-1].startswith("2024-02-29,")

    # The download did not take the user anywhere: the page is the result page now.
    assert STATUS_PATH.search(page.url), page.url
    expect(page.locator("#state")).to_have_text("Done")
    expect(page.locator("#state")).to_be_focused()
    expect(page).to_have_title("Done · Monthly report")
    expect(page.locator("#download-started")).to_have_text(
        "Your download of report-2024-02.csv has started."
    )
    expect(page.locator(".file")).to_contain_text("report-2024-02.csv")
    expect(page.locator(".file")).to_contain_text("CSV table")
    table = page.get_by_role("region", name="Preview of the result")
    expect(table.get_by_role("columnheader", name="date")).to_be_visible()
    expect(table.get_by_role("cell", name="2024-02-01")).to_be_visible()
    expect(page.locator("#bar-box")).to_have_count(0)
    expect(page.locator("#cancel")).to_have_count(0)
    assert len(downloads) == 1

    again = page.get_by_role("link", name="Download")
    with page.expect_download() as second:
        again.click()
    assert second.value.suggested_filename == "report-2024-02.csv"
    assert downloaded_text(second.value).splitlines() == lines

    # A reload shows the result page again and downloads nothing.
    page.reload()
    expect(page.locator("#state")).to_have_text("Done")
    expect(page.get_by_role("link", name="Download")).to_be_visible()
    page.wait_for_timeout(1500)  # a download would start at once; none may come
    assert len(downloads) == 2


def test_cancel_stops_a_running_sleep_and_it_stays_cancelled(
    page: Page, stack: RunningStack
) -> None:
    start_from_form(page, stack, "sleep", seconds="60")
    status_url = wait_for_status_page(page, "sleep")
    try:
        expect(page.locator("#state")).to_have_text("Running")
        wait_for_bar_above(page, 0)  # the worker is at it

        # The first click only asks; the task runs on until the second.
        page.get_by_text("Cancel…").click()
        confirm = page.get_by_role("button", name="Yes, cancel it")
        expect(confirm).to_be_focused()
        assert status_json(page, status_url)["status"] == "started"
        confirm.click()

        expect(page.locator("#state")).to_have_text("Cancelled")
        expect(page.locator("#message")).to_have_text(re.compile(r"^You cancelled it at \d+ %\.$"))
        expect(page.locator("#cancel")).to_have_count(0)
        expect(page.locator("#bar-box")).to_have_count(0)
        expect(page.locator("#result")).to_have_count(0)
        expect(page.get_by_role("button", name="Start again")).to_be_visible()
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
    owner_downloads = watch_downloads(owner)
    start_from_form(owner, stack, "sleep", seconds="2")
    status_url = wait_for_status_page(owner, "sleep")

    # Someone the link was sent to, while the task runs: the progress page, then the result.
    friend_context = contexts.new()
    assert friend_context.cookies() == []
    friend = friend_context.new_page()
    with friend.expect_download(timeout=20 * SECOND) as moved_on:
        friend.goto(status_url)
        expect(friend.locator("#state")).to_have_text(
            re.compile(r"^(Waiting for a worker|Starting|Running)$")
        )
        expect(friend.locator("#bar")).to_be_visible()
        expect(friend.locator("#share-url")).to_have_value(status_url)
    assert downloaded_json(moved_on.value) == {"slept": 2}
    expect(friend.locator("#state")).to_have_text("Done")

    # The owner's page, done too, hands out the same address with its Copy link button
    # (once the download it started by itself at the end is under way).
    expect(owner.locator("#state")).to_have_text("Done")
    wait_until(lambda: owner_downloads, 20, "the owner page's own download")
    owner.get_by_role("button", name="Copy link").click()
    expect(owner.get_by_role("button", name="Copied")).to_be_visible()
    assert owner.evaluate("navigator.clipboard.readText()") == status_url

    # Later, in yet another browser: the bookmark shows the result page, and downloads
    # nothing until asked to.
    later = contexts.new_page()
    later_downloads = watch_downloads(later)
    later.goto(status_url)
    expect(later.locator("#state")).to_have_text("Done")
    expect(later.locator(".result-values")).to_contain_text("Slept")
    later.wait_for_timeout(1000)
    assert later_downloads == []
    with later.expect_download() as clicked:
        later.get_by_role("link", name="Download").click()
    assert clicked.value.suggested_filename == f"sleep-{task_id_of(status_url)}.json"
    assert downloaded_json(clicked.value) == {"slept": 2}
    # Programs (curl -L sends Accept: */*) still get a fresh link to the file.
    answer = later.request.get(status_url, max_redirects=0, headers={"Accept": "*/*"})
    assert answer.status == 303
    location = answer.headers["location"]
    assert location.startswith(stack.moto_url) and "X-Amz-Signature=" in location


def test_validation_errors_show_beside_their_field_with_what_was_typed(
    page: Page, stack: RunningStack
) -> None:
    cases = [
        ("primes", "limit", "1", "at least 2"),
        ("sleep", "seconds", "5000", "at most 3600"),
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
    start_from_form(page, stack, "sleep", seconds="3")
    status_url = wait_for_status_page(page, "sleep")
    expect(page.locator("#state")).to_have_text("Done", timeout=30 * SECOND)
    refreshes = [url for url in navigations if url == status_url]
    assert len(refreshes) >= 2, navigations  # meta refresh did the waiting, at the plain URL
    assert all("?" not in url for url in navigations), navigations
    expect(page.locator(".result-values")).to_contain_text("Slept")
    with page.expect_download() as clicked:
        page.get_by_role("link", name="Download").click()
    assert downloaded_json(clicked.value) == {"slept": 3}
    expect(page.locator("#bar-box")).to_have_count(0)

    # Cancel asks first here too: the question is a disclosure, no script needed.
    start_from_form(page, stack, "sleep", seconds="30")
    wait_for_status_page(page, "sleep")
    page.get_by_text("Cancel…").click()
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.locator("#state")).to_have_text("Cancelled")


def test_markup_typed_into_a_form_stays_text(page: Page, stack: RunningStack) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    payload = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    # A browser without a month picker shows a text field, where anything can be typed.
    page.goto(stack.url + "/")
    page.locator("#report-month").evaluate("field => { field.type = 'text'; }")
    page.locator("#report-month").fill(payload)
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Monthly report").click()
    assert answer.value.status == 400
    expect(page.locator("#report-month-error")).to_have_text(
        "Month must be a month, YYYY-MM, e.g. 2024-02."
    )
    expect(page.locator("#report-month")).to_have_attribute("value", payload)
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
    link = recent.get_by_role("link", name="Sleep")
    expect(link).to_have_attribute("href", status_url.removeprefix(stack.url))
    expect(recent.locator(".chip")).to_have_text("Done")
    expect(recent.locator("time")).to_have_text("just now")
    # The link opens the result page; it does not download again.
    downloads = watch_downloads(mine)
    link.click()
    expect(mine.locator("#state")).to_have_text("Done")
    assert mine.url == status_url
    mine.wait_for_timeout(1000)
    assert downloads == []

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


def test_static_files_come_compressed_and_are_kept_for_good(
    page: Page, stack: RunningStack
) -> None:
    loaded = []
    page.on("response", lambda response: loaded.append(response))
    page.goto(stack.url + "/")
    (css,) = [r for r in loaded if "/static/style." in r.url]
    assert re.search(r"/static/style\.[0-9a-f]{12}\.css$", css.url)
    headers = css.all_headers()
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["content-encoding"] == "gzip"  # Chromium asks for it; it got it
    assert int(headers["content-length"]) < len(css.body()) / 2
