"""The runner's decisions on in-memory stores: claims, takeovers, hand-overs, finality."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.longtask.backends import (
    Conflict,
    Expect,
    MemoryQueue,
    MemoryResults,
    MemoryTaskStore,
)
from chalicelib.longtask.model import Status, TaskRecord
from chalicelib.longtask.runner import Outcome, Runner
from chalicelib.longtask.settings import Settings
from chalicelib.longtask.tasks import TaskContext, TaskRegistry

TASK_ID = "T" * 22


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_runner(
    clock: Clock, function: Callable[[dict[str, Any], TaskContext], Any], **settings: Any
) -> Runner:
    registry = TaskRegistry()
    registry.add("job", function)
    store = MemoryTaskStore()
    store.create(TaskRecord(id=TASK_ID, kind="job", params={}, created_at=clock.now))
    config = Settings(
        table="t", queue="q", dead_letter_queue="d", bucket="b", lease_seconds=30, **settings
    )
    return Runner(registry, store, MemoryQueue(), MemoryResults(), config, clock=clock)


def record(runner: Runner) -> TaskRecord:
    task = runner.store.get(TASK_ID)
    assert task is not None
    return task


def test_a_task_runs_once_and_its_result_is_stored(clock: Clock) -> None:
    runner = make_runner(clock, lambda params, ctx: {"ok": True})
    assert runner.run(TASK_ID, "r1") is Outcome.DONE
    task = record(runner)
    assert task.status is Status.DONE and task.attempts == 1
    assert task.result is not None and task.result.key.startswith("results/")
    assert TASK_ID not in task.result.key  # a leaked link names no task
    assert isinstance(runner.results, MemoryResults)
    assert runner.results.owners[task.result.key] == (TASK_ID, 1)
    assert task.result.filename == f"job-{TASK_ID}.json"
    assert runner.run(TASK_ID, "r2") is Outcome.DROPPED  # a duplicate after done
    assert isinstance(runner.results, MemoryResults) and runner.results.puts == 1


def test_the_claim_hides_the_message_for_one_lease_and_progress_keeps_it_hidden(
    clock: Clock,
) -> None:
    def job(params: dict[str, Any], ctx: TaskContext) -> str:
        for step in range(1, 41):
            clock.advance(1)
            ctx.log_progress("working", step=step, total_steps=40)
        return "done"

    runner = make_runner(clock, job)
    assert runner.run(TASK_ID, "r1") is Outcome.DONE
    assert isinstance(runner.queue, MemoryQueue)
    hides = runner.queue.visibility
    assert hides[0] == ("r1", 30)  # before the claim
    # 40 s of work with a 30 s lease: hidden again before half the lease is left
    assert len(hides) == 1 + 40 // 15
    assert all(seconds == 30 for _, seconds in hides)


def test_a_slow_write_schedule_still_renews_a_short_lease_in_time(clock: Clock) -> None:
    leases: list[tuple[float, float]] = []  # (now, lease_until) as another worker would see it

    def job(params: dict[str, Any], ctx: TaskContext) -> str:
        for step in range(1, 61):
            clock.advance(1)
            ctx.log_progress("working", step=step, total_steps=60)
            task = runner.store.get(TASK_ID)
            assert task is not None and task.lease_until is not None
            leases.append((clock.now, task.lease_until))
        return "done"

    # A 4 s lease runs out sooner than the 5 s that the schedule waits between writes
    # once the task is 25 s old: it is renewed when less than a third is left.
    runner = make_runner(clock, job)
    runner.settings = Settings(
        table="t", queue="q", dead_letter_queue="d", bucket="b", lease_seconds=4
    )
    assert runner.run(TASK_ID, "r1") is Outcome.DONE
    assert all(lease_until > now for now, lease_until in leases)
    assert isinstance(runner.queue, MemoryQueue)
    assert len(runner.queue.visibility) >= 60 // 4


def test_a_new_scale_of_the_bar_is_written_at_once(clock: Clock) -> None:
    shown: list[tuple[int | None, int | None]] = []

    def job(params: dict[str, Any], ctx: TaskContext) -> str:
        clock.advance(30)  # old enough that the schedule waits 5 s between writes
        ctx.log_progress("counting files")
        clock.advance(1)
        ctx.log_progress("copying", step=1, total_steps=10)
        progress = record(runner).progress
        shown.append((progress.step, progress.total_steps))
        clock.advance(1)
        ctx.log_progress("copying", step=2, total_steps=10)  # same scale: on schedule
        progress = record(runner).progress
        shown.append((progress.step, progress.total_steps))
        return "done"

    runner = make_runner(clock, job)
    assert runner.run(TASK_ID, "r1") is Outcome.DONE
    assert shown == [(1, 10), (1, 10)]


def test_a_late_worker_cannot_overwrite_the_task_its_successor_finished(clock: Clock) -> None:
    steps: list[str] = []

    def job(params: dict[str, Any], ctx: TaskContext) -> str:
        steps.append(f"attempt {ctx.attempt}")
        if ctx.attempt == 1:
            clock.advance(31)  # silent past its lease: looks dead to everyone else
            assert runner.run(TASK_ID, "r2") is Outcome.DONE  # the takeover
        return f"from attempt {ctx.attempt}"

    runner = make_runner(clock, job)
    assert runner.run(TASK_ID, "r1") is Outcome.DROPPED
    task = record(runner)
    assert steps == ["attempt 1", "attempt 2"]
    assert task.status is Status.DONE and task.attempts == 2
    assert task.result is not None and isinstance(runner.results, MemoryResults)
    assert runner.results.owners[task.result.key] == (TASK_ID, 2)


def test_a_duplicate_while_the_lease_is_live_comes_back_after_it(clock: Clock) -> None:
    runner = make_runner(clock, lambda params, ctx: "x")
    runner.store.update(
        TASK_ID, {"status": Status.STARTED, "attempts": 1, "lease_until": clock.now + 20}
    )
    assert runner.run(TASK_ID, "dup") is Outcome.RETRY
    assert isinstance(runner.queue, MemoryQueue)
    assert runner.queue.visibility[-1] == ("dup", 21.0)  # back once the lease has run out
    assert record(runner).attempts == 1


def test_a_dead_worker_on_the_last_attempt_fails_the_task(clock: Clock) -> None:
    runner = make_runner(clock, lambda params, ctx: "x", max_attempts=2)
    runner.store.update(
        TASK_ID, {"status": Status.STARTED, "attempts": 2, "lease_until": clock.now - 1}
    )
    assert runner.run(TASK_ID, "r") is Outcome.DROPPED
    task = record(runner)
    assert task.status is Status.FAILED
    assert task.error is not None and task.error.type == "WorkerLost"


def test_errors_retry_with_doubling_backoff_then_fail(clock: Clock) -> None:
    def job(params: dict[str, Any], ctx: TaskContext) -> str:
        raise ValueError(f"bad input on attempt {ctx.attempt}")

    runner = make_runner(clock, job, max_attempts=3, retry_seconds=5)
    assert [runner.run(TASK_ID, f"r{i}") for i in range(3)] == [
        Outcome.RETRY,
        Outcome.RETRY,
        Outcome.FAILED,
    ]
    assert isinstance(runner.queue, MemoryQueue)
    backoffs = [s for handle, s in runner.queue.visibility if s != 30]
    assert backoffs == [5, 10]
    task = record(runner)
    assert task.status is Status.FAILED and task.attempts == 3
    assert task.error is not None and task.error.message == "bad input on attempt 3"
    assert runner.run(TASK_ID, "late") is Outcome.DROPPED


def test_out_of_time_a_checkpointed_task_hands_over_and_continues(clock: Clock) -> None:
    seen: list[Any] = []

    def job(params: dict[str, Any], ctx: TaskContext) -> int:
        start = ctx.resume_state or 0
        seen.append(start)
        for i in range(start, 10):
            clock.advance(1)
            ctx.checkpoint(i + 1)
            ctx.log_progress("counting", step=i + 1, total_steps=10)
        return 10

    runner = make_runner(clock, job)
    # a 5 s invocation keeps 2 s to hand over: it stops after 3 steps
    assert runner.run(TASK_ID, "r1", remaining_seconds=lambda: 5.0) is Outcome.HANDED_OFF
    task = record(runner)
    assert task.status is Status.STARTED and task.resume and task.checkpoint == 3
    assert task.progress.step == 3
    assert isinstance(runner.queue, MemoryQueue) and runner.queue.sent == [(TASK_ID, 0)]
    assert runner.run(TASK_ID, "r2", remaining_seconds=lambda: 100.0) is Outcome.DONE
    assert seen == [0, 3]
    assert record(runner).attempts == 1  # a continuation is not a new attempt


def test_out_of_time_without_a_checkpoint_is_a_failed_attempt(clock: Clock) -> None:
    def job(params: dict[str, Any], ctx: TaskContext) -> int:
        for i in range(10):
            clock.advance(1)
            ctx.log_progress("counting", step=i + 1, total_steps=10)
        return 10

    runner = make_runner(clock, job)
    assert runner.run(TASK_ID, "r1", remaining_seconds=lambda: 5.0) is Outcome.RETRY
    task = record(runner)
    assert task.status is Status.ERROR
    assert task.error is not None and task.error.type == "TimeoutError"


def test_a_cancelled_task_stops_at_its_next_progress_write(clock: Clock) -> None:
    steps: list[int] = []

    def job(params: dict[str, Any], ctx: TaskContext) -> str:
        for step in range(1, 100):
            clock.advance(0.5)
            steps.append(step)
            if step == 4:
                runner.store.update(
                    TASK_ID,
                    {"status": Status.CANCELLED},
                    Expect(statuses=frozenset({Status.STARTED})),
                )
            ctx.log_progress("working", step=step, total_steps=100)
        return "never"

    runner = make_runner(clock, job)
    assert runner.run(TASK_ID, "r1") is Outcome.CANCELLED
    assert len(steps) <= 4 + 2  # one progress interval later at most
    assert record(runner).status is Status.CANCELLED
    assert isinstance(runner.results, MemoryResults) and runner.results.puts == 0


def test_a_task_swallowing_exceptions_still_cannot_swallow_its_cancel(clock: Clock) -> None:
    def job(params: dict[str, Any], ctx: TaskContext) -> str:
        runner.store.update(TASK_ID, {"status": Status.CANCELLED})
        clock.advance(2)
        try:
            ctx.log_progress("working", step=1, total_steps=2)
        except Exception:  # the point of the test: even this does not catch a cancel
            return "swallowed"
        return "not cancelled"

    runner = make_runner(clock, job)
    assert runner.run(TASK_ID, "r1") is Outcome.CANCELLED


def test_nothing_moves_a_finished_task(clock: Clock) -> None:
    runner = make_runner(clock, lambda params, ctx: "x")
    runner.run(TASK_ID, "r1")
    with pytest.raises(Conflict):
        runner.store.update(
            TASK_ID,
            {"status": Status.CANCELLED},
            Expect(statuses=frozenset({Status.READY, Status.STARTED})),
        )
    assert runner.dead_letter(TASK_ID) is Outcome.DROPPED
    assert record(runner).status is Status.DONE


def test_the_dead_letter_handler_waits_for_a_live_lease_then_fails_the_last_attempt(
    clock: Clock,
) -> None:
    runner = make_runner(clock, lambda params, ctx: "x", max_attempts=3)
    runner.store.update(
        TASK_ID, {"status": Status.STARTED, "attempts": 3, "lease_until": clock.now + 10}
    )
    assert runner.dead_letter(TASK_ID) is Outcome.RETRY
    clock.advance(11)
    assert runner.dead_letter(TASK_ID) is Outcome.FAILED
    task = record(runner)
    assert task.status is Status.FAILED and task.error is not None
    assert task.error.type == "WorkerLost"


def test_a_dead_letter_of_a_task_with_attempts_left_is_queued_again_a_bounded_number_of_times(
    clock: Clock,
) -> None:
    runner = make_runner(clock, lambda params, ctx: "x", max_attempts=3)
    runner.store.update(TASK_ID, {"status": Status.ERROR, "attempts": 1})
    outcomes = [runner.dead_letter(TASK_ID) for _ in range(4)]
    assert outcomes == [Outcome.REQUEUED] * 3 + [Outcome.FAILED]
    assert isinstance(runner.queue, MemoryQueue)
    assert runner.queue.sent == [(TASK_ID, 0)] * 3
    assert record(runner).status is Status.FAILED
