"""The storage interface: what longtask asks of a task store, a queue and a result store,
the vocabulary of conditional writes, and complete in-memory backends.

DynamoDB, SQS and S3 (store.py, queue.py, results.py) are one implementation; the memory
classes below are the other, for tests and for `longtask.testing`. Both keep the same
rules, and tests/contract runs one suite against both to prove it.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .model import APART, Status, TaskRecord

Clock = Callable[[], float]

# A checkpoint larger than this (as JSON) is kept apart from the task record, so that the
# record stays within one DynamoDB write unit (1 KB) and one read unit whatever a task
# saves. Small ones (a counter, a position) stay inline: reading them costs nothing more.
INLINE_CHECKPOINT_BYTES = 256


def kept_apart(checkpoint: Any) -> bool:
    """Whether a checkpoint goes beside the record rather than in it."""
    if checkpoint is None:
        return False
    text = json.dumps(checkpoint, allow_nan=False, separators=(",", ":"))
    return len(text.encode()) > INLINE_CHECKPOINT_BYTES


# -- the write vocabulary -----------------------------------------------------------


class Conflict(Exception):
    """The record was not in an expected state; `current` is what it is (None: missing)."""

    def __init__(self, current: TaskRecord | None) -> None:
        super().__init__(f"task is {current.status.value if current else 'missing'}")
        self.current = current


@dataclass(frozen=True)
class Expect:
    """One state a conditional write expects to find; the backends make it atomic.

    Every given part must hold: the status is one of `statuses`, the attempt counter
    equals `attempts` (or is below `attempts_below`), the lease ran out by
    `lease_expired_by`, the hand-over flag of a checkpointed task is `resume`.
    """

    statuses: frozenset[Status] | None = None
    attempts: int | None = None
    attempts_below: int | None = None
    lease_expired_by: float | None = None
    resume: bool | None = None
    step_below: int | None = None  # progress shows no step yet, or one below this

    def holds_for(self, task: TaskRecord) -> bool:
        if self.statuses is not None and task.status not in self.statuses:
            return False
        if self.attempts is not None and task.attempts != self.attempts:
            return False
        if self.attempts_below is not None and task.attempts >= self.attempts_below:
            return False
        if self.lease_expired_by is not None and task.lease_is_live(self.lease_expired_by):
            return False
        step = task.progress.step
        if self.step_below is not None and step is not None and step >= self.step_below:
            return False
        return self.resume is None or task.resume == self.resume


@dataclass(frozen=True)
class Increment:
    """A change that adds to a counter in place rather than writing a value read earlier."""

    by: int = 1


@dataclass(frozen=True)
class IfMissing:
    """A change that writes its value only where the field has none yet."""

    value: Any


class OverQuota(Exception):
    """A start the owner's quota refuses; `limit` names the setting that was reached."""

    ACTIVE = "max_active_per_owner"
    STARTS = "starts_per_minute"

    def __init__(self, limit: str) -> None:
        super().__init__(f"over the quota {limit}")
        self.limit = limit


class Repeated(Exception):
    """The idempotency key of a start was used before: `task_id` is the task that start
    made, `fingerprint` what it was started with."""

    def __init__(self, task_id: str, fingerprint: str) -> None:
        super().__init__(f"this key already started task {task_id}")
        self.task_id = task_id
        self.fingerprint = fingerprint


