"""Headless Chromium for the browser tests: the browser, fresh contexts, and what users do."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Download,
    Page,
    Response,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

from dev.chromium import HOW_TO_GET_ONE, NoChromium, find_chromium
from dev.stage import ROOT

from .conftest import RunningStack

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
DESKTOP = {"width": 1000, "height": 700}
PHONE = {"width": 390, "height": 844}
SECOND = 1000  # Playwright counts in milliseconds
SCREENSHOTS = ROOT / "screenshots"  # git-ignored
FAILURES = ROOT / "test-artifacts" / "browser"  # git-ignored
# A status page's URL.
STATUS_PATH = re.compile(r"/tasks/(?P<kind>[a-z_]+)/(?P<id>[A-Za-z0-9_-]{16,})$")


# One Playwright and one Chromium per test process. Each browser test module imports the
# `browser` fixture, so pytest holds one session fixture per module; a second Playwright
# in the same process would fail ("Sync API inside the asyncio loop"), so they share.
_SHARED: dict[str, Any] = {}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session; every test gets fresh contexts of it.

    `make test` finds or installs the browser first (dev/chromium.py); run alone, a
    browser test without one fails with what to run, it never skips."""
    if not _SHARED:
        try:
            found = find_chromium()
        except NoChromium as error:
            pytest.fail(str(error))
        if found is None:
            pytest.fail(HOW_TO_GET_ONE)
        playwright = sync_playwright().start()
        chromium = playwright.chromium.launch(
            executable_path=found.path, headless=True, args=CHROMIUM_ARGS
        )
        _SHARED.update(playwright=playwright, browser=chromium, users=0)
    _SHARED["users"] += 1
    yield _SHARED["browser"]
    _SHARED["users"] -= 1
    if _SHARED["users"] == 0:
        _SHARED["browser"].close()
        _SHARED["playwright"].stop()
        _SHARED.clear()


@dataclass
class Contexts:
    """Opens browser contexts for one test (no cookies, no cache between them), watches
    their pages for script errors, and closes them at the end of the test."""

    browser: Browser
    opened: list[BrowserContext] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    def new(self, **options: Any) -> BrowserContext:
        options.setdefault("viewport", DESKTOP)
        options.setdefault("accept_downloads", True)
        context = self.browser.new_context(**options)
        context.set_default_timeout(20 * SECOND)
        context.on("page", self._watch)
        self.opened.append(context)
        return context

    def new_page(self, **options: Any) -> Page:
        return self.new(**options).new_page()

    def _watch(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.script_errors.append(f"{page.url}: {error}"))

        def on_console(message: Any) -> None:
            # A CSP refusal means a page needs something the policy forbids: a bug.
            if message.type == "error" and "Content Security Policy" in message.text:
                self.script_errors.append(f"{page.url}: {message.text}")

        page.on("console", on_console)

    def save_failure_screenshots(self, test_name: str) -> None:
        FAILURES.mkdir(parents=True, exist_ok=True)
        for i, context in enumerate(self.opened):
            for j, page in enumerate(context.pages):
                # A page that is gone has nothing to show.
                with contextlib.suppress(Exception):
                    page.screenshot(path=FAILURES / f"{test_name}-{i}-{j}.png", full_page=True)

    def close(self) -> None:
        for context in self.opened:
            context.close()


@pytest.fixture
def contexts(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Contexts]:
    """Fresh browser contexts for this test; on failure, screenshots of their pages go to
    test-artifacts/browser/. A script error on any page fails the test."""
    opened = Contexts(browser)
    failed_before = request.session.testsfailed
    yield opened
    # The call phase is reported before teardown, so a failure is already counted.
    if request.session.testsfailed > failed_before:
        opened.save_failure_screenshots(re.sub(r"\W+", "_", request.node.name))
    opened.close()
    assert not opened.script_errors, "script errors on the pages:\n" + "\n".join(
        opened.script_errors
    )


@pytest.fixture
def page(contexts: Contexts) -> Page:
    """A page in a fresh 1000x700 context with JavaScript on and no cookies."""
    return contexts.new_page()


# -- what a user does


def start_from_form(page: Page, stack: RunningStack, kind: str, **fields: str) -> Response:
    """Opens the start page, types `fields` into the form of `kind` and presses its button
    (named after the task); returns the answer to the form's POST: 303 to the status page,
    or 400 with the form."""
    page.goto(stack.url + "/")
    for name, value in fields.items():
        page.locator(f"#{kind}-{name}").fill(value)
    form = page.locator(f"form[action$='/tasks/{kind}']")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        form.locator("button[type=submit]").click()
    response = answer.value
    if response.status not in (303, 400):
        page.wait_for_load_state()
        shown = page.locator("main").inner_text()
        raise AssertionError(f"the start form's POST got {response.status}:\n{shown}")
    return response


def wait_for_status_page(page: Page, kind: str) -> str:
    """The status URL that the start form led to, once its page has loaded."""
    page.wait_for_url(lambda url: bool((m := STATUS_PATH.search(url)) and m["kind"] == kind))
    page.wait_for_load_state("load")
    return page.url.split("?", 1)[0]


def task_id_of(status_url: str) -> str:
    match = STATUS_PATH.search(status_url)
    assert match, status_url
    return match["id"]


def open_for_download(page: Page, url: str, timeout: float = 20 * SECOND) -> Download:
    """Goes to `url` and returns the download it turns into (goto itself reports a
    navigation that became a download as an error, which is what should happen here)."""
    with page.expect_download(timeout=timeout) as download:
        try:
            page.goto(url)
        except Exception as error:
            if "Download is starting" not in str(error):
                raise
    return download.value


def watch_downloads(page: Page) -> list[Download]:
    """Every download the page starts from now on."""
    seen: list[Download] = []
    page.on("download", lambda download: seen.append(download))
    return seen


def downloaded_text(download: Download) -> str:
    path = download.path()  # waits until the download has finished
    return Path(path).read_text(encoding="utf-8")


def downloaded_json(download: Download) -> Any:
    return json.loads(downloaded_text(download))


def messages_in_flight(stack: RunningStack) -> int:
    """Task messages that a worker has taken and not yet deleted (so: tasks being run)."""
    sqs = stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=stack.env["LONGTASK_QUEUE"])["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


def status_json(page: Page, status_url: str) -> dict[str, Any]:
    """The JSON status document, fetched with the page's cookies."""
    response = page.request.get(status_url, headers={"Accept": "application/json"})
    assert response.status == 200, response.text()
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


# Truthy (an object, so that 0 counts) once the bar shows more than `least`.
_BAR_ABOVE = """(least) => {
  const bar = document.getElementById("bar");
  return bar && bar.hasAttribute("value") && bar.value > least && {value: bar.value};
}"""


def wait_for_bar_above(page: Page, least: float, timeout: float = 15 * SECOND) -> float:
    """Waits until the bar shows more than `least` percent and returns what it shows."""
    deadline = time.monotonic() + timeout / SECOND
    while True:
        remaining = max(deadline - time.monotonic(), 0.1) * SECOND
        try:
            shown = page.wait_for_function(_BAR_ABOVE, arg=least, timeout=remaining)
            return float(shown.json_value()["value"])
        except PlaywrightError as error:
            # The page was replaced between seeing the value and reading it: look again.
            if "context was destroyed" not in str(error) or time.monotonic() > deadline:
                raise
