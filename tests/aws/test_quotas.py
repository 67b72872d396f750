"""Quotas and idempotent starts on DynamoDB (moto): what an owner who starts too much, or
the same thing twice, gets back."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.longtask.errors import QuotaExceeded
from chalicelib.longtask.service import Start
from chalicelib.longtask.testing import VirtualClock

from .conftest import OWNER, Aws, deliver, json_headers

SLEEP = {"seconds": ["1"]}
ALICE = "a" * 64
BOB = "b" * 64


@pytest.fixture
def limits(aws: Aws) -> Iterator[Callable[..., None]]:
    """Sets the quota settings for one test: `limits(max_active_per_owner=5)`."""
    tasks = aws.tasks
    original = tasks.settings

    def set_limits(clock: Any = None, **values: int) -> None:
        tasks.use_backends(tasks.backends, dataclasses.replace(original, **values), clock)

    yield set_limits
    tasks.use_backends(tasks.backends, original, tasks.clock)


def start_many(aws: Aws, owner: str, n: int, key: str | None = None) -> list[Start | str]:
    """`n` starts by `owner` at the same moment: each a Start or the limit that refused it."""

    def one(_: int) -> Start | str:
        try:
            return aws.tasks.service.start_request("sleep", SLEEP, owner, key)
        except QuotaExceeded as over:
            return over.limit

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def outcomes(results: list[Start | str]) -> Counter[str]:
    return Counter("admitted" if isinstance(r, Start) else r for r in results)


def test_fifty_concurrent_starts_admit_exactly_the_active_limit(
    aws: Aws, limits: Callable[..., None]
) -> None:
    limits(max_active_per_owner=5, starts_per_minute=1000)
    results = start_many(aws, ALICE, 50)
    assert outcomes(results) == {"admitted": 5, "max_active_per_owner": 45}
    # Another owner is not held back by Alice's burst.
    assert outcomes(start_many(aws, BOB, 1)) == {"admitted": 1}
    # Alice's list shows her five tasks and nothing of the bookkeeping.
    listed = aws.tasks.service.list_tasks(ALICE, 100, None).tasks
    admitted = [r.task.id for r in results if isinstance(r, Start)]
    assert sorted(t.id for t in listed) == sorted(admitted)


def test_over_the_active_limit_the_answer_is_429_naming_it_with_retry_after(
    aws: Aws, client: Any, limits: Callable[..., None]
) -> None:
    limits(max_active_per_owner=2)
    for _ in range(2):
        ok = client.http.post("/tasks/sleep", headers=json_headers(), body='{"seconds": 1}')
        assert ok.status_code == 202
    refused = client.http.post("/tasks/sleep", headers=json_headers(), body='{"seconds": 1}')
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    error = json.loads(refused.body)["error"]
    assert error["code"] == "too_many_active"
    assert error["fields"]["limit"] == "max_active_per_owner"
    assert error["fields"]["max_active_per_owner"] == "2"
    assert error["fields"]["retry_after"] == refused.headers["Retry-After"]
    # People get a page with the same words.
    page = client.http.post(
        "/tasks/sleep",
        headers={"Content-Type": "application/x-www-form-urlencoded", **OWNER},
        body="seconds=1",
    )
    assert page.status_code == 429 and "Retry-After" in page.headers
    assert "2 tasks queued or running" in page.body.decode()


def test_a_task_that_ends_frees_its_place_exactly_once(
    aws: Aws, client: Any, limits: Callable[..., None]
) -> None:
    limits(max_active_per_owner=2)

    def start() -> Any:
        return client.http.post("/tasks/sleep", headers=json_headers(), body='{"seconds": 0}')

    first, second = start(), start()
    assert start().status_code == 429
    deliver(aws)  # both run to done
    # Every way an end is seen again gives nothing back twice.
    for document in (first, second):
        task_id = json.loads(document.body)["id"]
        aws.tasks.service.release(task_id)
        again = client.http.delete(f"/tasks/sleep/{task_id}", headers=json_headers())
        assert again.status_code == 409
    assert [start().status_code for _ in range(3)] == [202, 202, 429]
    # A cancel frees its place too.
    listed = json.loads(client.http.get("/tasks", headers=json_headers()).body)["tasks"]
    running = [t for t in listed if not t["done"]]
    assert len(running) == 2
    cancelled = client.http.delete(running[0]["links"]["self"], headers=json_headers())
    assert cancelled.status_code == 202
    assert [start().status_code for _ in range(2)] == [202, 429]


def test_over_the_starts_per_minute_the_answer_is_429_until_the_next_minute(
    aws: Aws, client: Any, limits: Callable[..., None]
) -> None:
    clock = VirtualClock(1_800_000_000.0)  # on a minute boundary
    clock.advance(15)
    limits(clock=clock, max_active_per_owner=100, starts_per_minute=3)
    results = start_many(aws, ALICE, 10)
    assert outcomes(results) == {"admitted": 3, "starts_per_minute": 7}
    refused = client.http.post("/tasks/sleep", headers=json_headers(), body='{"seconds": 1}')
    assert refused.status_code == 202  # another owner (the test's cookie) has its own count
    for _ in range(2):
        client.http.post("/tasks/sleep", headers=json_headers(), body='{"seconds": 1}')
    refused = client.http.post("/tasks/sleep", headers=json_headers(), body='{"seconds": 1}')
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "45"  # the rest of this minute
    error = json.loads(refused.body)["error"]
    assert error["code"] == "too_many_starts"
    assert error["fields"]["starts_per_minute"] == "3"
    clock.advance(45)
    again = client.http.post("/tasks/sleep", headers=json_headers(), body='{"seconds": 1}')
    assert again.status_code == 202


def test_the_same_idempotency_key_twice_gives_the_first_task(client: Any) -> None:
    headers = {**json_headers(), "Idempotency-Key": "order-17"}
    first = client.http.post("/tasks/sleep", headers=headers, body='{"seconds": 1}')
    again = client.http.post("/tasks/sleep", headers=headers, body='{"seconds": 1}')
    assert first.status_code == 202 and again.status_code == 200
    assert json.loads(again.body)["id"] == json.loads(first.body)["id"]
    assert again.headers["Location"] == first.headers["Location"]
    other = client.http.post("/tasks/sleep", headers=headers, body='{"seconds": 2}')
    assert other.status_code == 409
    body = json.loads(other.body)
    assert body["error"]["code"] == "key_reused"
    assert "Idempotency-Key" in body["error"]["fields"]
    assert body["task"]["id"] == json.loads(first.body)["id"]
    listed = json.loads(client.http.get("/tasks", headers=json_headers()).body)["tasks"]
    assert len(listed) == 1


def test_concurrent_repeats_of_one_key_make_exactly_one_task(
    aws: Aws, limits: Callable[..., None]
) -> None:
    limits(max_active_per_owner=5, starts_per_minute=1000)
    results = start_many(aws, ALICE, 30, key="click-1")
    assert all(isinstance(r, Start) for r in results)
    ids = {r.task.id for r in results if isinstance(r, Start)}
    assert len(ids) == 1
    assert sum(1 for r in results if isinstance(r, Start) and not r.repeated) == 1
    assert len(aws.tasks.service.list_tasks(ALICE, 100, None).tasks) == 1
    # The repeats took no place: four more starts fit under the limit of five.
    assert outcomes(start_many(aws, ALICE, 5)) == {"admitted": 4, "max_active_per_owner": 1}


def test_one_owners_key_never_finds_another_owners_task(client: Any) -> None:
    other = {"Cookie": "longtask_owner=" + "x" * 43}
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    mine = client.http.post(
        "/tasks/sleep", headers={**headers, **OWNER, "Idempotency-Key": "k"}, body='{"seconds": 1}'
    )
    theirs = client.http.post(
        "/tasks/sleep", headers={**headers, **other, "Idempotency-Key": "k"}, body='{"seconds": 1}'
    )
    assert mine.status_code == theirs.status_code == 202
    assert json.loads(mine.body)["id"] != json.loads(theirs.body)["id"]


@pytest.mark.parametrize("key", ["", "with space", "é", "x" * 256])
def test_a_malformed_idempotency_key_is_a_400_naming_the_header(client: Any, key: str) -> None:
    headers = {**json_headers(), "Idempotency-Key": key}
    response = client.http.post("/tasks/sleep", headers=headers, body='{"seconds": 1}')
    assert response.status_code == 400
    assert "Idempotency-Key" in json.loads(response.body)["error"]["fields"]


def test_a_form_sent_twice_starts_one_task(client: Any) -> None:
    index = client.http.get("/")
    cookie = index.headers["Set-Cookie"].split(";")[0]  # a first visit gets its owner here
    page = index.body.decode()
    token = re.search(r'name="_token" value="([^"]+)"[^>]*>\s*(?:.|\n)*?name="seconds"', page)
    assert token is not None
    form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    body = f"_token={token.group(1)}&seconds=3&fail_times=0"
    first = client.http.post("/tasks/sleep", headers=form, body=body)
    second = client.http.post("/tasks/sleep", headers=form, body=body)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    listed = client.http.get("/tasks", headers={"Accept": "application/json", "Cookie": cookie})
    assert len(json.loads(listed.body)["tasks"]) == 1
    # Each rendering of the page offers fresh tokens: the next form starts a new task.
    fresh = client.http.get("/", headers={"Cookie": cookie}).body.decode()
    assert token.group(1) not in fresh


def test_the_bookkeeping_items_are_not_tasks(aws: Aws, client: Any) -> None:
    keyed = {**json_headers(), "Idempotency-Key": "k"}
    client.http.post("/tasks/sleep", headers=keyed, body='{"seconds": 1}')
    client.http.post("/tasks/sleep", headers=json_headers(), body='{"seconds": 1}')
    items = aws.dynamodb.scan(TableName=aws.tasks.settings.table)["Items"]
    ids = [item["id"]["S"] for item in items]
    bookkeeping = [i for i in ids if "#" in i]
    assert {i.split("#", 1)[0] for i in bookkeeping} == {"owner", "starts", "start"}
    for item_id in bookkeeping:
        assert not any(name == "owner" for name in items[ids.index(item_id)])
        response = client.http.get(f"/tasks/sleep/{item_id}", headers=json_headers())
        assert response.status_code == 404
