"""One attempt at a task: its lease, its hidden message, and writes that land only while
the attempt still holds the task."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .backends import Clock, Expect, TaskQueue, TaskStore
from .backends.writes import ending
from .errors import Conflict
from .model import Status, TaskRecord

log = logging.getLogger(__name__)


def running(attempt: int, target: Status = Status.STARTED) -> Expect:
    """What every write of a running attempt requires: the task still holds this
    attempt's lease (not cancelled, not taken over), and may move to `target`."""
    return Expect.into(target, attempts=attempt, leased=True)


class Attempt:
    """A claimed task as one worker runs it.

    The claim hid the task's message for one lease. While the attempt reports
    progress it keeps the message hidden and its lease live; if the worker dies, the
    message shows again about when the lease runs out and the next delivery takes
    the task over: recovery takes one lease, not the queue's visibility timeout.
    """

    def __init__(
        self,
        task: TaskRecord,
        store: TaskStore,
        queue: TaskQueue,
        receipt_handle: str,
        lease_seconds: float,
        clock: Clock,
        visible_at: float,
        stale_seconds: float,
    ) -> None:
        self.task = task
        self.number = task.attempts
        self.store = store
        self.queue = queue
        self.receipt_handle = receipt_handle
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._visible_at = visible_at  # when the message shows again if nobody hides it
        self._stale_seconds = stale_seconds

    def write(self, changes: Mapping[str, Any]) -> TaskRecord:
        """Writes `changes` if this attempt still holds the task, else raises Conflict.
        A write that ends the task gives its owner's place back at the same time."""
        target = Status(changes.get("status", Status.STARTED))
        if target.is_terminal:
            changes = ending(self.task, changes)
        return self.store.update(self.task.id, changes, running(self.number, target))

    def write_if_ours(self, changes: Mapping[str, Any]) -> bool:
        """Writes `changes` if this attempt still holds the task; False if it lost it.

        The condition is the whole point: a worker that was cancelled or taken over
        (its lease ran out while it was silent) can never move the task on.
        """
        try:
            self.write(changes)
        except Conflict:
            log.warning(
                "task %s: attempt %d was cancelled or taken over", self.task.id, self.number
            )
            return False
        return True

    def renew_lease(self, changes: Mapping[str, Any], now: float) -> TaskRecord:
        """Writes `changes` with a renewed lease; hides the message again first when
        less than half a lease of hiding is left. Raises Conflict if no longer ours."""
        if self._visible_at - now < self.lease_seconds / 2:
            self.hide_message(now)
        # Never past the time the message shows again: a delivery after a crash must
        # find the lease expired, or it would only count a receive.
        renewed = {
            **changes,
            "lease_until": self._visible_at,
            "updated_at": now,
            # Moves only with the lease: the due index is not written at every progress.
            "due_at": self._visible_at + self._stale_seconds,
        }
        return self.write(renewed)

    def lease_running_out(self, now: float) -> bool:
        """Whether less than a third of a lease of hiding is left: the next progress must
        be written, whatever the write schedule, to renew it. (Any write renews it once
        half is gone, so on a schedule of writes within a sixth of a lease this never
        adds one.)"""
        return self._visible_at - now < self.lease_seconds / 3

    def hide_message(self, now: float) -> None:
        """Keeps this attempt's message hidden for one more lease."""
        self.queue.show_again_in(self.receipt_handle, self.lease_seconds)
        self._visible_at = now + self.lease_seconds

    def show_message_in(self, seconds: float) -> None:
        """Lets the message come back in `seconds` (the backoff before the next attempt)."""
        self.queue.show_again_in(self.receipt_handle, seconds)
