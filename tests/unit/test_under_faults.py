"""Every task ends, whatever AWS does: seeded runs on the memory backends in which a
sixth of all calls, at every call site, are throttled, fail, reset or lose their answer
after applying, and polite clients retry with their idempotency keys. After each run
every task has ended as it should, with the right result; each key made one task;
every owner's places are back; and no task was charged for AWS's trouble beyond its
attempts."""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from typing import Any

import pytest
from chalice import Chalice

from chalicelib.longtask import Integer, LongTasks, TaskContext, testing
from chalicelib.longtask.backends import MemoryTaskStore
from chalicelib.longtask.errors import LongtaskError, aws_trouble
from chalicelib.longtask.faults import FaultPlan, without_faults
from chalicelib.longtask.model import Status, TaskRecord
from chalicelib.longtask.settings import Settings

SEEDS = range(24)
SETTINGS = Settings(
    progress_interval=0,
    retry_seconds=1,
    stale_seconds=30,
    lease_seconds=20,
    max_attempts=3,
    max_active_per_owner=50,
    starts_per_minute=1000,
)
OWNERS = ("1" * 64, "2" * 64)


def count(params: dict[str, Any], ctx: TaskContext) -> int:
    for step in range(params["steps"]):
        ctx.log_progress("counting", step=step, total_steps=params["steps"])
    return params["steps"]


def resumable(params: dict[str, Any], ctx: TaskContext) -> int:
    """Checkpoints each step: a hand-over or a pause continues from there."""
    state = ctx.resume_state or {"done": 0}
    for step in range(state["done"], 6):
        ctx.checkpoint({"done": step + 1})
        ctx.log_progress("step", step=step + 1, total_steps=6)
    return 6


def double(item: int, ctx: TaskContext) -> int:
    return 2 * item


def doubles(params: dict[str, Any], ctx: TaskContext) -> list[int]:
    return ctx.map(range(params["start"], params["start"] + 4), double, max_parallel=2)


def failing(params: dict[str, Any], ctx: TaskContext) -> None:
    raise ValueError("always")


def make(seed: int) -> tuple[LongTasks, MemoryTaskStore, FaultPlan]:
    tasks = LongTasks(Chalice(app_name=f"faults-{seed}"), settings=SETTINGS)
    tasks.task("count", params={"steps": Integer(min=1, max=20)})(count)
    tasks.task("resumable")(resumable)
    tasks.task("doubles", params={"start": Integer(min=0, max=10)})(doubles)
    tasks.task("failing")(failing)
    plan = FaultPlan(rate=1 / 6, lost=0.5, seed=seed)
    plain = testing.in_memory(tasks, SETTINGS, testing.VirtualClock(), faults=plan)
    assert isinstance(plain.store, MemoryTaskStore)
    return tasks, plain.store, plan


def politely(call: Any) -> Any:
    """What a polite client does: a 503 (AWS trouble) is tried again, as it is."""
    for _ in range(20):
        try:
            return call()
        except Exception as exc:
            if not aws_trouble(exc):
                raise
    raise AssertionError("AWS trouble twenty times in a row")


STARTS = [
    ("count", {"steps": ["5"]}, 5),
    ("count", {"steps": ["12"]}, 12),
    ("resumable", {}, 6),
    ("doubles", {"start": ["1"]}, [2, 4, 6, 8]),
    ("failing", {}, None),
]


def run(seed: int) -> tuple[LongTasks, MemoryTaskStore, FaultPlan, dict[str, Any]]:
    tasks, store, plan = make(seed)
    expected: dict[str, Any] = {}
    for (kind, given, result), owner in zip(STARTS * 2, itertools.cycle(OWNERS), strict=False):
        key = f"{kind}-{owner[0]}-{len(expected)}"
        started = politely(lambda: tasks.service.start_request(kind, given, owner, key))  # noqa: B023
        expected[started.task.id] = result
        # The client's answer may be lost too: asking again with the key finds the task.
        again = politely(lambda: tasks.service.start_request(kind, given, owner, key))  # noqa: B023
        assert again.task.id == started.task.id
    clock = tasks.clock
    assert isinstance(clock, testing.VirtualClock)
    for minute in range(12):  # the schedule's minutes
        testing.drain(tasks, invocation_seconds=30.0)
        if minute > 1 and all(store.get(i).is_terminal for i in expected):  # type: ignore[union-attr]
            break
        clock.advance(60)
        try:
            tasks.reconcile()
        except Exception as exc:  # a failed run: the next minute's runs again
            assert aws_trouble(exc), exc
    return tasks, store, plan, expected


