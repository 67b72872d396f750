"""Limits on the in-memory backends: a kind's running-time ceiling, an owner's places."""

from __future__ import annotations

from typing import Any

import pytest
from chalice import Chalice

from chalicelib.longtask import LongTasks, testing
from chalicelib.longtask.errors import QuotaExceeded
from chalicelib.longtask.model import Status
from chalicelib.longtask.settings import Settings
from chalicelib.longtask.tasks import TaskContext

OWNER = "o" * 64


def make_tasks(clock: testing.VirtualClock, **settings: Any) -> LongTasks:
    tasks = LongTasks(Chalice(app_name="limits"))

    @tasks.task("forever", max_seconds=5)
    def forever(params: dict[str, Any], ctx: TaskContext) -> None:
        for step in range(1000):
            clock.advance(1)
            ctx.log_progress("still going", step=step)

    @tasks.task("quick")
    def quick(params: dict[str, Any], ctx: TaskContext) -> str:
        return "done"

    testing.in_memory(tasks, Settings(retry_seconds=1.0, **settings), clock)
    return tasks


def test_a_task_past_its_kinds_ceiling_fails_once_and_for_good() -> None:
    clock = testing.VirtualClock()
    tasks = make_tasks(clock)
    task = testing.run_task(tasks, "forever", clock=clock)
    assert task.status is Status.FAILED
    assert task.error is not None and task.error.type == "TimeLimit"
    assert "5 s" in task.error.message
    assert task.attempts == 1  # no retry: it would only run out of time again
    assert task.finished_at is not None and task.finished_at - (task.started_at or 0) <= 6


def test_a_ceiling_must_be_positive() -> None:
    tasks = LongTasks(Chalice(app_name="limits"))
    with pytest.raises(ValueError, match="max_seconds"):
        tasks.task("never", max_seconds=0)(lambda params, ctx: None)


def test_an_owners_place_comes_back_when_a_task_ends_however_it_ends() -> None:
    clock = testing.VirtualClock()
    tasks = make_tasks(clock, max_active_per_owner=1)
    service = tasks.service
    first = service.start_request("forever", {}, OWNER).task
    with pytest.raises(QuotaExceeded) as refused:
        service.start_request("quick", {}, OWNER)
    assert refused.value.limit == "max_active_per_owner" and refused.value.allowed == 1
    testing.drain(tasks, clock=clock)  # fails on its time limit
    assert tasks.backends.store.get(first.id).status is Status.FAILED  # type: ignore[union-attr]
    second = service.start_request("quick", {}, OWNER).task
    testing.drain(tasks, clock=clock)  # done
    third = service.start_request("quick", {}, OWNER).task
    service.cancel("quick", third.id, OWNER)
    for task_id in (first.id, second.id, third.id):
        service.release(task_id)  # seen again: nothing more comes back
    service.start_request("quick", {}, OWNER)
    with pytest.raises(QuotaExceeded):
        service.start_request("quick", {}, OWNER)
