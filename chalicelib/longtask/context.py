"""The `ctx` a running task gets: throttled progress, checkpoints, cancellation, time."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .model import Conflict, Expect, Progress, Status, TaskRecord
from .progress import ProgressThrottle, update_rate
from .tasks import TaskCancelled

if TYPE_CHECKING:
    from .runner import Runner

# A checkpoint lives in the task record, whose item DynamoDB caps at 400 KB.
MAX_CHECKPOINT_BYTES = 64 * 1024


# Raised inside the task's call stack to unwind it; BaseException so that a
# task's `except Exception` cannot swallow them.
class OutOfTime(BaseException):
    """The invocation is nearly over and the task has no checkpoint to continue from."""


class HandOff(BaseException):
    """The invocation is nearly over: continue from the checkpoint in the next one."""


class LostClaim(BaseException):
    """Another worker took the task over (this one was silent past its lease)."""


def running(attempt: int) -> Expect:
    """The state every write of a running attempt requires: still ours, not cancelled."""
    return Expect(statuses=frozenset({Status.STARTED}), attempts=attempt)


class RunContext:
    """The `ctx` a task function gets: progress, checkpoints, cancellation."""

    def __init__(
        self,
        runner: Runner,
        task: TaskRecord,
        lease_seconds: float,
        deadline: float | None,
        receipt_handle: str,
        visible_at: float,
    ) -> None:
        self._runner = runner
        self._task = task
        self._lease_seconds = lease_seconds
        self._deadline = deadline
        self._receipt_handle = receipt_handle
        self._visible_at = visible_at  # when the message shows again if nobody hides it
        self._throttle = ProgressThrottle(runner.settings.progress_interval)
        self._throttle.wrote(runner.clock())  # the claim itself just wrote
        self._checked_cancel_at = runner.clock()
        self.attempt = task.attempts
        self.progress = task.progress
        self.resume_state: Any = task.checkpoint
        self._checkpoint: Any = task.checkpoint
        self._checkpoint_dirty = False

    def log_progress(
        self, message: str, step: int | None = None, total_steps: int | None = None
    ) -> None:
        now = self._runner.clock()
        started = self._task.started_at or now
        previous = self.progress
        rate = update_rate(previous.rate, previous.step, previous.at, step, now, started)
        if total_steps != previous.total_steps:
            rate = None if previous.total_steps is not None else rate
        self.progress = Progress(
            message=str(message)[:500],
            step=None if step is None else int(step),
            total_steps=None if total_steps is None else int(total_steps),
            at=now if step != previous.step or previous.at is None else previous.at,
            rate=rate,
        )
        self._check_time(now)
        if self._throttle.due(now):
            self.flush(now)

    def checkpoint(self, state: Any) -> None:
        """Keeps `state` (JSON) to resume from; it is written with the next progress."""
        text = json.dumps(state, allow_nan=False, separators=(",", ":"))
        if len(text.encode()) > MAX_CHECKPOINT_BYTES:
            raise ValueError(f"a checkpoint must be at most {MAX_CHECKPOINT_BYTES} bytes of JSON")
        self._checkpoint = json.loads(text)
        self._checkpoint_dirty = True

    @property
    def cancelled(self) -> bool:
        now = self._runner.clock()
        if now - self._checked_cancel_at >= self._runner.settings.progress_interval:
            self._checked_cancel_at = now
            current = self._runner.store.get(self._task.id)
            return current is None or current.status is Status.CANCELLED
        return False

    @property
    def saved_state(self) -> Any:
        return self._checkpoint

    def flush(self, now: float) -> None:
        """Writes the progress (and renews the lease) if the task is still ours."""
        if self._visible_at - now < self._lease_seconds / 2:
            self.hide_message(now)
        changes: dict[str, Any] = {
            "progress": self.progress,
            # Never past the time the message shows again: a delivery after a crash
            # must find the lease expired, or it would only count a receive.
            "lease_until": self._visible_at,
            "updated_at": now,
        }
        if self._checkpoint_dirty:
            changes["checkpoint"] = self._checkpoint
        try:
            self._runner.store.update(self._task.id, changes, running(self.attempt))
        except Conflict as exc:
            current = exc.current
            if current is None or current.status is Status.CANCELLED:
                raise TaskCancelled() from None
            raise LostClaim() from None
        self._checkpoint_dirty = False
        self._throttle.wrote(now)

    def hide_message(self, now: float) -> None:
        """Keeps this attempt's message hidden as long as its lease.

        If the worker dies, the message shows again about when the lease runs
        out, and the next delivery takes the task over: recovery takes one lease,
        not the queue's visibility timeout (six times the worker's timeout).
        """
        self._runner.queue.show_again_in(self._receipt_handle, self._lease_seconds)
        self._visible_at = now + self._lease_seconds

    def _check_time(self, now: float) -> None:
        if self._deadline is not None and now >= self._deadline:
            raise HandOff() if self._checkpoint is not None else OutOfTime()
