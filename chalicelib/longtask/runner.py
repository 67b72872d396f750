"""One delivery of a task message: claim the task (or take it over, or continue it), run the
attempt, and say that it ended; or, for a dead letter, queue it again or give up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .attempt import Attempt
from .backends import Backends, Expect, IfMissing, Increment, ResultStore, TaskQueue, TaskStore
from .backends.writes import ending
from .errors import Conflict
from .execution import Execution, Outcome, bookkept, failure
from .fanout import count_ended
from .model import APART, ErrorInfo, Status, TaskRecord
from .settings import Settings
from .tasks import TaskRegistry

log = logging.getLogger(__name__)


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

    def __post_init__(self) -> None:
        self.backends = Backends(self.store, self.queue, self.results)
        self._bookkept = bookkept(self.backends)
        self._execution = Execution(self.registry, self._bookkept, self.settings, self.clock)

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
            task,
            self._bookkept.store,
            self._bookkept.queue,
            receipt_handle,
            lease,
            self.clock,
            visible_at=now + lease,
            stale_seconds=self.settings.stale_seconds,
        )
        outcome = self._execution.run(attempt, now, invocation)
        if outcome.ended_the_task:
            self._part_ended(task)  # its owner's place went back with the write that ended it
        return outcome

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
            "due_at": self.settings.due(now + lease),
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
                    {
                        "lease_until": now + lease,
                        "updated_at": now,
                        "resume": False,
                        "due_at": self.settings.due(now + lease),
                    },
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

    def _give_up(self, task: TaskRecord, error: ErrorInfo, now: float) -> bool:
        """Fails a task no worker holds (none started it, or its lease ran out)."""
        try:
            self.store.update(
                task.id,
                ending(task, failure(error, now)),
                # Whichever it is in, as long as no live lease holds it.
                Expect.into(Status.FAILED, attempts=task.attempts, lease_expired_by=now),
            )
        except Conflict:
            return False
        self._part_ended(task)
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
                    {"requeues": Increment(1), "updated_at": now, "due_at": self.settings.due(now)},
                    Expect.still(task),
                )
            except Conflict:
                return Outcome.RETRY  # it moved meanwhile: look again
            self.queue.send(task.id, owner=task.owner)
            return Outcome.REQUEUED
        lost = ErrorInfo(
            "WorkerLost",
            f"gave up after {task.attempts} attempt(s): the worker stopped (crash or time limit)",
        )
        error = task.error if task.status is Status.ERROR and task.error else lost
        return Outcome.FAILED if self._give_up(task, error, now) else Outcome.RETRY

    def _part_ended(self, task: TaskRecord) -> None:
        """Counts an ended part in its map (idempotent: a part may be told twice)."""
        if task.part is not None:
            count_ended(task.part, self.backends, self.clock)

    def _ended(self, task: TaskRecord) -> None:
        """A record found ended: a part is counted in its map again (a crash may have
        come between its end and its report); a task that still holds its owner's place
        (ended by a write that did not give it back) gives it back. Both idempotent."""
        self._part_ended(task)
        if task.counted is not None and self.release is not None:
            self.release(task.id)
