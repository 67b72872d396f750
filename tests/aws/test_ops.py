"""The operator's command on DynamoDB (moto): failed tasks listed from their index, and
one of them started again after its cause was fixed."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.longtask import ops

from .conftest import OWNER, Aws, deliver, start, status


@pytest.fixture
def outage(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    """An outage that `sleep` depends on: while it lasts every attempt fails."""
    state = {"down": True}
    registry = aws.tasks.registry
    definition = registry.get("sleep")
    assert definition is not None

    def flaky(params: dict[str, Any], ctx: Any) -> Any:
        if state["down"]:
            raise ConnectionError("the invoice database does not answer")
        return definition.function(params, ctx)

    monkeypatch.setitem(registry._tasks, "sleep", dataclasses.replace(definition, function=flaky))
    yield state


def run_ops(aws: Aws, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = ops.main(list(argv), backends=lambda settings: aws.tasks.backends)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_operator_lists_a_failed_task_and_retries_it_to_done(
    aws: Aws, client: Any, outage: dict[str, bool], capsys: pytest.CaptureFixture[str]
) -> None:
    failed = start(client, "sleep", {"seconds": 0})
    fine = start(client, "primes", {"limit": 100})
    deliver(aws)
    assert status(client, failed)["status"] == "failed"
    assert status(client, fine)["status"] == "done"

    code, out, err = run_ops(aws, capsys, "failed", "--since", "1d")
    assert code == 0
    (line,) = out.splitlines()  # the failed task only, not the done one
    assert line.startswith(f"{failed['id']}  sleep  ")
    assert "ConnectionError: the invoice database does not answer" in line
    assert "1 failed task(s)" in err

    outage["down"] = False
    code, out, _ = run_ops(aws, capsys, "retry", failed["id"])
    assert code == 0
    new_id = out.strip()
    assert new_id != failed["id"]
    deliver(aws)
    again = status(client, {"links": {"self": f"/tasks/sleep/{new_id}"}})
    assert again["status"] == "done" and again["parameters"] == failed["parameters"]
    # The failed record is kept as it was: the evidence of what went wrong.
    assert status(client, failed)["status"] == "failed"
    # The owner finds the new task first in their list.
    listed = client.http.get("/tasks", headers={"Accept": "application/json", **OWNER})
    assert json.loads(listed.body)["tasks"][0]["id"] == new_id


def test_a_task_that_did_not_fail_is_not_retried(
    aws: Aws, client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    running = start(client, "sleep", {"seconds": 1})
    code, _, err = run_ops(aws, capsys, "retry", running["id"])
    assert code == 1 and "is ready, not failed" in err
    code, _, err = run_ops(aws, capsys, "retry", "x" * 22)
    assert code == 1 and "no task" in err


def test_the_listing_only_reaches_back_as_far_as_asked(
    aws: Aws, client: Any, outage: dict[str, bool], capsys: pytest.CaptureFixture[str]
) -> None:
    start(client, "sleep", {"seconds": 0})
    deliver(aws)
    later = ops.main(
        ["failed", "--since", "1h"],
        backends=lambda settings: aws.tasks.backends,
        clock=lambda: time.time() + 7200,  # two hours later
    )
    assert later == 0
    assert capsys.readouterr().out == ""
    code, _, err = run_ops(aws, capsys, "failed", "--since", "yesterday")
    assert code == 2 and "--since" in err
