"""Fan-out and memoized steps: `ctx.map` runs a function on each item as a part of its own,
in parallel workers; `ctx.step` runs a function once per task. Both replay: after a
hand-over, a takeover or the wait for its parts, the task function runs again from the
top and every finished step and map returns its stored result instead of running again.

A map's parts are task records of their own (same queue, same worker, same claims,
leases and retries); beside them, memos in the task store hold the map's state, the set
of its finished parts (one atomic counter, however often a part reports) and their
results. The waiting parent holds no worker: the part that finishes last queues it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from .backends import Clock, ResultStore, TaskQueue, TaskStore
from .backends.keys import large_value_key, operation_key, part_id, part_result_key
from .encoding import compact_json
from .errors import Conflict, PartFailed, WaitForParts
from .model import ErrorInfo, Status, TaskRecord

MAX_PARTS = 1000
# Larger results go to the result store and a memo holds their key. An item rides in its
# part's record only while small: the record is read at every poll and rewritten at
# every progress write, and DynamoDB bills both by the record's whole size.
INLINE_BYTES = 16 * 1024
INLINE_ITEM_BYTES = 512
_LARGE_READ = 256 * 1024 * 1024


def map_key(task_id: str, number: int) -> str:
    return operation_key(task_id, f"map{number}")


def _result_key(key: str, index: int) -> str:
    return part_result_key(key, index)


def _step_key(task_id: str, name: str) -> str:
    return operation_key(task_id, f"step:{hashlib.sha256(name.encode()).hexdigest()[:32]}")


def function_ref(fn: Callable[..., Any]) -> str:
    """ "module:qualname" of a module-level function, the way a part finds it again."""
    ref = f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}"
    if "<" in ref or resolve(ref) is not fn:
        raise ValueError(
            f"ctx.map needs a function defined at the top level of a module, not {fn!r}: "
            "each part runs it in another worker, which finds it by its name"
        )
    return ref


def resolve(ref: str) -> Callable[..., Any]:
    module_name, _, qualname = ref.partition(":")
    target: Any = importlib.import_module(module_name)
    for name in qualname.split("."):
        target = getattr(target, name)
    if not callable(target):
        raise TypeError(f"{ref} is not a function")
    return target  # type: ignore[no-any-return]


def _encode(value: Any) -> str:
    try:
        return compact_json(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"items and results of ctx.map must be JSON values: {exc}") from exc


class Fanout:
    """The maps and steps of one run of a task function."""

    def __init__(
        self,
        task: TaskRecord,
        store: TaskStore,
        queue: TaskQueue,
        results: ResultStore,
        clock: Clock,
    ) -> None:
        self.task = task
        self.store = store
        self.queue = queue
        self.results = results
        self.clock = clock
        self._maps = 0

    # -- steps

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        key = _step_key(self.task.id, name)
        stored = self.store.memo_get(key)
        if stored is not None:
            return self._unpack(stored)
        return self._unpack(self.store.memo_put(key, self._pack(fn(), key), self.task.expires_at))

    # -- maps

    def map(
        self,
        items: Iterable[Any],
        fn: Callable[[Any, Any], Any],
        max_parallel: int | None = None,
        tolerate: int = 0,
    ) -> list[Any]:
        self._maps += 1
        key = map_key(self.task.id, self._maps)
        state = self.store.memo_get(key)
        if state is None:
            state = self._begin(key, list(items), fn, max_parallel, tolerate)
            if state["total"] == 0:
                return []
            self._start_parts(key, state, None)
            raise WaitForParts(0, state["total"])
        total = state["total"]
        ids = [part_id(key, i) for i in range(total)]
        parts = self.store.get_many(ids)
        finished = [p for p in parts if p.is_terminal]
        if len(finished) < total:
            # A replay before every part has finished (a takeover, or a duplicate
            # message): make sure each part exists and is queued, then wait again.
            self._start_parts(key, state, parts)
            raise WaitForParts(len(finished), total)
        return self._gather(key, parts, state["tolerate"])

    def _begin(
        self,
        key: str,
        items: list[Any],
        fn: Callable[[Any, Any], Any],
        max_parallel: int | None,
        tolerate: int,
    ) -> dict[str, Any]:
        if len(items) > MAX_PARTS:
            raise ValueError(f"ctx.map takes at most {MAX_PARTS} items, not {len(items)}")
        if max_parallel is not None and max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        state = {
            "total": len(items),
            "fn": function_ref(fn),
            "started_at": self.clock(),
            "parallel": min(max_parallel or len(items), len(items)),
            "tolerate": max(int(tolerate), 0),
        }
        # The state first: a replay after a crash from here on finds it, and finds or
        # makes each part again (creating a part is conditional, so never twice).
        stored: dict[str, Any] = self.store.memo_put(key, state, self.task.expires_at)
        if stored["total"] != len(items):
            raise RuntimeError(
                "ctx.map was called with other items than in an earlier run of this task: "
                "a task function must call ctx.map with the same items each time"
            )
        for index, item in enumerate(items):
            self._create_part(key, index, item, stored["fn"])
        return stored

    def _create_part(self, key: str, index: int, item: Any, fn: str) -> None:
        text = _encode(item)
        params: dict[str, Any] = {"map": key, "fn": fn}
        if len(text) <= INLINE_ITEM_BYTES:
            params["item"] = json.loads(text)
        else:
            params["item_at"] = self._put_large(key, f"item{index}", text)
        now = self.clock()
        part = TaskRecord(
            id=part_id(key, index),
            kind=self.task.kind,
            params=params,
            status=Status.READY,
            created_at=now,
            updated_at=now,
            expires_at=self.task.expires_at,
            parent=self.task.id,
            part=index,
        )
        with contextlib.suppress(Conflict):  # made by an earlier run of this map
            self.store.create(part)

    def _start_parts(self, key: str, state: dict[str, Any], parts: list[TaskRecord] | None) -> None:
        total, window = state["total"], state["parallel"]
        if parts is None:
            self.queue.send_many([part_id(key, i) for i in range(window)])
            return
        present = {p.part: p for p in parts}
        finished = sum(1 for p in parts if p.is_terminal)
        for index in range(total):
            if index not in present:
                raise RuntimeError(f"part {index} of {key} is missing; its record expired?")
        # The parts a first run would have queued by now: the window, moved on by
        # the parts that finished.
        due = [
            present[i].id
            for i in range(min(total, window + finished))
            if present[i].status is Status.READY
        ]
        self.queue.send_many(due)

    def _gather(self, key: str, parts: list[TaskRecord], tolerate: int) -> list[Any]:
        failed = [p for p in parts if p.status is not Status.DONE]
        if len(failed) > tolerate:
            first = min(failed, key=lambda p: p.part or 0)
            error = first.error or ErrorInfo("Cancelled", "the part was cancelled")
            raise PartFailed(
                f"part {(first.part or 0) + 1} of {len(parts)} failed: "
                f"{error.type}: {error.message}"
                + (f" ({len(failed)} parts failed in all)" if len(failed) > 1 else "")
            )
        keys = [_result_key(key, p.part or 0) for p in parts]
        stored = self.store.memo_get_many(keys)
        return [self._unpack(stored[k]) if k in stored else None for k in keys]

    # -- what a part does

    def item_of(self, part: TaskRecord) -> Any:
        params = part.params
        if "item_at" in params:
            return json.loads(self.results.read(params["item_at"], _LARGE_READ))
        return params.get("item")

    def function_of(self, part: TaskRecord) -> Callable[[Any, Any], Any]:
        return resolve(part.params["fn"])

    def keep_result(self, part: TaskRecord, value: Any) -> None:
        key = _result_key(part.params["map"], part.part or 0)
        self.store.memo_put(key, self._pack(value, key), part.expires_at)

    # -- storage of values of any size

    def _pack(self, value: Any, key: str) -> dict[str, Any]:
        text = _encode(value)
        if len(text) <= INLINE_BYTES:
            return {"value": json.loads(text)}
        return {"at": self._put_large(key, "value", text)}

    def _unpack(self, stored: dict[str, Any]) -> Any:
        if "at" in stored:
            return json.loads(self.results.read(stored["at"], _LARGE_READ))
        return stored.get("value")

    def _put_large(self, key: str, what: str, text: str) -> str:
        object_key = large_value_key(key, what)
        self.results.put(
            object_key, text.encode(), "application/json", f"{what}.json", self.task.id, 0
        )
        return object_key