@dataclass(frozen=True)
class Admission:
    """What a start must get past, checked in the same atomic write that creates the task.

    The owner may have fewer than `max_active` tasks counted as active and fewer than
    `starts_per_minute` starts in `minute` (epoch minutes); `key` (a hash of owner and
    Idempotency-Key) must not have started a task that is still remembered at `now`.
    """

    owner: str
    max_active: int
    starts_per_minute: int
    now: float
    key: str | None = None
    fingerprint: str = ""  # what the start asked for: kind and parameters, hashed
    remember_until: int = 0  # epoch seconds: how long the key is kept

    @property
    def minute(self) -> int:
        return int(self.now // 60)


class InvalidCursor(ValueError):
    """A `next` cursor that this store did not give out (or not to this owner)."""


@dataclass(frozen=True)
class Page:
    """One page of an owner's tasks, newest first; `next` continues it (None: no more)."""

    tasks: list[TaskRecord]
    next: str | None


# -- the interface ------------------------------------------------------------------


class TaskStore(Protocol):
    """Task records by id; every change is a conditional write.

    A checkpoint that `kept_apart` is stored beside the record: records come back with
    `checkpoint` = APART, and `checkpoint()` reads it (only a worker resuming the task).
    """

    def create(self, task: TaskRecord) -> None:
        """Stores a new record; Conflict if its id exists."""

    def get(self, task_id: str) -> TaskRecord | None: ...

    def update(self, task_id: str, changes: Mapping[str, Any], *expect: Expect) -> TaskRecord:
        """Applies `changes` if the record matches one of `expect` (any record if none is
        given), atomically; returns the new record, or raises Conflict with the current.
        A checkpoint kept apart is written under the same condition."""

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

    def admit(self, task: TaskRecord, admission: Admission) -> None:
        """Creates `task` counted as one of its owner's active tasks and starts, and
        remembers the admission's key, all or nothing. Repeated if the key started a
        task before (checked first), else OverQuota naming the limit reached."""

    def release(self, task_id: str) -> bool:
        """Gives back the active place of a task that has ended. Only the first call
        for a task does (True); later ones, and calls for a task that has not ended or
        was never counted, change nothing (False)."""

    def failed_between(self, since: float, until: float, limit: int) -> list[TaskRecord]:
        """Tasks that failed in [since, until), newest first, at most `limit`."""


class TaskQueue(Protocol):
    """The queue that carries task ids to the workers."""

    def send(self, task_id: str, delay_seconds: int = 0) -> None: ...

    def send_many(self, task_ids: Sequence[str]) -> None:
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


# -- in memory ----------------------------------------------------------------------


def encode_cursor(fields: Mapping[str, str]) -> str:
    """An opaque cursor: URL-safe base64 of a small JSON object of strings."""
    text = json.dumps(dict(fields), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, names: frozenset[str]) -> dict[str, str]:
    """The fields of a cursor that `encode_cursor` made with exactly `names`, all non-empty."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        fields = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error):
        raise InvalidCursor(cursor) from None
    if not isinstance(fields, dict) or set(fields) != names:
        raise InvalidCursor(cursor)
    if not all(isinstance(v, str) and v for v in fields.values()):
        raise InvalidCursor(cursor)
    return fields


_CURSOR_FIELDS = frozenset({"owner", "created_at", "id"})


class MemoryTaskStore:
    """Task records in a dict; `update` is atomic like a DynamoDB conditional write."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskRecord] = {}
        self.memos: dict[str, str] = {}  # key -> JSON, as DynamoDB keeps them
        self.sets: dict[str, set[int]] = {}
        self.checkpoints: dict[str, Any] = {}  # the ones kept apart, by task id
        self.writes = 0
        self._lock = threading.Lock()
        self.active: dict[str, int] = {}  # owner -> tasks counted as active
        self.starts: dict[tuple[str, int], int] = {}  # (owner, minute) -> starts
        self.keys: dict[str, tuple[str, str, int]] = {}  # key -> (task id, fingerprint, until)
        self.counted: dict[str, str] = {}  # task id -> owner whose active count holds it

    def get_many(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        return [self.tasks[i] for i in task_ids if i in self.tasks]

    def memo_get(self, key: str) -> Any:
        text = self.memos.get(key)
        return None if text is None else json.loads(text)

    def memo_get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return {k: json.loads(self.memos[k]) for k in keys if k in self.memos}

    def memo_put(self, key: str, value: Any, expires_at: int | None = None) -> Any:
        with self._lock:
            if key not in self.memos:
                self.memos[key] = json.dumps(value, allow_nan=False, separators=(",", ":"))
                self.writes += 1
            return json.loads(self.memos[key])

    def memo_add(self, key: str, member: int) -> tuple[int, Any]:
        with self._lock:
            members = self.sets.setdefault(key, set())
            members.add(member)
            self.writes += 1
            text = self.memos.get(key)
            return len(members), None if text is None else json.loads(text)

    def create(self, task: TaskRecord) -> None:
        with self._lock:
            if task.id in self.tasks:
                raise Conflict(self.tasks[task.id])
            self.tasks[task.id] = task
            self.writes += 1

    def get(self, task_id: str) -> TaskRecord | None:
        return self.tasks.get(task_id)

    def update(self, task_id: str, changes: Mapping[str, Any], *expect: Expect) -> TaskRecord:
        with self._lock:
            current = self.tasks.get(task_id)
            if current is None or (expect and not any(e.holds_for(current) for e in expect)):
                raise Conflict(current)
            values: dict[str, Any] = {}
            for name, value in changes.items():
                if isinstance(value, Increment):
                    value = getattr(current, name) + value.by
                elif isinstance(value, IfMissing):
                    existing = getattr(current, name)
                    value = value.value if existing is None else existing
                elif name == "checkpoint" and kept_apart(value):
                    self.checkpoints[task_id] = value
                    value = APART
                values[name] = value
            updated = current.evolve(**values)
            self.tasks[task_id] = updated
            self.writes += 1
            return updated

    def checkpoint(self, task_id: str) -> Any:
        return self.checkpoints.get(task_id)

    def admit(self, task: TaskRecord, admission: Admission) -> None:
        a = admission
        with self._lock:
            if a.key is not None:
                known = self.keys.get(a.key)
                if known is not None and known[2] >= a.now:
                    raise Repeated(known[0], known[1])
            if self.active.get(a.owner, 0) >= a.max_active:
                raise OverQuota(OverQuota.ACTIVE)
            if self.starts.get((a.owner, a.minute), 0) >= a.starts_per_minute:
                raise OverQuota(OverQuota.STARTS)
            if task.id in self.tasks:
                raise Conflict(self.tasks[task.id])
            if a.key is not None:
                self.keys[a.key] = (task.id, a.fingerprint, a.remember_until)
            self.active[a.owner] = self.active.get(a.owner, 0) + 1
            self.starts[(a.owner, a.minute)] = self.starts.get((a.owner, a.minute), 0) + 1
            self.counted[task.id] = a.owner
            self.tasks[task.id] = task
            self.writes += 1

    def release(self, task_id: str) -> bool:
        with self._lock:
            task = self.tasks.get(task_id)
            if task is None or not task.is_terminal or task_id not in self.counted:
                return False
            owner = self.counted.pop(task_id)
            self.active[owner] -= 1
            self.writes += 1
            return True

    def failed_between(self, since: float, until: float, limit: int) -> list[TaskRecord]:
        failed = [
            t
            for t in self.tasks.values()
            if t.status is Status.FAILED and since <= (t.finished_at or 0.0) < until
        ]
        failed.sort(key=lambda t: (t.finished_at or 0.0, t.id), reverse=True)
        return failed[:limit]

    def list_by_owner(self, owner: str, limit: int, cursor: str | None = None) -> Page:
        # The same order as the DynamoDB index: created_at, then id, newest first.
        def key(task: TaskRecord) -> tuple[str, str]:
            return (_sortable_time(task.created_at), task.id)

        mine = sorted((t for t in self.tasks.values() if t.owner == owner), key=key, reverse=True)
        if cursor is not None:
            after = decode_cursor(cursor, _CURSOR_FIELDS)
            if after["owner"] != owner:
                raise InvalidCursor(cursor)
            mine = [t for t in mine if key(t) < (after["created_at"], after["id"])]
        page = mine[:limit]
        more = len(mine) > limit
        last = page[-1] if page and more else None
        next_cursor = None
        if last is not None:
            next_cursor = encode_cursor(
                {"owner": owner, "created_at": _sortable_time(last.created_at), "id": last.id}
            )
        return Page(page, next_cursor)


def _sortable_time(ts: float) -> str:
    return f"{ts:020.6f}"


@dataclass(order=True)
class _Message:
    visible_at: float
    number: int
    task_id: str = field(compare=False)
    receives: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Received:
    """A message as a worker gets it: its body's task id and the handle to act on it."""

    task_id: str
    receipt_handle: str
    receives: int


class MemoryQueue:
    """An SQS queue in memory: delays, visibility, receive counts and a dead-letter queue.

    A received message is hidden for `visibility_seconds` (or what `show_again_in` sets)
    until it is deleted; after `max_receives` receives it moves to `dead_letters`.
    """

    def __init__(
        self,
        clock: Clock = time.time,
        visibility_seconds: float = 60.0,
        max_receives: int | None = None,
        dead_letters: MemoryQueue | None = None,
    ) -> None:
        self.clock = clock
        self.visibility_seconds = visibility_seconds
        self.max_receives = max_receives
        self.dead_letters = dead_letters
        self.sent: list[tuple[str, int]] = []  # every send, for tests that count them
        self.visibility: list[tuple[str, float]] = []  # every show_again_in
        self._waiting: list[_Message] = []
        self._in_flight: dict[str, _Message] = {}
        self._numbers = 0
        self._lock = threading.Lock()

    def send_many(self, task_ids: Sequence[str]) -> None:
        for task_id in task_ids:
            self.send(task_id)

    def send(self, task_id: str, delay_seconds: int = 0) -> None:
        with self._lock:
            self.sent.append((task_id, delay_seconds))
            self._numbers += 1
            message = _Message(self.clock() + delay_seconds, self._numbers, task_id)
            heapq.heappush(self._waiting, message)

    def show_again_in(self, receipt_handle: str, seconds: float) -> None:
        with self._lock:
            self.visibility.append((receipt_handle, seconds))
            message = self._in_flight.get(receipt_handle)
            if message is not None:
                message.visible_at = self.clock() + seconds

    def receive(self) -> Received | None:
        """The next visible message, now hidden; None when none is visible."""
        with self._lock:
            self._return_expired()
            now = self.clock()
            while self._waiting and self._waiting[0].visible_at <= now:
                message = heapq.heappop(self._waiting)
                if self.max_receives is not None and message.receives >= self.max_receives:
                    # SQS's redrive: a message received too often moves to the dead letters.
                    if self.dead_letters is not None:
                        self.dead_letters.send(message.task_id)
                    continue
                message.receives += 1
                message.visible_at = now + self.visibility_seconds
                self._numbers += 1
                handle = f"m{message.number}-r{self._numbers}"
                self._in_flight[handle] = message
                return Received(message.task_id, handle, message.receives)
            return None

    def delete(self, receipt_handle: str) -> None:
        with self._lock:
            self._in_flight.pop(receipt_handle, None)

    def next_visible_at(self) -> float | None:
        """When the next message shows (hidden ones included); None for an empty queue."""
        with self._lock:
            times = [m.visible_at for m in self._waiting]
            times += [m.visible_at for m in self._in_flight.values()]
            return min(times) if times else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._in_flight)

    def _return_expired(self) -> None:
        now = self.clock()
        for handle, message in list(self._in_flight.items()):
            if message.visible_at <= now:
                del self._in_flight[handle]
                heapq.heappush(self._waiting, message)


class MemoryResults:
    """Result objects in a dict; links are `memory://` URLs."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str, str | None]] = {}
        self.owners: dict[str, tuple[str, int]] = {}  # key -> (task id, attempt)
        self.puts = 0

    def put(
        self, key: str, body: bytes, content_type: str, filename: str, task_id: str, attempt: int
    ) -> None:
        self.objects[key] = (body, content_type, filename)
        self.owners[key] = (task_id, attempt)
        self.puts += 1

    def url(self, key: str, ttl_seconds: int) -> str:
        return f"memory://{key}?ttl={ttl_seconds}"

    def read(self, key: str, limit: int) -> bytes:
        return self.objects[key][0][:limit]


def memory_backends(clock: Clock = time.time, max_receives: int | None = None) -> Backends:
    """A store, a queue with its dead-letter queue, and a result store, all in memory."""
    dead_letters = MemoryQueue(clock)
    queue = MemoryQueue(clock, max_receives=max_receives, dead_letters=dead_letters)
    return Backends(MemoryTaskStore(), queue, MemoryResults())
