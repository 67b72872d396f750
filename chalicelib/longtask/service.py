"""What people and programs may do with tasks, and who may see what: start, look up,
cancel, list, and link to a result. The web layer only parses, calls this and renders."""

from __future__ import annotations

import hashlib
import logging
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .backends import Admission, Backends, Clock, Expect, Page
from .backends.keys import HOST_KEYS
from .backends.writes import ending
from .encoding import compact_json
from .errors import (
    AlreadyFinished,
    Conflict,
    InvalidCursor,
    KeyReused,
    NotFailed,
    OverQuota,
    QuotaExceeded,
    Repeated,
    TaskGone,
    TaskNotFound,
    UnknownKind,
    aws_trouble,
)
from .model import Status, TaskRecord, is_task_id, new_task_id
from .params import validate
from .settings import Settings
from .tasks import TaskDefinition, TaskRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    """What a start request got: the task, and whether an earlier start with the same
    idempotency key had made it already."""

    task: TaskRecord
    repeated: bool = False


# Nobody knows when one of an owner's tasks will end; a short wait keeps a polite
# client from hammering while a task of theirs may finish at any moment.
ACTIVE_RETRY_SECONDS = 10


def fingerprint(kind: str, params: Mapping[str, Any]) -> str:
    """What a start asked for, as a short hash: equal for equal kind and parameters."""
    text = compact_json([kind, dict(params)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def key_of(owner: str, idempotency_key: str) -> str:
    """The stored form of an idempotency key: a hash, per owner, so that one owner's key
    never finds another's task and the table never holds what a client sent."""
    return hashlib.sha256(f"longtask-start:{owner}:{idempotency_key}".encode()).hexdigest()


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
        return self.start_request(kind, given, owner).task

    def start_request(
        self,
        kind: str,
        given: Mapping[str, list[Any]],
        owner: str | None,
        idempotency_key: str | None = None,
    ) -> Start:
        """A start as a client asks for it: validated (InvalidParams), within the owner's
        quotas (QuotaExceeded), and at most once per idempotency key: a repeat with the
        same parameters gets the first task back, with others KeyReused.

        The key, the quotas and the new record are one atomic write, so concurrent
        repeats make exactly one task and concurrent starts never pass a quota.
        """
        definition = self.definition(kind)
        params = validate(definition.params, given)
        if owner is None and idempotency_key is None:
            return Start(self._start(kind, params, None, None))
        settings = self.settings
        now = self.clock()
        # A start without an owner is the host code's own: no quota holds it back, and
        # its keys are the host's (only the host's code makes such starts).
        counted = owner if owner is not None else HOST_KEYS
        unlimited = owner is None
        admission = Admission(
            owner=counted,
            max_active=sys.maxsize if unlimited else settings.max_active_per_owner,
            starts_per_minute=sys.maxsize if unlimited else settings.starts_per_minute,
            now=now,
            key=key_of(counted, idempotency_key) if idempotency_key is not None else None,
            fingerprint=fingerprint(kind, params),
            remember_until=int(now + settings.retention_seconds),
        )
        try:
            return Start(self._start(kind, params, owner, admission))
        except Repeated as repeat:
            first = self.backends.store.get(repeat.task_id)
            if first is None:
                # The first task is past its retention and gone: so is the promise.
                raise TaskGone(repeat.task_id) from None
            if repeat.fingerprint != admission.fingerprint:
                raise KeyReused(first) from None
            return Start(first, repeated=True)
        except OverQuota as over:
            if over.limit == OverQuota.STARTS:
                allowed = settings.starts_per_minute
                retry_after = max(1, math.ceil(60 - now % 60))
            else:
                allowed, retry_after = settings.max_active_per_owner, ACTIVE_RETRY_SECONDS
            raise QuotaExceeded(over.limit, allowed, retry_after) from None

    def retry(self, task_id: str) -> TaskRecord:
        """Starts a failed task again, as a new task of the same kind, parameters and
        owner (NotFailed for any other task). An operator's retry counts as one of the
        owner's active tasks, so that its end gives the place back, but is never refused.
        It needs no declaration of the kind here: the workers run it."""
        task = self.backends.store.get(task_id) if is_task_id(task_id) else None
        if task is None:
            raise TaskNotFound(task_id)
        if task.status is not Status.FAILED:
            raise NotFailed(task)
        admission = None
        if task.owner is not None:
            now = self.clock()
            until = int(now + self.settings.retention_seconds)
            admission = Admission(task.owner, sys.maxsize, sys.maxsize, now, remember_until=until)
        return self._start(task.kind, dict(task.params), task.owner, admission)

    def release(self, task_id: str) -> None:
        """Gives back the owner's active place of a task that has ended (once; a repeat
        or a task still running changes nothing). Called after every write that may
        have ended a task."""
        if self.backends.store.release(task_id):
            log.info("task %s: ended, its owner's place is free", task_id)

    def _start(
        self,
        kind: str,
        params: dict[str, Any],
        owner: str | None,
        admission: Admission | None,
    ) -> TaskRecord:
        now = self.clock()
        task = TaskRecord(
            id=new_task_id(),
            kind=kind,
            params=params,
            status=Status.READY,
            created_at=now,
            updated_at=now,
            owner=owner,
            counted=None if admission is None else admission.owner,
            expires_at=int(now + self.settings.retention_seconds),
            due_at=self.settings.due(now),
        )
        backends = self.backends
        if admission is None:
            backends.store.create(task)
        else:
            backends.store.admit(task, admission)
        try:
            backends.queue.send(task.id, owner=task.owner)
        except Exception as exc:
            if not aws_trouble(exc):
                raise
            # The task exists and is due: the reconciler queues it once that time has
            # come, so the start still succeeds (a later start with the same key finds
            # this task rather than making another).
            log.warning("task %s: could not queue it (%s); the reconciler will", task.id, exc)
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
        if task is None or task.kind != kind or task.parent is not None:
            raise TaskNotFound(task_id)  # the parts of a map show only through their task
        if (owner_only or self.settings.private) and (task.owner is None or task.owner != viewer):
            # A task without an owner is the host code's: no caller owns it.
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
        return self._cancel(self.find(kind, task_id, viewer, owner_only=True))

    def get(self, task_id: str) -> TaskRecord | None:
        """Any task by its id, whoever owns it (for the host code; not a part of a map)."""
        task = self.backends.store.get(task_id) if is_task_id(task_id) else None
        return None if task is None or task.parent is not None else task

    def cancel_any(self, task_id: str) -> TaskRecord:
        """Cancels a task whoever owns it (for the host code): TaskNotFound, AlreadyFinished."""
        task = self.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return self._cancel(task)

    def _cancel(self, task: TaskRecord) -> TaskRecord:
        now = self.clock()
        try:
            return self.backends.store.update(
                task.id,
                ending(task, {"status": Status.CANCELLED, "finished_at": now, "updated_at": now}),
                Expect.into(Status.CANCELLED),
            )
        except Conflict as exc:
            raise AlreadyFinished(exc.current or task) from None

    # -- operators

    def failed_between(self, since: float, until: float, limit: int = 100) -> list[TaskRecord]:
        """Tasks that failed in [since, until), newest first."""
        return self.backends.store.failed_between(since, until, limit)
