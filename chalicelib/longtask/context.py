"""The `ctx` a running task gets: throttled progress, checkpoints, cancellation, time."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from . import fanout
from .attempt import Attempt
from .encoding import compact_json
from .errors import Conflict, HandOff, LostClaim, OutOfTime, OverTimeLimit, TaskCancelled
from .fanout import Operations
from .model import Progress, Status
from .progress import ProgressThrottle, update_rate

# A large checkpoint lives in an item beside the task record, which DynamoDB caps at 400 KB.
MAX_CHECKPOINT_BYTES = 64 * 1024


class RunContext:
    """The `ctx` a task function gets: progress, checkpoints, cancellation."""

    def __init__(
        self,
        attempt: Attempt,
        operations: Operations,
        progress_interval: float,
        deadline: float | None,
        time_limit_at: float | None = None,
        stop_when: Callable[[], bool] | None = None,
    ) -> None:
        self._attempt = attempt
        self._operations = operations
        # Asked at each progress write: whether the task must stop as if cancelled (a
        # part of a map, whose task has ended).
        self._stop_when = stop_when
        self._time_limit_at = time_limit_at
        self._clock = attempt.clock
        self._task = attempt.task
        self._interval = progress_interval
        self._deadline = deadline
        now = self._clock()
        self._throttle = ProgressThrottle(progress_interval)
        self._throttle.wrote(now)  # the claim itself just wrote
        self._written_total = self._task.progress.total_steps
        self._checked_cancel_at = now
        self.attempt = attempt.number
        self.progress = self._task.progress
        self.resume_state: Any = self._task.checkpoint
        self._checkpoint: Any = self._task.checkpoint
        self._checkpoint_dirty = False
        self._written_checkpoint = self._json(self._task.checkpoint)

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
        if self._write_due(now, now - started):
            self.flush(now)

    def _write_due(self, now: float, age: float) -> bool:
        """Whether this report goes to the store now.

        On the age-based schedule; at once (but never more often than the least interval)
        when the bar's scale changed, since a reader would otherwise show a wrong percent;
        and always when the lease needs renewing, whatever the schedule: a slower schedule
        must never let the hidden message show again while the task still runs.
        """
        if self._attempt.lease_running_out(now):
            return True
        if self._throttle.due(now, age):
            return True
        return self._throttle.allowed(now) and self.progress.total_steps != self._written_total

    def checkpoint(self, state: Any) -> None:
        """Keeps `state` (JSON) to resume from; it is written with the next progress."""
        text = self._json(state)
        if len(text.encode()) > MAX_CHECKPOINT_BYTES:
            raise ValueError(f"a checkpoint must be at most {MAX_CHECKPOINT_BYTES} bytes of JSON")
        self._checkpoint = json.loads(text)
        # A large checkpoint costs a write unit per KB: write it only when it changed.
        self._checkpoint_dirty = text != self._written_checkpoint

    @staticmethod
    def _json(state: Any) -> str:
        return compact_json(state)

    def unwritten_checkpoint(self) -> dict[str, Any]:
        """The checkpoint as a change to write, if it changed since it was last written."""
        return {"checkpoint": self._checkpoint} if self._checkpoint_dirty else {}

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        """Runs `fn()` once per task and keeps its result (JSON); when the task runs
        again (a hand-over, a takeover, after a map) it returns the kept result."""
        return fanout.step(self._operations, name, fn)

    def map(
        self,
        items: Iterable[Any],
        fn: Callable[[Any, Any], Any],
        *,
        max_parallel: int | None = None,
        tolerate: int = 0,
    ) -> list[Any]:
        """Runs `fn(item, ctx)` on every item as a part of its own, in parallel workers,
        and returns the results in item order. The task waits without a worker; it
        runs again from the top when the last part has ended, and this call then
        returns the kept results. A part that fails for good fails the task, unless
        at most `tolerate` parts failed: each of those has a PartFailure for a result."""
        if self._task.part is not None:
            raise RuntimeError("ctx.map is for task functions, not for the parts of a map")
        return fanout.run_map(self._operations, items, fn, max_parallel, tolerate)

    @property
    def cancelled(self) -> bool:
        now = self._clock()
        if now - self._checked_cancel_at >= self._interval:
            self._checked_cancel_at = now
            current = self._attempt.store.get(self._task.id)
            return current is None or current.status is Status.CANCELLED
        return False

    def flush(self, now: float) -> None:
        """Writes the progress (and renews the lease) if the task is still ours."""
        if self._stop_when is not None and self._stop_when():
            raise TaskCancelled()
        changes: dict[str, Any] = {"progress": self.progress, **self.unwritten_checkpoint()}
        try:
            self._attempt.renew_lease(changes, now)
        except Conflict as exc:
            current = exc.current
            if current is None or current.status is Status.CANCELLED:
                raise TaskCancelled() from None
            raise LostClaim() from None
        if self._checkpoint_dirty:
            self._written_checkpoint = self._json(self._checkpoint)
            self._checkpoint_dirty = False
        self._throttle.wrote(now)
        self._written_total = self.progress.total_steps

    def _check_time(self, now: float) -> None:
        if self._time_limit_at is not None and now >= self._time_limit_at:
            raise OverTimeLimit()
        if self._deadline is not None and now >= self._deadline:
            raise HandOff() if self._checkpoint is not None else OutOfTime()
