"""The vocabulary of conditional writes and admissions that every backend understands,
and the pieces both keep alike (checkpoints kept apart, cursors)."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..encoding import compact_json
from ..errors import InvalidCursor, OverQuota
from ..model import Status, TaskRecord, sources_of
from . import keys

# A checkpoint larger than this (as JSON) is kept apart from the task record, so that the
# record stays within one DynamoDB write unit (1 KB) and one read unit whatever a task
# saves. Small ones (a counter, a position) stay inline: reading them costs nothing more.
INLINE_CHECKPOINT_BYTES = 256


RECORD_FIELDS = frozenset(f.name for f in fields(TaskRecord))


def known_fields(changes: Mapping[str, Any]) -> Mapping[str, Any]:
    """`changes`, if each names a field of TaskRecord; else ValueError naming the others
    (a misspelt field is refused before anything is written, by every store)."""
    unknown = set(changes) - RECORD_FIELDS
    if unknown:
        raise ValueError(f"a task record has no field {', '.join(sorted(unknown))}")
    return changes


def kept_apart(checkpoint: Any) -> bool:
    """Whether a checkpoint goes beside the record rather than in it."""
    if checkpoint is None:
        return False
    return len(compact_json(checkpoint).encode()) > INLINE_CHECKPOINT_BYTES


# -- the write vocabulary -----------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """One state a conditional write expects to find; the backends make it atomic.

    Every given part must hold: the status is one of `statuses`, the attempt counter
    equals `attempts` (or is below `attempts_below`), a lease is held (`leased`) or ran
    out by `lease_expired_by`, the hand-over flag of a checkpointed task is `resume`.

    Writes never name the statuses they start from: `Expect.into(target, ...)` derives
    them from TRANSITIONS, so the state machine is written down once; `Expect.still(task)`
    is for a change that moves no status and needs the record as it was read.
    """

    statuses: frozenset[Status] | None = None
    attempts: int | None = None
    attempts_below: int | None = None
    leased: bool | None = None
    lease_expired_by: float | None = None
    resume: bool | None = None
    step_below: int | None = None  # progress shows no step yet, or one below this
    due_at: float | None = None  # the record is due at exactly this time

    @classmethod
    def into(cls, target: Status, **conditions: Any) -> Expect:
        """The write that moves a record to `target`: from any status TRANSITIONS allows
        to reach it, and under `conditions` (the other fields of Expect)."""
        return cls(statuses=sources_of(target), **conditions)

    @classmethod
    def still(cls, task: TaskRecord, **conditions: Any) -> Expect:
        """The record is in the status and attempt it was read in (and under
        `conditions`, the other fields of Expect)."""
        return cls(statuses=frozenset({task.status}), attempts=task.attempts, **conditions)

    def holds_for(self, task: TaskRecord) -> bool:
        if self.statuses is not None and task.status not in self.statuses:
            return False
        if self.leased is not None and (task.lease_until is not None) != self.leased:
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
        if self.due_at is not None and task.due_at != self.due_at:
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


def new_token() -> str:
    """A token that names one write (TaskRecord.writer)."""
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class Release:
    """A change of `counted` that gives back the active place `task` holds in its owner's
    quota, in the same atomic write that ends it: no crash and no lost answer can leave
    an ended task counted. Only for a write that moves the task to a terminal status."""

    task: TaskRecord

    @property
    def owner(self) -> str:
        assert self.task.counted is not None
        return self.task.counted


def applied(record: TaskRecord, changes: Mapping[str, Any], token: str) -> TaskRecord:
    """`record` with `changes` applied by the write that `token` names (what a store
    answers when its write itself returns no record)."""
    values: dict[str, Any] = {"writer": token}
    for name, value in changes.items():
        if isinstance(value, Increment):
            value = getattr(record, name) + value.by
        elif isinstance(value, IfMissing):
            existing = getattr(record, name)
            value = value.value if existing is None else existing
        elif isinstance(value, Release):
            value = None
        values[name] = value
    return record.evolve(**values)


def ending(task: TaskRecord, changes: Mapping[str, Any]) -> dict[str, Any]:
    """`changes` that end `task`, with its quota place given back in the same write and
    the record out of the reconciler's sight."""
    ended = {**changes, "due_at": None}
    if task.counted is not None:
        ended["counted"] = Release(task)
    return ended


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

    @property
    def key_item_id(self) -> str | None:
        return None if self.key is None else keys.start_key_item_id(self.key)

    def key_is_free(self, remembered_until: int | None) -> bool:
        """Whether a key remembered until then (None: never used) may start a task now:
        a key past its time may be used again (DynamoDB's TTL deletes lazily)."""
        return remembered_until is None or remembered_until < self.now

    def counts(self) -> tuple[Count, ...]:
        """The counters a start adds one to, each refused at its quota."""
        return (
            # An owner who stops coming leaves no count behind: it expires a day after
            # the last of their tasks does (a release that finds it gone changes nothing).
            Count(
                keys.owner_item_id(self.owner),
                ACTIVE,
                self.max_active,
                self.remember_until + 86400,
                OverQuota.ACTIVE,
            ),
            # A minute's count is kept an hour past its minute, then TTL removes it.
            Count(
                keys.starts_item_id(self.owner, self.minute),
                "starts",
                self.starts_per_minute,
                (self.minute + 61) * 60,
                OverQuota.STARTS,
            ),
        )


# The counter of an owner's active tasks, in the item `keys.owner_item_id(owner)`; a task
# record counted there names its owner in `counted` until its place is given back.
ACTIVE = "active"
COUNTED = "counted"


@dataclass(frozen=True)
class Count:
    """One counter of an admission: `counter` of item `item_id` goes up by one while it is
    below `most`, else the start is refused as over `limit`; the item expires at
    `expires_at` (epoch seconds)."""

    item_id: str
    counter: str
    most: int
    expires_at: int
    limit: str

    def allows(self, current: int | None) -> bool:
        return (current or 0) < self.most


@dataclass(frozen=True)
class Page:
    """One page of an owner's tasks, newest first; `next` continues it (None: no more)."""

    tasks: list[TaskRecord]
    next: str | None


def encode_cursor(fields: Mapping[str, str]) -> str:
    """An opaque cursor: URL-safe base64 of a small JSON object of strings."""
    text = compact_json(dict(fields), sort_keys=True)
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


# A page of an owner's tasks ends at these: the keys of the owner index and of the table.
CURSOR_FIELDS = frozenset({"owner", "created_at", "id"})
