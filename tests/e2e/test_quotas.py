"""Quotas, idempotent starts and bursts over real HTTP on a local stack: what an owner who
starts too much, or the same thing twice, sees; and that a burst of connections is served."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from .conftest import RunningStack, start_stack, wait_until

MAX_ACTIVE = 5
STARTS_PER_MINUTE = 12
JSON = {"Accept": "application/json", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def quota_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """No workers, so started tasks stay queued: each keeps its owner's place."""
    running = start_stack(
        env={
            "LONGTASK_MAX_ACTIVE_PER_OWNER": str(MAX_ACTIVE),
            "LONGTASK_STARTS_PER_MINUTE": str(STARTS_PER_MINUTE),
        },
        workers=0,
        log_dir=tmp_path_factory.mktemp("quotas"),
    )
    yield running
    running.stop()


def owner(n: int) -> dict[str, str]:
    return {"Cookie": f"longtask_owner={n:043d}"}


def at_once(n: int, request: Callable[[], requests.Response]) -> list[requests.Response]:
    """`n` requests sent together: every thread waits at a barrier, then sends."""
    barrier = threading.Barrier(n)

    def one(_: int) -> requests.Response:
        barrier.wait()
        return request()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def codes(responses: list[requests.Response]) -> Counter[str]:
    return Counter(
        str(r.status_code) if r.status_code != 429 else r.json()["error"]["code"] for r in responses
    )


def test_fifty_concurrent_starts_admit_five_and_tell_the_rest_when_to_retry(
    quota_stack: RunningStack,
) -> None:
    url = f"{quota_stack.url}/tasks/sleep"
    alice = {**JSON, **owner(1)}
    answers = at_once(50, lambda: requests.post(url, json={"seconds": 5}, headers=alice))
    assert codes(answers) == {"202": MAX_ACTIVE, "too_many_active": 50 - MAX_ACTIVE}
    for refused in (a for a in answers if a.status_code == 429):
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["error"]["fields"]["max_active_per_owner"] == str(MAX_ACTIVE)
    # Another owner still starts.
    bob = requests.post(url, json={"seconds": 5}, headers={**JSON, **owner(2)})
    assert bob.status_code == 202
    # Alice's list holds her five tasks.
    listed = requests.get(f"{quota_stack.url}/tasks", headers=alice).json()["tasks"]
    assert len(listed) == MAX_ACTIVE


def test_over_the_starts_per_minute_the_rest_of_the_burst_is_refused(
    quota_stack: RunningStack,
) -> None:
    url = f"{quota_stack.url}/tasks/sleep"
    carol = {**JSON, **owner(3)}
    # Eight starts, each cancelled at once (so that her active count stays low), all
    # within one minute of the clock: the minute's count must not reset midway.
    wait_until(lambda: time.time() % 60 < 40, 25, "the start of a fresh stretch of a minute")
    for _ in range(8):
        started = requests.post(url, json={"seconds": 5}, headers=carol)
        assert started.status_code == 202
        cancelled = requests.delete(quota_stack.url + started.headers["Location"], headers=carol)
        assert cancelled.status_code == 202
    answers = at_once(20, lambda: requests.post(url, json={"seconds": 5}, headers=carol))
    assert codes(answers) == {"202": STARTS_PER_MINUTE - 8, "too_many_starts": 16}
    refused = next(a for a in answers if a.status_code == 429)
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["error"]["fields"]["starts_per_minute"] == str(STARTS_PER_MINUTE)


def test_the_same_idempotency_key_sent_concurrently_makes_one_task(
    quota_stack: RunningStack,
) -> None:
    url = f"{quota_stack.url}/tasks/sleep"
    dave = {**JSON, **owner(4), "Idempotency-Key": "payment-42"}
    answers = at_once(20, lambda: requests.post(url, json={"seconds": 5}, headers=dave))
    assert Counter(a.status_code for a in answers) == {202: 1, 200: 19}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len({a.headers["Location"] for a in answers}) == 1
    other = requests.post(url, json={"seconds": 6}, headers=dave)
    assert other.status_code == 409 and other.json()["error"]["code"] == "key_reused"
    listed = requests.get(f"{quota_stack.url}/tasks", headers={**JSON, **owner(4)})
    assert len(listed.json()["tasks"]) == 1


def test_a_double_submitted_form_starts_one_task(quota_stack: RunningStack) -> None:
    browser = requests.Session()
    page = browser.get(f"{quota_stack.url}/")
    assert "longtask_owner" in browser.cookies  # the first visit is an owner already
    sleep_form = r'action="/tasks/sleep"[^>]*>\s*<input [^>]*name="_token" value="([^"]+)"'
    form = re.search(sleep_form, page.text)
    assert form is not None
    fields = {"_token": form.group(1), "seconds": "3", "fail_times": ""}
    cookie = {"Cookie": f"longtask_owner={browser.cookies['longtask_owner']}"}
    answers = at_once(
        2,
        lambda: requests.post(
            f"{quota_stack.url}/tasks/sleep", data=fields, headers=cookie, allow_redirects=False
        ),
    )
    assert [a.status_code for a in answers] == [303, 303]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    listed = browser.get(f"{quota_stack.url}/tasks", headers={"Accept": "application/json"})
    assert len(listed.json()["tasks"]) == 1


def test_fifty_concurrent_connections_are_all_answered(quota_stack: RunningStack) -> None:
    """Fifty clients connect at the same moment (no connection is reused), each asks."""
    address = urlsplit(quota_stack.url)
    barrier = threading.Barrier(50)

    def one(_: int) -> tuple[int, Any]:
        barrier.wait()
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        try:
            connection.request("GET", "/tasks", headers={"Accept": "application/json"})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(one, range(50)))
    assert [status for status, _ in answers] == [200] * 50
    assert all(body == {"tasks": [], "next": None} for _, body in answers)


def test_an_unknown_method_gets_405_in_the_error_format(quota_stack: RunningStack) -> None:
    answer = requests.request("FOO", f"{quota_stack.url}/tasks")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, HEAD"
    assert answer.json()["error"]["code"] == "method_not_allowed"
    nowhere = requests.request("FOO", f"{quota_stack.url}/nowhere")
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
