"""The three demo tasks from start to downloaded result, over HTTP, on the real local stack."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import requests

from .conftest import RunningStack

JSON = {"Accept": "application/json"}
DEADLINE_SECONDS = 90


def start(stack: RunningStack, kind: str, **params: Any) -> dict[str, Any]:
    response = requests.post(f"{stack.url}/tasks/{kind}", json=params, headers=JSON, timeout=10)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == response.json()["links"]["self"]
    return dict(response.json())


def wait_until_finished(stack: RunningStack, document: dict[str, Any]) -> dict[str, Any]:
    """Polls as a client should (Retry-After), until the task is done, failed or cancelled;
    the final document also holds the statuses (`seen`) and steps (`steps`) polled."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    url = stack.url + document["links"]["self"]
    seen: list[str] = []
    steps: list[int | None] = []
    while time.monotonic() < deadline:
        response = requests.get(url, headers=JSON, timeout=10)
        assert response.status_code == 200, response.text
        current = dict(response.json())
        seen.append(current["status"])
        steps.append(current["progress"]["step"])
        if current["done"]:
            assert "Retry-After" not in response.headers
            current["seen"], current["steps"] = seen, steps
            return current
        time.sleep(min(float(response.headers["Retry-After"]), 1.0))
    raise AssertionError(f"not finished after {DEADLINE_SECONDS} s: {seen[-5:]}\n{stack.tail()}")


def download(stack: RunningStack, document: dict[str, Any]) -> requests.Response:
    """Follows the status URL's redirect to the presigned S3 URL, as a browser does."""
    first = requests.get(stack.url + document["links"]["self"], allow_redirects=False, timeout=10)
    assert first.status_code == 303
    location = first.headers["Location"]
    assert location.startswith(stack.moto_url) and "X-Amz-Signature=" in location
    result = requests.get(location, timeout=10)
    assert result.status_code == 200, result.text
    return result


def test_primes_to_a_million(stack: RunningStack) -> None:
    document = start(stack, "primes", limit=1_000_000)
    final = wait_until_finished(stack, document)
    assert final["status"] == "done", final
    assert final["progress"]["percent"] == 100.0
    assert download(stack, document).json() == {"limit": 1_000_000, "count": 78498}


def test_report_for_a_leap_february(stack: RunningStack) -> None:
    document = start(stack, "report", month="2024-02")
    assert wait_until_finished(stack, document)["status"] == "done"
    result = download(stack, document)
    assert result.headers["Content-Type"].startswith("text/csv")
    assert 'filename="report-2024-02.csv"' in result.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(result.text)))
    assert rows[0][:3] == ["date", "invoices", "total"]
    assert len(rows) == 1 + 29


def test_sleep_that_fails_once_succeeds_on_its_second_attempt(stack: RunningStack) -> None:
    document = start(stack, "sleep", seconds=1, fail_times=1)
    final = wait_until_finished(stack, document)
    assert final["status"] == "done" and final["attempts"] == 2, final
    assert download(stack, document).json() == {"slept": 1}


def test_sleep_that_always_fails_ends_failed_with_its_error(stack: RunningStack) -> None:
    document = start(stack, "sleep", seconds=0, fail_times=3)
    final = wait_until_finished(stack, document)
    assert final["status"] == "failed", final
    assert final["attempts"] == 3
    assert final["error"]["type"] == "PlannedFailure"
    result = requests.get(
        stack.url + document["links"]["self"] + "/result", headers=JSON, timeout=10
    )
    assert result.status_code == 409


def test_a_long_sleep_continues_across_worker_invocations(stack: RunningStack) -> None:
    # The dev stage's worker times out after 10 s: a 15 s sleep needs at least two
    # invocations, handed over through its checkpoint.
    document = start(stack, "sleep", seconds=15)
    final = wait_until_finished(stack, document)
    assert final["status"] == "done" and final["attempts"] == 1, final
    assert final["elapsed_seconds"] >= 15
    assert "started" in final["seen"]
    assert download(stack, document).json() == {"slept": 15}
