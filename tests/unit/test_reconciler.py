"""The reconciler finds every task that went stale through the due index and moves it on:
each planted state that nothing else would repair ends well within two of its runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chalice import Chalice

from chalicelib.longtask import Integer, LongTasks, TaskContext, testing
from chalicelib.longtask.backends import Expect, MemoryQueue, MemoryTaskStore
from chalicelib.longtask.model import Status, TaskRecord
from chalicelib.longtask.reconciler import CLEARED, RELEASED, REQUEUED
from chalicelib.longtask.settings import Settings

OWNER = "c" * 64
STALE = 30.0
SETTINGS = Settings(progress_interval=0, retry_seconds=1, stale_seconds=STALE, lease_seconds=20)


def double(item: int, ctx: TaskContext) -> int:
    if item < 0:
        raise ValueError(f"{item} is negative")
    return 2 * item


def doubles(params: dict[str, Any], ctx: TaskContext) -> list[int]:
    return ctx.map(range(params["start"], params["start"] + 3), double)


def count(params: dict[str, Any], ctx: TaskContext) -> int:
    for step in range(3):
        ctx.log_progress("counting", step=step, total_steps=3)
    return 3


@pytest.fixture
def tasks() -> Iterator[LongTasks]:
    tasks = LongTasks(Chalice(app_name="reconciler-test"), settings=SETTINGS)
    tasks.task("count")(count)
    tasks.task("doubles", params={"start": Integer(min=-10, max=10)})(doubles)
    testing.in_memory(tasks, SETTINGS, testing.VirtualClock())
    yield tasks


def parts(tasks: LongTasks) -> tuple[MemoryTaskStore, MemoryQueue, testing.VirtualClock]:
    store, queue, clock = tasks.backends.store, tasks.backends.queue, tasks.clock
    assert isinstance(store, MemoryTaskStore) and isinstance(queue, MemoryQueue)
    assert isinstance(clock, testing.VirtualClock)
    return store, queue, clock


def start(tasks: LongTasks, kind: str, **params: Any) -> TaskRecord:
    return tasks.service.start_request(kind, {k: [str(v)] for k, v in params.items()}, OWNER).task


def reconcile_until_ended(tasks: LongTasks, task_id: str) -> tuple[TaskRecord, list[Any]]:
    """Runs the reconciler each minute (as the schedule does) and the worker between
    runs, until the task ends; at most two runs after it fell due."""
    store, _, clock = parts(tasks)
    runs = []
    for _ in range(2):
        clock.advance(60)
        runs.append(tasks.reconcile())
        testing.drain(tasks)
        final = store.get(task_id)
        assert final is not None
        if final.is_terminal:
            return final, runs
    raise AssertionError(f"still {final.status.value} after two runs: {runs}")


def test_a_ready_task_whose_message_was_never_sent_is_queued_and_ends(tasks: LongTasks) -> None:
    store, queue, _ = parts(tasks)
    task = start(tasks, "count")
    assert queue.lose(task.id) == 1  # the API died between the start and its send
    testing.drain(tasks)
    assert store.get(task.id).status is Status.READY  # type: ignore[union-attr]
    final, runs = reconcile_until_ended(tasks, task.id)
    assert final.status is Status.DONE
    assert runs[0].counts[REQUEUED] == 1
    assert store.active_count(OWNER) == 0


def test_a_task_whose_worker_died_and_whose_message_is_gone_is_taken_over(
    tasks: LongTasks,
) -> None:
    store, queue, clock = parts(tasks)
    task = start(tasks, "count")
    now = clock()
    # A worker claimed it, then died; its message was lost with it.
    store.update(
        task.id,
        {"status": Status.STARTED, "attempts": 1, "lease_until": now + 20, "due_at": now + 50},
    )
    queue.lose(task.id)
    final, _ = reconcile_until_ended(tasks, task.id)
    assert final.status is Status.DONE and final.attempts == 2


def test_a_waiting_task_whose_last_part_report_was_lost_is_resumed(tasks: LongTasks) -> None:
    store, queue, _ = parts(tasks)
    task = start(tasks, "doubles", start=1)
    testing.drain(tasks, max_deliveries=1)  # the map started; the task waits
    for _ in range(3):
        testing.drain(tasks, max_deliveries=1)  # each part
    # The last part queued the task again; that message is lost.
    queue.lose(task.id)
    testing.drain(tasks)
    waiting = store.get(task.id)
    assert waiting is not None and waiting.status is Status.STARTED and waiting.resume
    final, _ = reconcile_until_ended(tasks, task.id)
    assert final.status is Status.DONE
    assert testing.result_of(tasks, final) == [2, 4, 6]


def test_a_waiting_task_whose_part_failed_is_failed_naming_the_part(tasks: LongTasks) -> None:
    store, queue, _ = parts(tasks)
    task = start(tasks, "doubles", start=-1)
    testing.drain(tasks, max_deliveries=1)
    original = queue.send

    def lose_wake_ups(task_id: str, delay_seconds: int = 0, owner: str | None = None) -> None:
        if task_id != task.id:
            original(task_id, delay_seconds, owner)

    queue.send = lose_wake_ups  # type: ignore[method-assign]
    testing.drain(tasks)
    queue.send = original  # type: ignore[method-assign]
    assert store.get(task.id).status is Status.STARTED  # type: ignore[union-attr]
    final, _ = reconcile_until_ended(tasks, task.id)
    assert final.status is Status.FAILED and final.error is not None
    assert "part 1 of 3 failed: ValueError: -1 is negative" in final.error.message


def test_an_ended_task_that_still_holds_its_owners_place_gives_it_back(tasks: LongTasks) -> None:
    store, _, clock = parts(tasks)
    task = start(tasks, "count")
    testing.drain(tasks)
    assert store.active_count(OWNER) == 0
    # An end written without its release (as an older version wrote it).
    planted = start(tasks, "count")
    store.update(planted.id, {"status": Status.CANCELLED}, Expect.into(Status.CANCELLED))
    assert store.active_count(OWNER) == 1
    clock.advance(STALE + 60)
    repairs = tasks.reconcile()
    assert repairs.counts[RELEASED] == 1
    assert store.active_count(OWNER) == 0
    assert tasks.reconcile().total == 0  # once: nothing left to repair
    assert store.get(task.id).due_at is None  # type: ignore[union-attr]


def test_an_ended_task_left_in_the_due_index_is_taken_out(tasks: LongTasks) -> None:
    store, _, clock = parts(tasks)
    record = TaskRecord(id="x" * 22, kind="count", params={}, status=Status.DONE, due_at=clock())
    store.create(record)
    clock.advance(60)
    assert tasks.reconcile().counts[CLEARED] == 1
    assert store.due(clock(), 10) == []


def test_a_task_running_under_a_live_lease_is_left_alone(tasks: LongTasks) -> None:
    store, queue, clock = parts(tasks)
    task = start(tasks, "count")
    now = clock()
    store.update(task.id, {"status": Status.STARTED, "attempts": 1, "lease_until": now + 600})
    queue.lose(task.id)
    clock.advance(STALE + 60)
    assert tasks.reconcile().total == 0
    assert len(queue) == 0
    moved = store.get(task.id)
    assert moved is not None and moved.due_at == SETTINGS.due(now + 600)


def test_a_healthy_stage_has_nothing_to_repair(tasks: LongTasks) -> None:
    _, _, clock = parts(tasks)
    for _ in range(3):
        start(tasks, "count")
    start(tasks, "doubles", start=2)
    testing.drain(tasks)
    clock.advance(3600)
    assert tasks.reconcile().looked_at == 0
