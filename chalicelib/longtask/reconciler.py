"""The reconciler: repairs the records that went stale, so that every task ends.

A task moves on by messages: its start queues it, a lapsed lease shows its message again,
a retry's message comes back after the backoff, a hand-over queues the continuation, the
last part of a map queues its task. A message can be lost (the process that should send
it dies first, or the send fails after the write that needed it), and then nothing would
move the task again. Every record that has not ended is in the due index, by the time it
must have moved on (`due_at`, moved by each write that moves the task on). What is
overdue is stuck, whatever the reason, and the one repair is to queue it again: the
claim decides from the record what the delivery does (start, retry, take over, continue,
gather a map whose parts all ended, or give up when the attempts are used up), and a
delivery too many is harmless. A record that ended but still holds its owner's place
gives it back. Each repair is one conditional write, so two reconcilers never repair
one record twice, and each run looks at a bounded number of records.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field

from .backends import Backends, Clock, Expect
from .errors import Conflict
from .model import Status, TaskRecord
from .settings import Settings

log = logging.getLogger(__name__)

# Records one run looks at: a minute's run stays short however much went stale.
BATCH = 100

# The kinds of repair, as metric names.
REQUEUED = "Requeued"  # a task that had not ended, queued again
RELEASED = "Released"  # an ended task's place in its owner's quota, given back
CLEARED = "Cleared"  # an ended task taken out of the due index


@dataclass
class Repairs:
    """What one run repaired, by kind, and what it looked at."""

    looked_at: int = 0
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def metrics(self, table: str, now: float) -> str:
        """One log line in CloudWatch's embedded metric format: Lambda's log stream
        turns it into metrics without a call (and without a permission) of its own."""
        names = ["Repairs", REQUEUED, RELEASED, CLEARED]
        document = {
            "_aws": {
                "Timestamp": int(now * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": "longtask",
                        "Dimensions": [["Table"]],
                        "Metrics": [{"Name": name, "Unit": "Count"} for name in names],
                    }
                ],
            },
            "Table": table,
            "Repairs": self.total,
            "LookedAt": self.looked_at,
            **{name: self.counts[name] for name in names[1:]},
        }
        return json.dumps(document, separators=(",", ":"))


class Reconciler:
    """Looks at what is overdue and moves it on."""

    def __init__(self, backends: Backends, settings: Settings, clock: Clock) -> None:
        self.store = backends.store
        self.queue = backends.queue
        self.settings = settings
        self.clock = clock

    def run(self, limit: int = BATCH) -> Repairs:
        now = self.clock()
        repairs = Repairs()
        for task in self.store.due(now, limit):
            repairs.looked_at += 1
            repaired = self._repair(task, now)
            if repaired is not None:
                repairs.counts[repaired] += 1
        # Every run, repairs or none: a metric with a data point each minute keeps the
        # alarm on it evaluating, rather than short of data on a quiet stage.
        log.info(repairs.metrics(self.settings.table or "memory", now))
        return repairs

    def _repair(self, task: TaskRecord, now: float) -> str | None:
        if task.is_terminal:
            return self._ended(task)
        if task.status is Status.STARTED and task.lease_is_live(now):
            # Running under a live lease whose due time lagged: look again after it.
            assert task.lease_until is not None
            self._move_due(task, self.settings.due(task.lease_until))
            return None
        # Nothing will move it on unless it is queued: queue it, and look again later.
        if not self._move_due(task, self.settings.due(now)):
            return None  # it moved meanwhile: someone else moves it on
        self.queue.send(task.id, owner=task.owner)
        log.warning(
            "task %s: %s and overdue by %.0f s, queued again",
            task.id,
            task.status.value,
            now - (task.due_at or now),
        )
        return REQUEUED

    def _ended(self, task: TaskRecord) -> str | None:
        if task.counted is not None:
            # Ended by a write that did not give its place back (an older version's).
            if self.store.release(task.id):
                log.warning("task %s: ended still counted; its owner's place is back", task.id)
                return RELEASED
            return None
        return CLEARED if self._move_due(task, None) else None

    def _move_due(self, task: TaskRecord, due_at: float | None) -> bool:
        """Moves the record's due time if it is still as read (one conditional write)."""
        try:
            self.store.update(
                task.id,
                {"due_at": due_at},
                Expect.still(task, due_at=task.due_at),
            )
        except Conflict:
            return False
        return True
