"""One delivery of a task message: claim, run, store the result, finish, retry or give up."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .attempt import Attempt
from .backends import Backends, Expect, IfMissing, Increment, ResultStore, TaskQueue, TaskStore
from .context import RunContext
from .errors import (
    Conflict,
    HandOff,
    LostClaim,
    OutOfTime,
    OverTimeLimit,
    TaskCancelled,
    WaitForParts,
)
from .fanout import Operations, Part, count_ended, waiting_progress
from .model import APART, ErrorInfo, Progress, ResultInfo, Status, TaskRecord
from .settings import Settings
from .tasks import EncodedResult, TaskRegistry, download_name, encode_result

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE_CHARS = 1000


class Outcome(StrEnum):
    WAITING = "waiting"  # waits for the parts of a map; the last part queues it again
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HANDED_OFF = "handed_off"  # checkpointed, continues in the next invocation
    REQUEUED = "requeued"  # a dead letter of a task with attempts left, queued again
    RETRY = "retry"  # the message must come back (after the visibility we set)
    DROPPED = "dropped"  # nothing to do: finished, gone, or someone else runs it

    @property
    def keeps_message(self) -> bool:
        return self is Outcome.RETRY


_ENDS_THE_TASK = frozenset({Outcome.DONE, Outcome.FAILED, Outcome.CANCELLED})


def _failed(error: ErrorInfo, now: float) -> dict[str, Any]:
    """The changes that end a task as failed."""
    return {
        "status": Status.FAILED,
        "error": error,
        "finished_at": now,
        "updated_at": now,
        "lease_until": None,
    }


@dataclass
class Runner:
    """Takes one task id from the queue to a final or retryable state."""

    registry: TaskRegistry
    store: TaskStore
    queue: TaskQueue
    results: ResultStore
    settings: Settings
    clock: Callable[[], float] = time.time
    # Called with the id of an owner's task that has ended, so that its place in the
    # owner's quota is given back (LongTasks wires the service's `release`).
    release: Callable[[str], None] | None = None

    @property
    def backends(self) -> Backends:
        return Backends(self.store, self.queue, self.results)

    def run(
        self,
        task_id: str,
        receipt_handle: str,
        remaining_seconds: Callable[[], float] | None = None,
    ) -> Outcome:
        now = self.clock()
        invocation = remaining_seconds() if remaining_seconds else None
        lease = self.settings.lease_for(invocation)
        # Hidden for one lease before the claim: a worker that dies at any point after
        # it is seen again about when its lease runs out, never 6 x its timeout later.
        self.queue.show_again_in(receipt_handle, lease)
        task = self._claim(task_id, now, lease)
        if isinstance(task, Outcome):
            if task is Outcome.RETRY:
                self._come_back(task_id, receipt_handle, now)
            return task
        if task.checkpoint is APART:
            # Only the worker that resumes a task reads a large checkpoint.
            task = task.evolve(checkpoint=self.store.checkpoint(task.id))
        attempt = Attempt(
            task, self.store, self.queue, receipt_handle, lease, self.clock, visible_at=now + lease
        )
        outcome = self._run_attempt(attempt, now, invocation)
        if outcome in _ENDS_THE_TASK:
            self._ended(task)
        return outcome

    def _run_attempt(self, attempt: Attempt, now: float, invocation: float | None) -> Outcome:
        task = attempt.task
        definition = self.registry.get(task.kind)
        if definition is None:
            error = ErrorInfo("UnknownTask", f"no task kind {task.kind!r}")
            return self._attempt_failed(attempt, error, final=True)
        deadline = None
        if invocation is not None:
            # Keep enough of the invocation to save a checkpoint and hand over.
            margin = min(max(2.0, 0.1 * invocation), 60.0)
            deadline = now + invocation - margin
        time_limit_at = None
        if definition.max_seconds is not None:
            time_limit_at = (task.started_at or now) + definition.max_seconds
        part = None if task.part is None else Part(task, self.backends)
        if part is not None and part.parent_ended():
            return self._end(attempt, Status.CANCELLED)
        ctx = RunContext(
            attempt,
            Operations(task, self.backends, self.clock),
            self.settings.progress_interval,
            deadline,
            time_limit_at,
            stop_when=None if part is None else part.parent_ended,
        )
        try:
            if part is None:
                encoded = encode_result(definition.function(dict(task.params), ctx))
            else:
                part.run(ctx)
                encoded = None
        except TaskCancelled:
            log.info("task %s cancelled during attempt %d", task.id, task.attempts)
            # A part stops because its task ended, and says so in its own record.
            return Outcome.CANCELLED if part is None else self._end(attempt, Status.CANCELLED)
        except LostClaim:
            log.warning("task %s: attempt %d lost its claim", task.id, task.attempts)
            return Outcome.DROPPED
        except HandOff:
            return self._suspend(attempt, ctx, ctx.progress, queue_now=True)
        except WaitForParts as waiting:
            # The last part to end queues the task again; so does this write, if they all
            # ended while the task was looking.
            progress = waiting_progress(waiting, ctx.progress, self.clock())
            outcome = self._suspend(attempt, ctx, progress, waiting.done >= waiting.total)
            return Outcome.WAITING if outcome is Outcome.HANDED_OFF else outcome
        except OverTimeLimit:
            # Final: the limit counts from the first start, so another attempt could
            # only fail the same way.
            limit = ErrorInfo("TimeLimit", f"ran longer than {definition.max_seconds:g} s")
            return self._attempt_failed(attempt, limit, ctx.progress, final=True)
        except OutOfTime:
            error = ErrorInfo(
                "TimeoutError",
                "did not finish within the worker's time limit; save progress with "
                "ctx.checkpoint() so that the next invocation continues from there",
            )
            return self._attempt_failed(attempt, error, ctx.progress)
        except Exception as exc:
            log.exception("task %s: attempt %d failed", task.id, task.attempts)
            error = ErrorInfo(type(exc).__name__, str(exc)[:MAX_ERROR_MESSAGE_CHARS])
            final = bool(getattr(exc, "final", False))
            return self._attempt_failed(attempt, error, ctx.progress, final=final)
        return self._finish(attempt, ctx, encoded)

    def _claim(self, task_id: str, now: float, lease: float) -> TaskRecord | Outcome:
        """The task, now ours to run; or what to do with the message instead.

        Assume every message comes twice: the claim is one conditional write,
        so of two workers holding the same id exactly one gets the task.
        """
        fresh = {
            "status": Status.STARTED,
            "attempts": Increment(1),
            "lease_until": now + lease,
            "started_at": IfMissing(now),
            "updated_at": now,
        }
        limit = self.settings.max_attempts
        try:
            # Waiting (never claimed, or after a failed attempt), or started by a worker
            # that died (crash or Lambda timeout) and let its lease run out.
            return self.store.update(
                task_id,
                fresh,
                Expect.into(
                    Status.STARTED, attempts_below=limit, lease_expired_by=now, resume=False
                ),
            )
        except Conflict as exc:
            current = exc.current
        if current is None or current.is_terminal:
            if current is not None:
                # It may have ended without saying so (a crash in between): saying it
                # again is harmless.
                self._ended(current)
            return Outcome.DROPPED
        if current.status is Status.STARTED and current.lease_is_live(now):
            return Outcome.RETRY  # a duplicate delivery while another worker runs it
        if current.status is Status.STARTED and current.resume:
            try:
                return self.store.update(
                    task_id,
                    {"lease_until": now + lease, "updated_at": now, "resume": False},
                    Expect.into(Status.STARTED, attempts=current.attempts, resume=True),
                )
            except Conflict:
                return Outcome.DROPPED  # another delivery took the continuation
        if current.attempts >= limit:
            lost = ErrorInfo(
                "WorkerLost",
                f"the worker stopped (crash or time limit) during attempt {current.attempts}",
            )
            self._give_up(current, current.error or lost, now)
            return Outcome.DROPPED
        return Outcome.RETRY  # raced with another writer; look again shortly

    def _come_back(self, task_id: str, receipt_handle: str, now: float) -> None:
        current = self.store.get(task_id)
        wait = 1.0
        if current is not None and current.lease_until:
            wait = max(current.lease_until - now, 0.0) + 1.0
        self.queue.show_again_in(receipt_handle, wait)

    def _finish(self, attempt: Attempt, ctx: RunContext, encoded: EncodedResult | None) -> Outcome:
        """Records the task done; `encoded` is None for a part, whose result was kept
        for its parent already."""
        # The result first: done is recorded only once it can be read.
        result = None if encoded is None else self._put_result(attempt.task, encoded)
        now = self.clock()
        last = ctx.progress
        done: dict[str, Any] = {
            "status": Status.DONE,
            "progress": Progress(
                last.message, last.total_steps or last.step, last.total_steps, now, last.rate
            ),
            "finished_at": now,
            "updated_at": now,
            "lease_until": None,
            "checkpoint": None,
            "error": None,
        }
        if result is not None:
            done["result"] = result
        return Outcome.DONE if attempt.write_if_ours(done) else Outcome.DROPPED

    def _put_result(self, task: TaskRecord, encoded: EncodedResult) -> ResultInfo:
        # One object per attempt: a late worker can never overwrite the result that the
        # record points to, because its own final write fails. The key is random, not
        # the task id: a leaked (expired) presigned URL names no task to ask about.
        key = f"results/{secrets.token_urlsafe(24)}"
        filename = download_name(encoded, f"{task.kind}-{task.id}")
        self.results.put(key, encoded.body, encoded.content_type, filename, task.id, task.attempts)
        return ResultInfo(key, encoded.content_type, filename, len(encoded.body))

    def _suspend(
        self, attempt: Attempt, ctx: RunContext, progress: Progress, queue_now: bool
    ) -> Outcome:
        """Ends this invocation with the task still running: its checkpoint and progress
        written, no worker and no lease held, and `resume` set so that the next delivery
        continues it. `queue_now` sends that delivery; else something else will (the
        last part of a map)."""
        suspended = {
            **ctx.unwritten_checkpoint(),
            "progress": progress,
            "resume": True,
            "lease_until": None,
            "updated_at": self.clock(),
        }
        if not attempt.write_if_ours(suspended):
            return Outcome.DROPPED
        if queue_now:
            # If this send fails the handler raises, the message comes back, and the
            # claim finds `resume` set: the continuation happens either way.
            self.queue.send(attempt.task.id)
        return Outcome.HANDED_OFF

    def _attempt_failed(
        self,
        attempt: Attempt,
        error: ErrorInfo,
        progress: Progress | None = None,
        final: bool = False,
    ) -> Outcome:
        """Ends the attempt as failed: the task fails for good when `final` or when its
        attempts are used up, else waits in ERROR for its retry after a backoff."""
        final = final or attempt.number >= self.settings.max_attempts
        now = self.clock()
        if final:
            changes = _failed(error, now)
        else:
            changes = {
                "status": Status.ERROR,
                "error": error,
                "lease_until": None,
                "updated_at": now,
            }
        if progress is not None:
            changes["progress"] = progress
        if not attempt.write_if_ours(changes):
            return Outcome.DROPPED
        if final:
            return Outcome.FAILED
        attempt.show_message_in(self.settings.retry_delay(attempt.number))
        return Outcome.RETRY

    def _end(self, attempt: Attempt, status: Status) -> Outcome:
        """Ends the attempt's task in `status` (without a result), if still ours."""
        now = self.clock()
        ended = {"status": status, "finished_at": now, "updated_at": now, "lease_until": None}
        return Outcome(status.value) if attempt.write_if_ours(ended) else Outcome.DROPPED

    def _give_up(self, task: TaskRecord, error: ErrorInfo, now: float) -> bool:
        """Fails a task no worker holds (none started it, or its lease ran out)."""
        try:
            self.store.update(
                task.id,
                _failed(error, now),
                # Whichever it is in, as long as no live lease holds it.
                Expect.into(Status.FAILED, attempts=task.attempts, lease_expired_by=now),
            )
        except Conflict:
            return False
        self._ended(task.evolve(status=Status.FAILED))
        return True

    def dead_letter(self, task_id: str) -> Outcome:
        """A message SQS gave up on: queue the task again if it has attempts left,
        else fail it, unless it still runs or has ended.

        SQS counts receives, not attempts: deliveries that found the task busy,
        or a duplicate copy, can use up a message while the task still has
        attempts left. Failing it then would break the promise of
        LONGTASK_MAX_ATTEMPTS; queueing it again is harmless, since claims are
        conditional. `requeues` bounds it, so no message circles for ever.
        """
        now = self.clock()
        task = self.store.get(task_id)
        if task is None or task.is_terminal:
            if task is not None:
                self._ended(task)
            return Outcome.DROPPED
        if task.status is Status.STARTED and task.lease_is_live(now):
            return Outcome.RETRY  # still running under a live lease: look again later
        limit = self.settings.max_attempts
        if task.attempts < limit and task.requeues < limit:
            try:
                self.store.update(
                    task.id,
                    {"requeues": Increment(1), "updated_at": now},
                    Expect.still(task),
                )
            except Conflict:
                return Outcome.RETRY  # it moved meanwhile: look again
            self.queue.send(task.id)
            return Outcome.REQUEUED
        lost = ErrorInfo(
            "WorkerLost",
            f"gave up after {task.attempts} attempt(s): the worker stopped (crash or time limit)",
        )
        error = task.error if task.status is Status.ERROR and task.error else lost
        return Outcome.FAILED if self._give_up(task, error, now) else Outcome.RETRY

    def _ended(self, task: TaskRecord) -> None:
        """Says that `task` has ended to whoever keeps count: a part to its map, an
        owner's task to the owner's quota. Both are idempotent."""
        if task.part is not None:
            count_ended(task.part, self.backends, self.clock)
        elif task.owner is not None and self.release is not None:
            self.release(task.id)
