"""Watching a task in Chromium over time: a bar that moves smoothly and honestly between
polls, the end seen soon after it comes, few requests, and a bar that stops when the task
stops reporting."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

from chalicelib.longtask.model import parse_iso

from .browser_support import (
    SECOND,
    browser,
    contexts,
    page,
    start_from_form,
    status_json,
    wait_for_bar_above,
    wait_for_status_page,
)
from .conftest import RunningStack, descendants

__all__ = ["browser", "contexts", "page"]

pytestmark = pytest.mark.browser

# Samples the page as a user's eye would, every 250 ms, and notes when "Done" appears.
_SAMPLER = """() => {
  window.samples = [];
  window.doneAt = null;
  setInterval(() => {
    const bar = document.getElementById("bar");
    const state = document.getElementById("state");
    window.samples.push({
      t: Date.now(),
      value: bar && bar.hasAttribute("value") ? bar.value : null,
      state: state ? state.textContent : null,
    });
  }, 250);
  new MutationObserver(() => {
    const state = document.getElementById("state");
    if (window.doneAt === null && state && state.textContent === "Done") {
      window.doneAt = Date.now();
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def watch_a_sleep(page: Page, stack: RunningStack, seconds: int) -> tuple[dict[str, Any], Any]:
    """Starts a sleep from the form, samples its page until Done; returns the final status
    document and what the page recorded."""
    start_from_form(page, stack, "sleep", seconds=str(seconds))
    status_url = wait_for_status_page(page, "sleep")
    page.evaluate(_SAMPLER)
    with page.expect_download(timeout=(seconds + 30) * SECOND):
        expect(page.locator("#state")).to_have_text("Done", timeout=(seconds + 30) * SECOND)
    page.wait_for_function("window.doneAt !== null")
    return status_json(page, status_url), page.evaluate("({samples, doneAt})")


def test_the_bar_moves_every_second_never_back_and_done_shows_soon_after_the_end(
    page: Page, stack: RunningStack
) -> None:
    latencies = []
    for _ in range(3):
        final, seen = watch_a_sleep(page, stack, 30)
        running = [s for s in seen["samples"] if s["state"] == "Running" and s["value"]]
        assert len(running) > 80, f"too few running samples: {len(running)}"
        values = [s["value"] for s in running]
        assert values == sorted(values), "the bar went backwards"
        changes = [s["t"] for a, s in itertools.pairwise(running) if s["value"] > a["value"]]
        gaps = [b - a for a, b in itertools.pairwise(changes)]
        assert max(gaps) <= 1250, f"the bar stood still for {max(gaps)} ms"
        finished_at = parse_iso(final["finished_at"])
        assert finished_at is not None
        latencies.append(seen["doneAt"] / 1000 - finished_at)
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)]
    print(f"Done shown after finished_at: {', '.join(f'{s:.2f} s' for s in latencies)}")
    assert p95 <= 1.5, latencies


def test_a_minute_long_task_costs_at_most_fifteen_requests(page: Page, stack: RunningStack) -> None:
    page.goto(stack.url + "/")
    page.locator("#sleep-seconds").fill("60")
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    with page.expect_download(timeout=90 * SECOND):
        page.get_by_role("button", name="Sleep").click()
        wait_for_status_page(page, "sleep")
        expect(page.locator("#state")).to_have_text("Done", timeout=90 * SECOND)
    to_app = [
        f"{r.method} {r.url.removeprefix(stack.url)}"
        for r in requests
        if r.url.startswith(stack.url)
    ]
    print(f"{len(to_app)} requests to the app for a 60 s task:\n" + "\n".join(to_app))
    # The start, the page, its two static files, the polls, and the result page at the end.
    assert len(to_app) <= 15, to_app


@contextlib.contextmanager
def workers_paused(stack: RunningStack) -> Iterator[None]:
    """Freezes the stack's task workers (SIGSTOP), as a stuck task would be, and lets them
    go on afterwards."""
    workers = [
        pid
        for pid, command in descendants(stack.process.pid).items()
        if "dev.local.worker --function worker" in command
    ]
    assert workers
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)


_STILL_FOR = """([seconds]) => {
  const bar = document.getElementById("bar");
  const now = Date.now();
  if (!window.still || window.still.value !== bar.value) {
    window.still = {value: bar.value, since: now};
  }
  return now - window.still.since >= seconds * 1000 && {value: bar.value};
}"""


def test_the_bar_stops_when_the_task_stops_reporting(page: Page, stack: RunningStack) -> None:
    start_from_form(page, stack, "sleep", seconds="90")
    status_url = wait_for_status_page(page, "sleep")
    try:
        wait_for_bar_above(page, 3)
        with workers_paused(stack):
            paused_at = time.monotonic()
            reported = status_json(page, status_url)["progress"]["percent"]
            # It may carry on for a while at the last pace, then it must stand still.
            still = page.wait_for_function(_STILL_FOR, arg=[3], timeout=30 * SECOND, polling=250)
            value = float(still.json_value()["value"])
            stood = time.monotonic() - paused_at
            page.wait_for_timeout(3000)
            assert float(page.locator("#bar").evaluate("bar => bar.value")) == value
            # No more than the horizon ahead of the last report (15 steps of 90 at 1 step/s).
            assert value <= reported + 100 * 17 / 90, (reported, value)
            expect(page.locator("#stalled")).to_contain_text("No progress reported for")
            expect(page.locator("#eta-box")).to_be_hidden()
            print(f"the bar stood still {stood:.1f} s after the workers stopped")
    finally:
        response = page.request.delete(status_url, headers={"Accept": "application/json"})
        assert response.status in (202, 409)