@pytest.mark.parametrize("seed", SEEDS)
def test_every_task_ends_as_it_should_under_faults(seed: int) -> None:
    tasks, store, plan, expected = run(seed)
    for task_id, result in expected.items():
        task = store.get(task_id)
        assert task is not None
        if result is None:
            assert task.status is Status.FAILED, task
            assert task.error is not None and task.error.type == "ValueError"
            assert task.attempts == SETTINGS.max_attempts  # no more, no fewer
        else:
            assert task.status is Status.DONE, task
            assert testing.result_of(tasks, task) == result
            assert task.attempts <= SETTINGS.max_attempts
        assert task.counted is None and task.due_at is None
    owned = Counter(t.owner for t in store.tasks.values() if t.parent is None)
    assert owned == Counter({OWNERS[0]: 5, OWNERS[1]: 5})  # one task per key
    for owner in OWNERS:
        assert store.active_count(owner) == 0  # every place given back
    assert plan.by_kind()["lost"] > 0


def test_the_faults_reach_every_call_site() -> None:
    """Across the seeds, every operation the app makes met faults of each kind."""
    met: Counter[tuple[str, str]] = Counter()
    for seed in SEEDS[:8]:
        met.update(run(seed)[2].injected)
    ops = {op for _, op in met}
    assert {
        "store.admit",
        "store.get",
        "store.update",
        "store.memo_put",
        "store.memo_add",
        "store.memo_get_many",
        "store.create",
        "store.due",
        "queue.send",
        "queue.send_many",
        "queue.show_again_in",
        "results.put",
    } <= ops, sorted(ops)
    assert {kind for kind, _ in met} == {"throttled", "server_error", "reset", "lost"}


def test_a_cancelled_task_under_faults_stays_cancelled_and_gives_its_place_back() -> None:
    for seed in SEEDS[:8]:
        tasks, store, _ = make(seed)
        started = politely(
            lambda: tasks.service.start_request("count", {"steps": ["20"]}, OWNERS[0], "k")  # noqa: B023
        )
        task: TaskRecord = started.task
        with contextlib.suppress(LongtaskError):  # it ended before the cancel
            politely(lambda: tasks.service.cancel("count", task.id, OWNERS[0]))  # noqa: B023
        for _ in range(6):
            testing.drain(tasks)
            tasks.clock.advance(60)  # type: ignore[attr-defined]
            try:
                tasks.reconcile()
            except Exception as exc:
                assert aws_trouble(exc)
        final = store.get(task.id)
        assert final is not None and final.status in (Status.CANCELLED, Status.DONE)
        assert store.active_count(OWNERS[0]) == 0 and final.due_at is None


@pytest.mark.parametrize("seed", SEEDS[:8])
def test_the_dead_letter_path_under_faults_requeues_or_fails_as_it_should(seed: int) -> None:
    """What SQS gave up on: a task with attempts left runs to its end; a task whose
    worker died on its last attempt is failed; an ended one stays as it ended."""
    tasks, store, plan = make(seed)
    started = [
        politely(lambda: tasks.service.start_request("count", {"steps": ["3"]}, OWNERS[0], key))  # noqa: B023
        for key in ("left", "used-up", "ended")
    ]
    left, used_up, ended = (s.task for s in started)
    queue = without_faults(tasks.backends.queue)
    while queue.receive() is not None:  # every message lost to the dead letters
        pass
    now = tasks.clock()
    store.tasks[used_up.id] = store.tasks[used_up.id].evolve(
        status=Status.STARTED, attempts=SETTINGS.max_attempts, lease_until=now - 60
    )
    # Ended by a write that did not give its place back.
    store.tasks[ended.id] = store.tasks[ended.id].evolve(status=Status.CANCELLED)
    assert queue.dead_letters is not None
    for task in (left, used_up, ended):
        queue.dead_letters.send(task.id)
    for _ in range(6):
        testing.drain(tasks, invocation_seconds=30.0)
        tasks.clock.advance(60)  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            tasks.reconcile()
    final = {t.id: store.get(t.id) for t in (left, used_up, ended)}
    assert final[left.id].status is Status.DONE  # type: ignore[union-attr]
    failed = final[used_up.id]
    assert failed is not None and failed.status is Status.FAILED
    assert failed.error is not None and failed.error.type == "WorkerLost"
    assert final[ended.id].status is Status.CANCELLED  # type: ignore[union-attr]
    assert store.active_count(OWNERS[0]) == 0  # every place back
    assert plan.injected.total() > 0
