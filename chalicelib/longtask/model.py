"""The task record, its statuses and allowed transitions, and the status document."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .progress import estimate_eta


class Status(StrEnum):
    READY = "ready"  # queued, not yet claimed
    STARTED = "started"  # a worker holds the lease and runs it
    ERROR = "error"  # an attempt failed; SQS will redeliver for another
    DONE = "done"
    FAILED = "failed"  # gave up after LONGTASK_MAX_ATTEMPTS
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})

# Which status each status may move to. Writes name their allowed sources as
# conditions, so a late or duplicate worker can never move a finished task back.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.READY: frozenset({Status.STARTED, Status.CANCELLED, Status.FAILED}),
    Status.STARTED: frozenset(
        {Status.STARTED, Status.ERROR, Status.DONE, Status.FAILED, Status.CANCELLED}
    ),
    Status.ERROR: frozenset({Status.STARTED, Status.FAILED, Status.CANCELLED}),
    Status.DONE: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
}


def can_move(source: Status, target: Status) -> bool:
    return target in TRANSITIONS[source]


def sources_of(target: Status) -> frozenset[Status]:
    """Every status from which `target` may be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


# 16 random bytes in URL-safe base64: 22 characters, 128 bits of randomness.
_ID_BYTES = 16
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")


def new_task_id() -> str:
    return secrets.token_urlsafe(_ID_BYTES)


def is_task_id(text: str) -> bool:
    return ID_PATTERN.fullmatch(text) is not None


@dataclass(frozen=True)
class Progress:
    message: str = ""
    step: int | None = None
    total_steps: int | None = None
    at: float | None = None  # when this was reported (epoch seconds)
    rate: float | None = None  # smoothed steps per second, for the ETA

    @property
    def percent(self) -> float | None:
        if self.step is None or not self.total_steps:
            return None
        return round(min(max(self.step / self.total_steps, 0.0), 1.0) * 100, 1)


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str


@dataclass(frozen=True)
class ResultInfo:
    key: str
    content_type: str
    filename: str | None = None
    size: int | None = None  # bytes; None for results stored before sizes were kept


class StoredApart:
    """Stands for a checkpoint too large for the task record, kept beside it.

    Every status read and progress write is billed on the whole record, so a large
    checkpoint lives in an item of its own that only the worker resuming the task reads.
    """

    def __repr__(self) -> str:
        return "APART"


APART: Any = StoredApart()


@dataclass(frozen=True)
class PartOf:
    """What makes a record a part of another task's map."""

    parent: str  # the id of the task whose map it belongs to
    map: str  # the memo key of that map
    index: int  # its place among the map's items
    function: str  # "module:qualname" of the function it runs
    item: Any = None  # its item (JSON), unless the item is large and kept at `item_at`
    item_at: str | None = None  # the result-store key of a large item


@dataclass(frozen=True)
class TaskRecord:
    id: str
    kind: str
    params: dict[str, Any]
    status: Status = Status.READY
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    owner: str | None = None
    progress: Progress = field(default_factory=Progress)
    error: ErrorInfo | None = None
    result: ResultInfo | None = None
    lease_until: float | None = None
    checkpoint: Any = None  # JSON, or APART (TaskStore.checkpoint reads it)
    resume: bool = False  # a checkpointed run handed over to its next invocation
    requeues: int = 0  # times the dead-letter handler queued it again
    expires_at: int | None = None
    part: PartOf | None = None  # set on the parts of another task's ctx.map
    # The owner whose active place in the quota the record holds; the write that ends
    # the task gives it back (a Release among its changes).
    counted: str | None = None
    # When the record must have moved on, or the reconciler looks at it: set while the
    # task has not ended (and only then), moved by each write that moves the task on.
    due_at: float | None = None
    # The token of the write that last changed the record: a write retried after its
    # answer was lost finds its own token, and knows that it applied. Bookkeeping, not
    # state: two records that differ only in it are equal.
    writer: str | None = field(default=None, compare=False)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def parent(self) -> str | None:
        """The task whose map this record is a part of."""
        return None if self.part is None else self.part.parent

    def lease_is_live(self, now: float) -> bool:
        return self.lease_until is not None and self.lease_until > now

    def evolve(self, **changes: Any) -> TaskRecord:
        return replace(self, **changes)


def iso(ts: float | None) -> str | None:
    """Epoch seconds as the status document's UTC timestamp with milliseconds."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Links:
    self: str
    result: str
    cancel: str


def status_document(
    task: TaskRecord, links: Links, now: float, retry_delay: float | None = None
) -> dict[str, Any]:
    """The JSON status document, as users and programs see it.

    `retry_delay` is the backoff after the task's last failed attempt: with it, a task
    waiting for its retry says when the next attempt is due (`retry_at`)."""
    progress = task.progress
    end = task.finished_at if task.is_terminal and task.finished_at else now
    elapsed = round(max(end - task.started_at, 0.0), 1) if task.started_at else None
    eta = None
    if task.status is Status.STARTED:
        eta = estimate_eta(
            progress.step,
            progress.total_steps,
            progress.rate,
            progress.at,
            now,
            task.started_at,
        )
    return {
        "id": task.id,
        "kind": task.kind,
        "status": task.status.value,
        "done": task.is_terminal,
        "parameters": task.params,
        "progress": {
            "message": progress.message,
            "step": progress.step,
            "total_steps": progress.total_steps,
            "percent": 100.0 if task.status is Status.DONE else progress.percent,
            # With these a page can move its bar between two polls at the task's own
            # pace, and stop when the task stops reporting.
            "rate": round(progress.rate, 4) if progress.rate else None,
            "reported_at": iso(progress.at),
        },
        "attempts": task.attempts,
        "created_at": iso(task.created_at),
        "started_at": iso(task.started_at),
        "updated_at": iso(task.updated_at),
        "finished_at": iso(task.finished_at),
        "elapsed_seconds": elapsed,
        "eta_seconds": eta,
        "links": {
            "self": links.self,
            "result": links.result if task.status is Status.DONE else None,
            "cancel": None if task.is_terminal else links.cancel,
        },
        "error": ({"type": task.error.type, "message": task.error.message} if task.error else None),
        # What the download is, so that a page or a program can name it before fetching it.
        "result": (
            {
                "filename": task.result.filename,
                "content_type": task.result.content_type,
                "size": task.result.size,
            }
            if task.status is Status.DONE and task.result is not None
            else None
        ),
        "retry_at": (
            iso(task.updated_at + retry_delay)
            if task.status is Status.ERROR and retry_delay is not None
            else None
        ),
    }
