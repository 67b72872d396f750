"""AWS trouble is not the task's fault and not a bug: past the SDK's retries the API
answers 503 with Retry-After, a start whose message could not be sent still starts, and
a worker whose own bookkeeping call fails keeps the message and charges no attempt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice import Chalice
from chalice.test import Client

from chalicelib.longtask import LongTasks, TaskContext, testing
from chalicelib.longtask.backends import Backends
from chalicelib.longtask.faults import Fault, FaultPlan
from chalicelib.longtask.model import Status
from chalicelib.longtask.settings import Settings

SETTINGS = Settings(progress_interval=0, retry_seconds=1, stale_seconds=30, lease_seconds=20)
REFUSED = (Fault.THROTTLED, Fault.SERVER_ERROR, Fault.RESET, Fault.THROTTLED)  # 4: past them
JSON = {"Accept": "application/json"}


def count(params: dict[str, Any], ctx: TaskContext) -> int:
    for step in range(3):
        ctx.log_progress("counting", step=step, total_steps=3)
    return 3


def make(plan: FaultPlan) -> tuple[LongTasks, Backends]:
    tasks = LongTasks(Chalice(app_name="trouble"), settings=SETTINGS)
    tasks.task("count")(count)
    plain = testing.in_memory(tasks, SETTINGS, testing.VirtualClock(), faults=plan)
    return tasks, plain


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def app(plan: FaultPlan) -> Iterator[tuple[LongTasks, Backends, Client]]:
    tasks, plain = make(plan)
    with Client(tasks.app) as client:
        yield tasks, plain, client


def start(client: Client) -> dict[str, Any]:
    response = client.http.post("/tasks/count", headers=JSON)
    assert response.status_code == 202, response.body
    return dict(json.loads(response.body))


def test_a_status_read_throttled_past_the_retries_is_a_503_saying_when_to_try_again(
    app: tuple[LongTasks, Backends, Client], plan: FaultPlan
) -> None:
    _, _, client = app
    document = start(client)
    plan.script["store.get"] = REFUSED
    response = client.http.get(document["links"]["self"], headers=JSON)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert json.loads(response.body)["error"]["code"] == "aws_unavailable"
    plan.script["store.get"] = REFUSED
    page = client.http.get(document["links"]["self"], headers={"Accept": "text/html"})
    assert page.status_code == 503 and "try again in a few seconds" in page.body.decode()
    again = client.http.get(document["links"]["self"], headers=JSON)  # AWS is back
    assert again.status_code == 200


def test_a_start_whose_message_could_not_be_sent_starts_and_the_reconciler_queues_it(
    app: tuple[LongTasks, Backends, Client], plan: FaultPlan
) -> None:
    tasks, plain, client = app
    plan.script["queue.send"] = REFUSED[:3]
    document = start(client)
    assert document["status"] == "ready"
    testing.drain(tasks)
    assert plain.store.get(document["id"]).status is Status.READY  # type: ignore[union-attr]
    assert isinstance(tasks.clock, testing.VirtualClock)
    tasks.clock.advance(SETTINGS.stale_seconds + 1)
    assert tasks.reconcile().total == 1
    testing.drain(tasks)
    final = plain.store.get(document["id"])
    assert final is not None and final.status is Status.DONE and final.attempts == 1


def test_a_progress_write_refused_past_the_retries_charges_no_attempt(
    app: tuple[LongTasks, Backends, Client], plan: FaultPlan, caplog: pytest.LogCaptureFixture
) -> None:
    tasks, plain, client = app
    # The claim goes through; the first progress write is refused four times.
    plan.script["store.update"] = (None, *REFUSED)
    document = start(client)
    testing.drain(tasks)
    final = plain.store.get(document["id"])
    assert final is not None and final.status is Status.DONE
    assert final.attempts == 1  # continued, not retried
    assert "interrupted by AWS trouble" in caplog.text
    assert testing.result_of(tasks, final) == 3


def test_a_claim_refused_past_the_retries_keeps_the_message(
    app: tuple[LongTasks, Backends, Client], plan: FaultPlan, caplog: pytest.LogCaptureFixture
) -> None:
    tasks, plain, client = app
    plan.script["store.update"] = REFUSED
    document = start(client)
    testing.drain(tasks)
    final = plain.store.get(document["id"])
    assert final is not None and final.status is Status.DONE and final.attempts == 1
    assert "AWS trouble" in caplog.text and "its message comes back" in caplog.text


def test_a_bug_is_still_a_500_not_a_503(app: tuple[LongTasks, Backends, Client]) -> None:
    _, plain, client = app
    document = start(client)

    def broken(task_id: str) -> Any:
        raise KeyError("a bug")

    plain.store.get = broken  # type: ignore[method-assign]
    response = client.http.get(document["links"]["self"], headers=JSON)
    assert response.status_code == 500
    assert json.loads(response.body)["error"]["code"] == "internal_error"
