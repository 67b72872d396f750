"""The operations of one run of a task function, identified by their position.

Each `ctx.step` and `ctx.map` is the next operation of the run: its id is its place in the
order of calls (op1, op2, …), never its name, which only labels it. A run after a
hand-over, a takeover or a map's end replays the function from the top, and every
operation finds what the earlier run recorded under its position. A replay that reaches
an operation of another kind or label than recorded has met a changed program:
NonDeterministic names the operation, since no attempt could continue such a task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..backends import Backends, Clock
from ..backends.keys import operation_key
from ..errors import NonDeterministic
from ..model import TaskRecord
from .values import Values


@dataclass(frozen=True)
class Operation:
    position: int  # 1 for the run's first operation
    kind: str  # "step" or "map"
    label: str  # a step's name, a map's function
    key: str  # the memo key of what it records

    def describe(self) -> str:
        return f"operation {self.position} (ctx.{self.kind} {self.label!r})"


class Operations:
    """The steps and maps of one run of a task function, and what earlier runs recorded."""

    def __init__(self, task: TaskRecord, backends: Backends, clock: Clock) -> None:
        self.task = task
        self.store = backends.store
        self.queue = backends.queue
        self.values = Values(backends.results, task.id)
        self.clock = clock
        self._position = 0

    def next(self, kind: str, label: str) -> Operation:
        self._position += 1
        key = operation_key(self.task.id, self._position)
        return Operation(self._position, kind, label, key)

    def recorded(self, operation: Operation) -> dict[str, Any] | None:
        """What an earlier run recorded for `operation`, checked to be the same operation."""
        stored: dict[str, Any] | None = self.store.memo_get(operation.key)
        if stored is not None:
            self.check(operation, stored)
        return stored

    def record(self, operation: Operation, value: dict[str, Any]) -> dict[str, Any]:
        """Records `value` for `operation` unless a run recorded one first; returns the
        one kept (checked, since a racing run may have been another program)."""
        entry = {"op": operation.kind, "label": operation.label, **value}
        kept: dict[str, Any] = self.store.memo_put(operation.key, entry, self.task.expires_at)
        self.check(operation, kept)
        return kept

    @staticmethod
    def check(operation: Operation, stored: dict[str, Any]) -> None:
        """Raises NonDeterministic unless `stored` was recorded by this operation."""
        was = (stored.get("op"), stored.get("label"))
        if was != (operation.kind, operation.label):
            raise NonDeterministic(
                f"{operation.describe()} was ctx.{was[0]} {was[1]!r} in an earlier run of "
                "this task: a task function must call ctx.step and ctx.map in the same order "
                "each time it runs"
            )
