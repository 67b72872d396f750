"""ctx.map and ctx.step on the in-memory backends, through the app's real worker handler:
results in order, duplicates counted once, failures named, cancel, steps run once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from chalice import Chalice

from chalicelib.longtask import Integer, LongTasks, TaskContext, testing
from chalicelib.longtask.backends import MemoryQueue, MemoryTaskStore
from chalicelib.longtask.backends.keys import part_id
from chalicelib.longtask.fanout import MAX_PARTS, PartFailure
from chalicelib.longtask.model import ErrorInfo, Status, TaskRecord
from chalicelib.longtask.settings import Settings

CALLS: Counter[str] = Counter()


def square(item: int, ctx: TaskContext) -> int:
    CALLS[f"square {item}"] += 1
    ctx.log_progress("squaring", step=1, total_steps=1)
    return item * item


def poison(item: int, ctx: TaskContext) -> int:
    if item == 3:
        raise ValueError(f"item {item} is poison")
    return item


def big(item: int, ctx: TaskContext) -> str:
    return "x" * item  # large results travel through the result store


def endless(item: int, ctx: TaskContext) -> None:
    for step in range(10_000):
        ctx.log_progress("working", step=step, total_steps=10_000)


def squares(params: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    CALLS["parent runs"] += 1
    prepared = ctx.step("prepare", lambda: CALLS.update(["prepare"]) or list(range(params["n"])))
    results = ctx.map(prepared, square, max_parallel=params.get("parallel") or None)
    CALLS["map returned"] += 1
    return {"squares": results}


def poisoned(params: dict[str, Any], ctx: TaskContext) -> list[Any]:
    return ctx.map(range(6), poison, tolerate=params["tolerate"])


def sizes(params: dict[str, Any], ctx: TaskContext) -> list[int]:
    return [len(text) for text in ctx.map([10, 100_000, 20], big)]


def forever(params: dict[str, Any], ctx: TaskContext) -> None:
    ctx.map(range(3), endless)


def lambdas(params: dict[str, Any], ctx: TaskContext) -> list[Any]:
    return ctx.map([1, 2], lambda item, ctx: item)


def too_many(params: dict[str, Any], ctx: TaskContext) -> None:
    ctx.map(range(MAX_PARTS + 1), square)


# What the next run of `changing` does: tests change it between two runs of one task.
PROGRAM: dict[str, Any] = {}


def changing(params: dict[str, Any], ctx: TaskContext) -> list[Any]:
    first = ctx.step(PROGRAM["step"], lambda: "first")
    again = ctx.step(PROGRAM["step"], lambda: "again")  # the same name, its own operation
    return [first, again, *ctx.map(PROGRAM["items"], square)]


@pytest.fixture
def tasks() -> Iterator[LongTasks]:
    app = Chalice(app_name="fanout-test")
    tasks = LongTasks(app, settings=Settings(progress_interval=0, retry_seconds=1))
    declare = {"n": Integer(min=0, max=1000), "parallel": Integer(min=0, max=100, default=0)}
    tasks.task("squares", params=declare)(squares)
    tasks.task("poisoned", params={"tolerate": Integer(min=0, default=0)})(poisoned)
    tasks.task("sizes")(sizes)
    tasks.task("forever")(forever)
    tasks.task("too-many")(too_many)
    tasks.task("lambdas")(lambdas)
    tasks.task("changing")(changing)
    PROGRAM.update(step="fetch", items=[1, 2])
    testing.in_memory(tasks, Settings(progress_interval=0, retry_seconds=1), testing.VirtualClock())
    CALLS.clear()
    yield tasks


def store_of(tasks: LongTasks) -> MemoryTaskStore:
    store = tasks.backends.store
    assert isinstance(store, MemoryTaskStore)
    return store


def parts_of(tasks: LongTasks, task: TaskRecord) -> list[TaskRecord]:
    """The parts of the task's map, in item order."""
    parts = [r for r in store_of(tasks).tasks.values() if r.parent == task.id]
    return sorted(parts, key=lambda p: p.part.index if p.part else -1)


def map_key_of(tasks: LongTasks, task: TaskRecord) -> str:
    (key,) = {p.part.map for p in parts_of(tasks, task) if p.part}
    return key


def test_a_hundred_parts_return_exact_results_in_item_order(tasks: LongTasks) -> None:
    task = testing.run_task(tasks, "squares", n=100)
    assert task.status is Status.DONE, task.error
    assert testing.result_of(tasks, task) == {"squares": [i * i for i in range(100)]}
    assert all(CALLS[f"square {i}"] == 1 for i in range(100))
    # The parent ran twice: to start the map, and once more when the last part ended.
    assert CALLS["parent runs"] == 2
    assert CALLS["prepare"] == 1  # the step before the map ran once across both runs


