"""One claimed attempt of a task, run to its outcome: done with its result, failed,
retried after a backoff, suspended (handed over, or waiting for its parts), cancelled."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .attempt import Attempt
from .backends import Backends, Clock
from .context import RunContext
from .errors import (
    AwsUnavailable,
    Bookkeeping,
    HandOff,
    LostClaim,
    OutOfTime,
    OverTimeLimit,
    TaskCancelled,
    WaitForParts,
    aws_trouble,
)
from .fanout import Operations, Part, waiting_progress
from .model import ErrorInfo, Progress, ResultInfo, Status, TaskRecord
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

    @property
    def ended_the_task(self) -> bool:
        return self in (Outcome.DONE, Outcome.FAILED, Outcome.CANCELLED)


def failure(error: ErrorInfo, now: float) -> dict[str, Any]:
    """The changes that end a task as failed."""
    return {
        "status": Status.FAILED,
        "error": error,
        "finished_at": now,
        "updated_at": now,
        "lease_until": None,
    }


class _Bookkept:
    """A backend whose calls, made for a running attempt, raise Bookkeeping on AWS
    trouble: the attempt then stops as AWS's fault, never as the task's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return target(*args, **kwargs)
            except Exception as exc:
                if aws_trouble(exc):
                    raise Bookkeeping(exc) from exc
                raise

        return call


def bookkept(backends: Backends) -> Backends:
    """`backends` for the calls of a running attempt (see _Bookkept)."""
    return Backends(
        _Bookkept(backends.store), _Bookkept(backends.queue), _Bookkept(backends.results)
    )


@dataclass
class Execution:
    """Runs claimed attempts of tasks to their outcomes."""

    registry: TaskRegistry
    backends: Backends  # as bookkept() makes them
    settings: Settings
    clock: Clock

    def run(self, attempt: Attempt, now: float, invocation: float | None) -> Outcome:
        try:
            return self._run(attempt, now, invocation)
        except Bookkeeping as trouble:
            return self._pause(attempt, trouble)

    def _pause(self, attempt: Attempt, trouble: Bookkeeping) -> Outcome:
        """Stops an attempt that AWS trouble interrupted without charging the task: it
        is left as a hand-over is (no lease, `resume` set), and its message comes back
        shortly to continue it. If AWS refuses this write too, the Bookkeeping goes
        up to the handler, which keeps the message; the lease then lapses and the task
        is taken over."""
        log.warning(
            "task %s: attempt %d interrupted by AWS trouble (%s); it continues shortly",
            attempt.task.id,
            attempt.number,
            trouble.cause,
        )
        if not attempt.write_if_ours(self._released()):
            return Outcome.DROPPED
        attempt.show_message_in(AwsUnavailable.RETRY_AFTER)
        return Outcome.RETRY

    def _released(self) -> dict[str, Any]:
        """The changes that leave a task running with no worker holding it: the next
        delivery continues it (`resume`), and the reconciler sees to one if none comes."""
        now = self.clock()
        return {
            "resume": True,
            "lease_until": None,
            "updated_at": now,
            "due_at": self.settings.due(now),
        }

    def _run(self, attempt: Attempt, now: float, invocation: float | None) -> Outcome:
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
        self.backends.results.put(
            key, encoded.body, encoded.content_type, filename, task.id, task.attempts
        )
        return ResultInfo(key, encoded.content_type, filename, len(encoded.body))

    def _suspend(
        self, attempt: Attempt, ctx: RunContext, progress: Progress, queue_now: bool
    ) -> Outcome:
        """Ends this invocation with the task still running: its checkpoint and progress
        written, no worker and no lease held, and `resume` set so that the next delivery
        continues it. `queue_now` sends that delivery; else something else will (the
        last part of a map)."""
        suspended = {**ctx.unwritten_checkpoint(), "progress": progress, **self._released()}
        if not attempt.write_if_ours(suspended):
            return Outcome.DROPPED
        if queue_now:
            # If this send fails the handler raises, the message comes back, and the
            # claim finds `resume` set: the continuation happens either way.
            self.backends.queue.send(attempt.task.id, owner=attempt.task.owner)
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
        delay = self.settings.retry_delay(attempt.number)
        if final:
            changes = failure(error, now)
        else:
            changes = {
                "status": Status.ERROR,
                "error": error,
                "lease_until": None,
                "updated_at": now,
                "due_at": self.settings.due(now + delay),
            }
        if progress is not None:
            changes["progress"] = progress
        if not attempt.write_if_ours(changes):
            return Outcome.DROPPED
        if final:
            return Outcome.FAILED
        attempt.show_message_in(delay)
        return Outcome.RETRY

    def _end(self, attempt: Attempt, status: Status) -> Outcome:
        """Ends the attempt's task in `status` (without a result), if still ours."""
        now = self.clock()
        ended = {"status": status, "finished_at": now, "updated_at": now, "lease_until": None}
        return Outcome(status.value) if attempt.write_if_ours(ended) else Outcome.DROPPED
