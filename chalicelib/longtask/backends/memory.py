"""The memory twin of the AWS backends: a task store, an SQS-like queue and a result
store in dicts, keeping the same rules (tests/contract proves it), for tests and for
`longtask.testing`."""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..encoding import compact_json
from ..errors import Conflict, InvalidCursor, OverQuota, Repeated
from ..model import APART, Status, TaskRecord
from . import keys
from .interface import Backends, Clock
from .writes import (
    ACTIVE,
    CURSOR_FIELDS,
    Admission,
    Expect,
    Page,
    Release,
    applied,
    decode_cursor,
    encode_cursor,
    kept_apart,
    known_fields,
    new_token,
)


class MemoryTaskStore:
    """Task records in a dict; `update` is atomic like a DynamoDB conditional write.

    The quota counts and remembered keys are items under the ids of `keys`, as in the
    DynamoDB table, and follow the rules that `Admission` states for both.
    """

    def __init__(self) -> None:
        self.tasks: dict[str, TaskRecord] = {}
        self.memos: dict[str, str] = {}  # key -> JSON, as DynamoDB keeps them
        self.sets: dict[str, set[int]] = {}
        self.checkpoints: dict[str, Any] = {}  # the ones kept apart, by task id
        self.items: dict[str, dict[str, Any]] = {}  # quota counts and remembered keys
        self._lock = threading.Lock()

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
                self.memos[key] = compact_json(value)
            return json.loads(self.memos[key])

    def memo_add(self, key: str, member: int) -> tuple[int, Any]:
        with self._lock:
            members = self.sets.setdefault(key, set())
            members.add(member)
            text = self.memos.get(key)
            return len(members), None if text is None else json.loads(text)

    def create(self, task: TaskRecord, token: str | None = None) -> None:
        with self._lock:
            current = self.tasks.get(task.id)
            if current is not None:
                if token is not None and current.writer == token:
                    return  # this very create, repeated
                raise Conflict(current)
            self.tasks[task.id] = task.evolve(writer=token or new_token())

    def get(self, task_id: str) -> TaskRecord | None:
        return self.tasks.get(task_id)

    def update(
        self,
        task_id: str,
        changes: Mapping[str, Any],
        *expect: Expect,
        token: str | None = None,
    ) -> TaskRecord:
        known_fields(changes)
        token = token or new_token()
        with self._lock:
            current = self.tasks.get(task_id)
            if current is not None and current.writer == token:
                return current  # this very write, repeated after its answer was lost
            if current is None or (expect and not any(e.holds_for(current) for e in expect)):
                raise Conflict(current)
            release = changes.get("counted")
            if isinstance(release, Release):
                self._give_back(release.owner)
            checkpoint = changes.get("checkpoint")
            if kept_apart(checkpoint):
                self.checkpoints[task_id] = checkpoint
                changes = {**changes, "checkpoint": APART}
            updated = applied(current, changes, token)
            self.tasks[task_id] = updated
            return updated

    def _give_back(self, owner: str) -> None:
        counter = self.items.get(keys.owner_item_id(owner))
        if counter is not None:
            counter[ACTIVE] -= 1

    def checkpoint(self, task_id: str) -> Any:
        return self.checkpoints.get(task_id)

    def admit(self, task: TaskRecord, admission: Admission, token: str | None = None) -> None:
        a = admission
        with self._lock:
            current = self.tasks.get(task.id)
            if current is not None and token is not None and current.writer == token:
                return  # this very admission, repeated
            key_id = a.key_item_id
            if key_id is not None:
                known = self.items.get(key_id)
                if not a.key_is_free(known["expires_at"] if known else None):
                    assert known is not None
                    raise Repeated(known["task_id"], known["fingerprint"])
            counts = a.counts()
            for count in counts:
                if not count.allows(self.items.get(count.item_id, {}).get(count.counter)):
                    raise OverQuota(count.limit)
            if task.id in self.tasks:
                raise Conflict(self.tasks[task.id])
            if key_id is not None:
                self.items[key_id] = {
                    "task_id": task.id,
                    "fingerprint": a.fingerprint,
                    "expires_at": a.remember_until,
                }
            for count in counts:
                item = self.items.setdefault(count.item_id, {})
                item[count.counter] = item.get(count.counter, 0) + 1
                item["expires_at"] = count.expires_at
            self.tasks[task.id] = task.evolve(counted=a.owner, writer=token or new_token())

    def release(self, task_id: str, token: str | None = None) -> bool:
        token = token or new_token()
        with self._lock:
            task = self.tasks.get(task_id)
            if task is not None and task.counted is None and task.writer == token:
                return True  # this very release, repeated after its answer was lost
            if task is None or not task.is_terminal or task.counted is None:
                return False
            self._give_back(task.counted)
            self.tasks[task_id] = task.evolve(counted=None, due_at=None, writer=token)
            return True

    def active_count(self, owner: str) -> int:
        """How many of the owner's tasks hold a place in their quota (for tests)."""
        return int(self.items.get(keys.owner_item_id(owner), {}).get(ACTIVE, 0))

    def due(self, by: float, limit: int) -> list[TaskRecord]:
        due = [t for t in self.tasks.values() if t.due_at is not None and t.due_at <= by]
        due.sort(key=lambda t: (t.due_at or 0.0, t.id))
        return due[:limit]

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
            after = decode_cursor(cursor, CURSOR_FIELDS)
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
    group: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Received:
    """A message as a worker gets it: its body's task id and the handle to act on it."""

    task_id: str
    receipt_handle: str
    receives: int
    group: str | None = None  # whose work it is (the owner), as SQS's MessageGroupId


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

    def send_many(self, task_ids: Sequence[str], owner: str | None = None) -> None:
        for task_id in task_ids:
            self.send(task_id, owner=owner)

    def send(self, task_id: str, delay_seconds: int = 0, owner: str | None = None) -> None:
        with self._lock:
            self.sent.append((task_id, delay_seconds))
            self._numbers += 1
            message = _Message(self.clock() + delay_seconds, self._numbers, task_id, group=owner)
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
                return Received(message.task_id, handle, message.receives, message.group)
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

    def lose(self, task_id: str) -> int:
        """Drops every message of the task, as a send that never happened would leave
        the queue (for tests); returns how many it dropped."""
        with self._lock:
            kept = [m for m in self._waiting if m.task_id != task_id]
            lost = len(self._waiting) - len(kept)
            self._waiting = kept
            heapq.heapify(self._waiting)
            for handle, message in list(self._in_flight.items()):
                if message.task_id == task_id:
                    del self._in_flight[handle]
                    lost += 1
            return lost

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
