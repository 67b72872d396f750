"""In-memory stand-ins for DynamoDB, SQS and S3, with the same rules, for fast tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .model import Conflict, Expect, IfMissing, Increment, TaskRecord


class MemoryTaskStore:
    """Task records in a dict; `update` is atomic like a DynamoDB conditional write."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskRecord] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def create(self, task: TaskRecord) -> None:
        with self._lock:
            if task.id in self.tasks:
                raise Conflict(self.tasks[task.id])
            self.tasks[task.id] = task
            self.writes += 1

    def get(self, task_id: str) -> TaskRecord | None:
        return self.tasks.get(task_id)

    def update(self, task_id: str, changes: dict[str, Any], *expect: Expect) -> TaskRecord:
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
                values[name] = value
            updated = current.evolve(**values)
            self.tasks[task_id] = updated
            self.writes += 1
            return updated


@dataclass
class MemoryQueue:
    """Records what would have gone to SQS."""

    sent: list[tuple[str, int]] = field(default_factory=list)
    visibility: list[tuple[str, float]] = field(default_factory=list)

    def send(self, task_id: str, delay_seconds: int = 0) -> None:
        self.sent.append((task_id, delay_seconds))

    def show_again_in(self, receipt_handle: str, seconds: float) -> None:
        self.visibility.append((receipt_handle, seconds))


@dataclass
class MemoryResults:
    objects: dict[str, tuple[bytes, str, str | None]] = field(default_factory=dict)
    puts: int = 0

    def put(self, key: str, body: bytes, content_type: str, filename: str) -> None:
        self.objects[key] = (body, content_type, filename)
        self.puts += 1

    def url(self, key: str, ttl_seconds: int) -> str:
        return f"memory://{key}?ttl={ttl_seconds}"
