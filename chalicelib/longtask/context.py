"""The `ctx` a running task gets: throttled progress, checkpoints, cancellation, time."""

from __future__ import annotations

import json
from typing import Any

from .attempt import Attempt
from .backends import Conflict
from .model import Progress, Status
from .progress import ProgressThrottle, update_rate
from .tasks import TaskCancelled

# A checkpoint lives in the task record, whose item DynamoDB caps at 400 KB.
MAX_CHECKPOINT_BYTES = 64 * 1024


# Raised inside the task's call stack to unwind it; BaseException so that a
# task's `except Exception` cannot swallow them.
class OutOfTime(BaseException):
    """The invocation is nearly over and the task has no checkpoint to continue from."""


class HandOff(BaseException):
    """The invocation is nearly over: continue from the checkpoint in the next one."""


class OverTimeLimit(BaseException):
    """The task has run longer than its kind's max_seconds."""


class LostClaim(BaseException):
    """Another worker took the task over (this one was silent past its lease)."""


class RunContext:
    """The `ctx` a task function gets: progress, checkpoints, cancellation."""

    def __init__(
        self,
        attempt: Attempt,
        progress_interval: float,
        deadline: float | None,
        time_limit_at: float | None = None,
    ) -> None:
        self._attempt = attempt
        self._time_limit_at = time_limit_at
        self._clock = attempt.clock
        self._task = attempt.task
        self._interval = progress_interval
        self._deadline = deadline
        now = self._clock()
        self._throttle = ProgressThrottle(progress_interval)
        self._throttle.wrote(now)  # the claim itself just wrote
        self._checked_cancel_at = now
        self.attempt = attempt.number
        self.progress = self._task.progress
        self.resume_state: Any = self._task.checkpoint
        self._checkpoint: Any = self._task.checkpoint
        self._checkpoint_dirty = False

    def log_progress(
        self, message: str, step: int | None = None, total_steps: int | None = None
    ) -> None:
        now = self._clock()
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
        now = self._clock()
        if now - self._checked_cancel_at >= self._interval:
            self._checked_cancel_at = now
            current = self._attempt.store.get(self._task.id)
            return current is None or current.status is Status.CANCELLED
        return False

    @property
    def saved_state(self) -> Any:
        return self._checkpoint

    def flush(self, now: float) -> None:
        """Writes the progress (and renews the lease) if the task is still ours."""
        changes: dict[str, Any] = {"progress": self.progress}
        if self._checkpoint_dirty:
            changes["checkpoint"] = self._checkpoint
        try:
            self._attempt.renew_lease(changes, now)
        except Conflict as exc:
            current = exc.current
            if current is None or current.status is Status.CANCELLED:
                raise TaskCancelled() from None
            raise LostClaim() from None
        self._checkpoint_dirty = False
        self._throttle.wrote(now)

    def _check_time(self, now: float) -> None:
        if self._time_limit_at is not None and now >= self._time_limit_at:
            raise OverTimeLimit()
        if self._deadline is not None and now >= self._deadline:
            raise HandOff() if self._checkpoint is not None else OutOfTime()
