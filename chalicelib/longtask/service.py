"""What people and programs may do with tasks, and who may see what: start, look up,
cancel, list, and link to a result. The web layer only parses, calls this and renders."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .backends import Backends, Clock, Conflict, Expect, InvalidCursor, Page
from .model import ErrorInfo, Status, TaskRecord, is_task_id, new_task_id, sources_of
from .params import validate
from .settings import Settings
from .tasks import TaskDefinition, TaskRegistry

log = logging.getLogger(__name__)


class UnknownKind(LookupError):
    """No task of this kind is declared."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"there is no task kind {kind!r}")
        self.kind = kind


class TaskNotFound(LookupError):
    """No such task, or not one the caller may see (the two look the same)."""


class TaskGone(LookupError):
    """The task was kept for its retention and is past it."""


class AlreadyFinished(Exception):
    """The task has ended; `task` is how it ended."""

    def __init__(self, task: TaskRecord) -> None:
        super().__init__(f"the task is already {task.status.value}")
        self.task = task


@dataclass
class TaskService:
    """The framework's rules, over a registry and its backends.

    `backends` and `settings` are callables so that nothing is read or connected
    before the first request or event that needs it.
    """

    registry: TaskRegistry
    settings_source: Callable[[], Settings]
    backends_source: Callable[[], Backends]
    clock: Clock

    @property
    def settings(self) -> Settings:
        return self.settings_source()

    @property
    def backends(self) -> Backends:
        return self.backends_source()

    def definition(self, kind: str) -> TaskDefinition:
        definition = self.registry.get(kind)
        if definition is None:
            raise UnknownKind(kind)
        return definition

    # -- starting

    def start(
        self, kind: str, given: Mapping[str, list[Any]], owner: str | None = None
    ) -> TaskRecord:
        """Validates the parameters (InvalidParams names each wrong field), records the
        task as ready and queues it."""
        definition = self.definition(kind)
        params = validate(definition.params, given)
        return self._start(definition, params, owner)

    def _start(
        self, definition: TaskDefinition, params: dict[str, Any], owner: str | None
    ) -> TaskRecord:
        now = self.clock()
        task = TaskRecord(
            id=new_task_id(),
            kind=definition.kind,
            params=params,
            status=Status.READY,
            created_at=now,
            updated_at=now,
            owner=owner,
            expires_at=int(now + self.settings.retention_days * 86400),
        )
        backends = self.backends
        backends.store.create(task)
        try:
            backends.queue.send(task.id)
        except Exception:
            # Without its message the task would wait forever: say so instead.
            log.exception("task %s: could not queue it", task.id)
            backends.store.update(
                task.id,
                {
                    "status": Status.FAILED,
                    "finished_at": self.clock(),
                    "error": ErrorInfo(
                        "QueueError", "the task could not be queued; start it again"
                    ),
                },
            )
            raise
        return task

    # -- looking up

    def find(
        self, kind: str, task_id: str, viewer: str | None, owner_only: bool = False
    ) -> TaskRecord:
        """The task, if `viewer` may see it: its owner always; anyone with its
        unguessable id unless the service is private or the action is owner-only.
        Others get TaskNotFound, exactly as for a task that does not exist."""
        self.definition(kind)
        if not is_task_id(task_id):
            raise TaskNotFound(task_id)
        task = self.backends.store.get(task_id)
        if task is None or task.kind != kind:
            raise TaskNotFound(task_id)
        if (owner_only or self.settings.private) and task.owner != viewer:
            raise TaskNotFound(task_id)
        if task.expires_at is not None and task.expires_at < self.clock():
            raise TaskGone(task_id)
        return task

    def list_tasks(self, owner: str | None, limit: int, cursor: str | None) -> Page:
        """The owner's tasks, newest first (InvalidCursor for a cursor not theirs)."""
        if owner is None:
            if cursor is not None:
                raise InvalidCursor(cursor)  # no cursor was ever given to nobody
            return Page([], None)
        return self.backends.store.list_by_owner(owner, limit, cursor)

    def result_url(self, task: TaskRecord) -> str:
        """A fresh short-lived link to the result of a done task."""
        assert task.result is not None
        return self.backends.results.url(task.result.key, self.settings.result_url_ttl)

    def result_head(self, task: TaskRecord, limit: int) -> bytes:
        """At most the first `limit` bytes of a done task's result, for its page."""
        assert task.result is not None
        return self.backends.results.read(task.result.key, limit)

    # -- cancelling

    def cancel(self, kind: str, task_id: str, viewer: str | None) -> TaskRecord:
        """Cancels the viewer's own task; a running one stops at its next progress.
        AlreadyFinished if it has ended."""
        task = self.find(kind, task_id, viewer, owner_only=True)
        now = self.clock()
        try:
            return self.backends.store.update(
                task.id,
                {"status": Status.CANCELLED, "finished_at": now, "updated_at": now},
                Expect(statuses=sources_of(Status.CANCELLED)),
            )
        except Conflict as exc:
            raise AlreadyFinished(exc.current or task) from None
