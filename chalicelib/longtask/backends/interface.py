"""What longtask asks of a task store, a queue and a result store.

Two implementations keep these rules: the memory twin (backends/memory.py, for tests and
`longtask.testing`) and DynamoDB, SQS and S3 (longtask/aws/). tests/contract runs one
suite of every method against both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..model import TaskRecord
from .writes import Admission, Expect, Page

Clock = Callable[[], float]


class TaskStore(Protocol):
    """Task records by id; every change is a conditional write.

    A checkpoint that `kept_apart` is stored beside the record: records come back with
    `checkpoint` = APART, and `checkpoint()` reads it (only a worker resuming the task).

    Every write names itself with a token (one is drawn when none is given) that the
    record keeps as its `writer`. The same write made again with the same token, as a
    retry after a lost answer is, and finding the record as it left it, succeeds
    without applying twice: a write never takes its own success for someone else's.
    """

    def create(self, task: TaskRecord, token: str | None = None) -> None:
        """Stores a new record; Conflict if its id exists."""

    def get(self, task_id: str) -> TaskRecord | None: ...

    def update(
        self, task_id: str, changes: Mapping[str, Any], *expect: Expect, token: str | None = None
    ) -> TaskRecord:
        """Applies `changes` if the record matches one of `expect` (any record if none is
        given), atomically; returns the new record, or raises Conflict with the current.
        A checkpoint kept apart is written under the same condition; a Release gives
        the owner's place back in the same atomic write."""

    def checkpoint(self, task_id: str) -> Any:
        """The checkpoint kept apart from the record (None if there is none)."""

    def list_by_owner(self, owner: str, limit: int, cursor: str | None = None) -> Page:
        """The owner's tasks, newest first; InvalidCursor for a cursor not theirs."""

    def get_many(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        """The records of `task_ids` that exist, in that order."""

    # Memos: small JSON values beside the task records, under keys that are never task
    # ids (a task's step results, the state of its maps, the results of their parts).

    def memo_get(self, key: str) -> Any:
        """The value stored under `key`, or None."""

    def memo_get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The values stored under those of `keys` that have one."""

    def memo_put(self, key: str, value: Any, expires_at: int | None = None) -> Any:
        """Stores `value` unless `key` has one already; returns what is stored (the
        first writer wins, so two racing runs of a step agree on its result)."""

    def memo_add(self, key: str, member: int) -> tuple[int, Any]:
        """Adds `member` to the set kept beside the memo of `key` (adding twice is
        harmless) and returns the set's size and the memo's value, atomically."""

    def admit(self, task: TaskRecord, admission: Admission, token: str | None = None) -> None:
        """Creates `task` counted as one of its owner's active tasks and starts (its
        `counted` names the owner), and remembers the admission's key, all or nothing.
        Repeated if the key started a task before (checked first), else OverQuota
        naming the limit reached."""

    def release(self, task_id: str, token: str | None = None) -> bool:
        """Gives back the active place of a task that has ended. Only the first call
        for a task does (True, also when made again with its token); later ones, and
        calls for a task that has not ended or was never counted, change nothing
        (False)."""

    def failed_between(self, since: float, until: float, limit: int) -> list[TaskRecord]:
        """Tasks that failed in [since, until), newest first, at most `limit`."""

    def due(self, by: float, limit: int) -> list[TaskRecord]:
        """Records whose `due_at` is at most `by`, the longest overdue first, at most
        `limit` (from an index of due records only, never a scan of the table)."""


class TaskQueue(Protocol):
    """The queue that carries task ids to the workers.

    A message names the owner whose work it is (None: nobody's in particular), so that
    a queue that shares its workers fairly among owners can."""

    def send(self, task_id: str, delay_seconds: int = 0, owner: str | None = None) -> None: ...

    def send_many(self, task_ids: Sequence[str], owner: str | None = None) -> None:
        """Sends one message per id (in batches where the queue has them)."""

    def show_again_in(self, receipt_handle: str, seconds: float) -> None:
        """Makes a received message visible again in `seconds` (a backoff, or a lease)."""


class ResultStore(Protocol):
    """Results, written once per attempt, read through short-lived links."""

    def put(
        self, key: str, body: bytes, content_type: str, filename: str, task_id: str, attempt: int
    ) -> None:
        """Stores a result; `task_id` and `attempt` are kept beside it for operators (not
        in its key, and not in what a download returns)."""

    def url(self, key: str, ttl_seconds: int) -> str: ...

    def read(self, key: str, limit: int) -> bytes:
        """At most the first `limit` bytes of a result (for a preview on its page)."""


@dataclass
class Backends:
    store: TaskStore
    queue: TaskQueue
    results: ResultStore