def test_parts_are_hidden_records_with_derived_ids_and_no_owner(tasks: LongTasks) -> None:
    task = testing.run_task(tasks, "squares", n=3)
    parts = parts_of(tasks, task)
    key = map_key_of(tasks, task)
    assert [p.id for p in parts] == [part_id(key, i) for i in range(3)]
    assert [p.part.index for p in parts if p.part] == [0, 1, 2]
    assert all(p.parent == task.id and p.owner is None and p.params == {} for p in parts)
    assert all(p.status is Status.DONE for p in parts)


def test_every_message_delivered_twice_still_counts_each_part_once(
    tasks: LongTasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = tasks.backends.queue
    assert isinstance(queue, MemoryQueue)
    send = queue.send

    def twice(task_id: str, delay_seconds: int = 0, owner: str | None = None) -> None:
        send(task_id, delay_seconds, owner)
        send(task_id, delay_seconds, owner)

    monkeypatch.setattr(queue, "send", twice)
    task = testing.run_task(tasks, "squares", n=20)
    assert task.status is Status.DONE
    assert testing.result_of(tasks, task) == {"squares": [i * i for i in range(20)]}
    assert all(CALLS[f"square {i}"] == 1 for i in range(20)), CALLS
    finished = store_of(tasks).sets[map_key_of(tasks, task)]
    assert finished == set(range(20))
    # A copy of the parent's first message may wake it early (it finds the map unfinished
    # and waits again), but the map completes for it exactly once.
    assert CALLS["map returned"] == 1


def test_every_message_of_a_fan_out_is_its_owners_work(
    tasks: LongTasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = tasks.backends.queue
    assert isinstance(queue, MemoryQueue)
    receive, groups = queue.receive, Counter[str | None]()

    def counted() -> Any:
        received = receive()
        if received is not None:
            groups[received.group] += 1
        return received

    monkeypatch.setattr(queue, "receive", counted)
    task = tasks.service.start("squares", {"n": [12], "parallel": [3]}, owner="alice")
    testing.drain(tasks)
    assert store_of(tasks).get(task.id).status is Status.DONE  # type: ignore[union-attr]
    # The start, the first parts, each part that a part's end queues, the wake-up.
    assert groups.keys() == {"alice"} and groups["alice"] >= 12 + 2, groups


def test_a_part_delivered_ten_times_at_once_runs_once(tasks: LongTasks) -> None:
    queue = tasks.backends.queue
    assert isinstance(queue, MemoryQueue)
    task = tasks.start("squares", n=5)
    testing.drain(tasks)  # the parts ran; now pretend SQS hands one of them out again
    for _ in range(10):
        queue.send(part_id(map_key_of(tasks, task), 2))
    testing.drain(tasks)
    final = store_of(tasks).get(task.id)
    assert final is not None and final.status is Status.DONE
    assert CALLS["square 2"] == 1 and CALLS["map returned"] == 1


def test_a_bounded_map_never_runs_more_parts_than_allowed_at_once(tasks: LongTasks) -> None:
    queue = tasks.backends.queue
    assert isinstance(queue, MemoryQueue)
    task = tasks.start("squares", n=12, parallel=3)
    testing.drain(tasks, max_deliveries=2)  # the parent, then one part
    parts = [p.id for p in parts_of(tasks, task)]
    assert len(parts) == 12
    queued = [task_id for task_id, _ in queue.sent if task_id in parts]
    assert len(queued) == 4  # the first three, then the one after the part that ended
    testing.drain(tasks)
    final = store_of(tasks).get(task.id)
    assert final is not None and final.status is Status.DONE
    assert testing.result_of(tasks, final) == {"squares": [i * i for i in range(12)]}


def test_a_poison_part_fails_the_task_with_the_part_named(tasks: LongTasks) -> None:
    task = testing.run_task(tasks, "poisoned", tolerate=0)
    assert task.status is Status.FAILED
    assert task.error is not None and task.error.type == "PartFailed"
    assert "part 4 of 6 failed: ValueError: item 3 is poison" in task.error.message
    assert task.attempts == 1  # replaying the map cannot help: no second attempt
    poisoned = parts_of(tasks, task)[3]
    assert poisoned.attempts == 3  # the part itself was retried


def test_a_tolerated_failure_comes_back_as_a_value_that_says_it_failed(
    tasks: LongTasks,
) -> None:
    task = testing.run_task(tasks, "poisoned", tolerate=1)
    assert task.status is Status.DONE
    failure = {
        "failed": True,
        "index": 3,
        "error": {"type": "ValueError", "message": "item 3 is poison"},
    }
    assert testing.result_of(tasks, task) == [0, 1, 2, failure, 4, 5]
    seen = PartFailure(3, ErrorInfo("ValueError", "item 3 is poison"))
    assert seen == failure and seen.index == 3 and seen.error.type == "ValueError"


def test_large_results_come_back_whole(tasks: LongTasks) -> None:
    task = testing.run_task(tasks, "sizes")
    assert testing.result_of(tasks, task) == [10, 100_000, 20]
    store = store_of(tasks)
    assert all(len(memo) < 20_000 for memo in store.memos.values())


def test_cancelling_the_parent_stops_its_parts_at_their_next_progress(tasks: LongTasks) -> None:
    task = tasks.start("forever")
    testing.drain(tasks, max_deliveries=1)  # the parent starts the map and waits
    tasks.cancel(task.id)
    testing.drain(tasks)
    parts = parts_of(tasks, task)
    assert [p.status for p in parts] == [Status.CANCELLED] * 3
    parent = store_of(tasks).get(task.id)
    assert parent is not None and parent.status is Status.CANCELLED


def test_a_part_running_when_the_parent_is_cancelled_stops(tasks: LongTasks) -> None:
    store = store_of(tasks)
    task = tasks.start("forever")
    testing.drain(tasks, max_deliveries=1)
    seen: list[int] = []
    original = store.update

    def cancel_midway(task_id: str, changes: Any, *expect: Any) -> TaskRecord:
        record = original(task_id, changes, *expect)
        if record.parent and record.progress.step == 5:
            seen.append(5)
            original(task.id, {"status": Status.CANCELLED})
        return record

    store.update = cancel_midway  # type: ignore[method-assign]
    testing.drain(tasks)
    assert seen, "a part reported progress"
    parts = parts_of(tasks, task)
    assert len(parts) == 3 and all(p.status is Status.CANCELLED for p in parts)
    assert all((p.progress.step or 0) <= 6 for p in parts)


def test_the_parent_shows_how_many_parts_are_done(tasks: LongTasks) -> None:
    task = tasks.start("squares", n=4, parallel=1)
    testing.drain(tasks, max_deliveries=3)  # the parent and two parts
    parent = store_of(tasks).get(task.id)
    assert parent is not None and parent.status is Status.STARTED
    assert parent.progress.message == "2 of 4 parts done"
    assert (parent.progress.step, parent.progress.total_steps) == (2, 4)
    assert parent.lease_until is None  # it holds no worker while it waits


def test_more_parts_than_the_cap_is_a_clear_error(tasks: LongTasks) -> None:
    task = testing.run_task(tasks, "too-many")
    assert task.status is Status.FAILED and task.error is not None
    assert f"at most {MAX_PARTS} items" in task.error.message


def test_a_lambda_as_the_part_function_is_refused_with_a_reason() -> None:
    from chalicelib.longtask.fanout import function_ref

    with pytest.raises(ValueError, match="top level of a module"):
        function_ref(lambda item, ctx: item)
    assert json.loads(json.dumps(function_ref(square))) == f"{__name__}:square"


def test_a_task_mapping_a_lambda_fails_on_its_first_attempt(tasks: LongTasks) -> None:
    task = testing.run_task(tasks, "lambdas")
    assert task.status is Status.FAILED and task.error is not None
    assert task.error.type == "NotFoundByName" and task.attempts == 1  # no retry would help


def test_two_steps_of_one_name_are_two_operations(tasks: LongTasks) -> None:
    task = testing.run_task(tasks, "changing")
    assert task.status is Status.DONE, task.error
    assert testing.result_of(tasks, task) == ["first", "again", 1, 4]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"step": "download"}, "operation 1 (ctx.step 'download') was ctx.step 'fetch'"),
        ({"items": [1, 2, 3]}, "operation 3 (ctx.map 'tests.unit.test_fanout:square') was "),
        ({"items": [1, 2, 3]}, "was called with 3 items, 2 in an earlier run of this task"),
        ({"items": [2, 1]}, "was called with other items than in an earlier run"),
    ],
)
def test_a_replay_of_a_changed_program_fails_naming_the_operation(
    tasks: LongTasks, change: dict[str, Any], named: str
) -> None:
    task = tasks.start("changing")
    testing.drain(tasks, max_deliveries=1)  # two steps, then the map starts and waits
    PROGRAM.update(change)  # a deploy changed the function while its parts ran
    testing.drain(tasks)
    final = store_of(tasks).get(task.id)
    assert final is not None and final.status is Status.FAILED
    assert final.error is not None and final.error.type == "NonDeterministic"
    assert named in final.error.message
    assert final.attempts == 1  # no attempt could continue it
