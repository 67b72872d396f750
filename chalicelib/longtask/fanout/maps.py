"""`ctx.map`: a function run on each item as a part of its own, in parallel workers.

A map's parts are task records of their own (same queue, same worker, same claims,
leases and retries) that say whose part they are (`TaskRecord.part`). Beside them, memos
in the task store hold the map's state, the set of its ended parts (one atomic counter,
however often a part reports) and the parts' results. The waiting task holds no worker:
the part that ends last queues it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from ..backends import Backends, Clock, Expect
from ..backends.keys import part_id, part_result_key
from ..errors import Conflict, NonDeterministic, PartFailed, WaitForParts
from ..model import ErrorInfo, PartOf, Progress, Status, TaskRecord
from .operations import Operation, Operations
from .parts import function_ref
from .values import INLINE_ITEM_BYTES, as_json

MAX_PARTS = 1000


class PartFailure(dict[str, Any]):
    """Stands in a map's results for a tolerated part that failed for good.

    A JSON object, {"failed": true, "index": i, "error": {"type": …, "message": …}}, so
    that a task may return the results as they are; `isinstance(r, PartFailure)` tells it
    from a result.
    """

    def __init__(self, index: int, error: ErrorInfo) -> None:
        super().__init__(
            failed=True, index=index, error={"type": error.type, "message": error.message}
        )

    @property
    def index(self) -> int:
        return int(self["index"])

    @property
    def error(self) -> ErrorInfo:
        return ErrorInfo(self["error"]["type"], self["error"]["message"])


def queued_by(total: int, window: int, ended: int) -> int:
    """How many of a map's parts are queued once `ended` of them have ended: a window of
    `window` parts that moves on by one as each part ends."""
    return min(total, window + ended)


def run_map(
    ops: Operations,
    items: Iterable[Any],
    fn: Callable[[Any, Any], Any],
    max_parallel: int | None,
    tolerate: int,
) -> list[Any]:
    """The results of the map, in item order, once every part has ended; until then
    WaitForParts, after making sure every part exists and every due part is queued."""
    listed = list(items)
    operation = ops.next("map", function_ref(fn))
    digest = _digest(listed)
    state = ops.recorded(operation)
    if state is None:
        state = _begin(ops, operation, listed, digest, max_parallel, tolerate)
        if state["total"] == 0:
            return []
        ops.queue.send_many(
            [part_id(operation.key, i) for i in range(state["parallel"])], owner=ops.task.owner
        )
        raise WaitForParts(0, state["total"])
    _check_items(operation, state, listed, digest)
    total = state["total"]
    ids = [part_id(operation.key, i) for i in range(total)]
    parts = ops.store.get_many(ids)
    if len(parts) < total:
        # The first run stopped between recording the map and making its last part (a
        # crash, or AWS trouble): make the rest, from the same items.
        made = {p.id for p in parts}
        for index, item in enumerate(listed):
            if ids[index] not in made:
                _create_part(ops, operation, index, item)
        parts = ops.store.get_many(ids)
    if len(parts) < total:
        raise RuntimeError(f"parts of {operation.describe()} are missing; expired records?")
    ended = sum(1 for p in parts if p.is_terminal)
    if ended < total:
        # A replay before every part has ended (a takeover, or a duplicate message):
        # queue again each part that a first run would have queued by now.
        due = parts[: queued_by(total, state["parallel"], ended)]
        ops.queue.send_many([p.id for p in due if p.status is Status.READY], owner=ops.task.owner)
        raise WaitForParts(ended, total)
    return _gather(ops, operation, parts, state["tolerate"])


def _digest(items: list[Any]) -> str:
    return hashlib.sha256(as_json(items).encode()).hexdigest()[:32]


def _check_items(
    operation: Operation, state: dict[str, Any], items: list[Any], digest: str
) -> None:
    """Raises NonDeterministic unless the map was recorded with the same items."""
    if state["items"] == digest:
        return
    if state["total"] == len(items):
        what = "other items than in an earlier run of this task"
    else:
        what = f"{len(items)} items, {state['total']} in an earlier run of this task"
    raise NonDeterministic(
        f"{operation.describe()} was called with {what}: a task function must call ctx.map "
        "with the same items each time it runs"
    )


def _begin(
    ops: Operations,
    operation: Operation,
    items: list[Any],
    digest: str,
    max_parallel: int | None,
    tolerate: int,
) -> dict[str, Any]:
    if len(items) > MAX_PARTS:
        raise ValueError(f"ctx.map takes at most {MAX_PARTS} items, not {len(items)}")
    if max_parallel is not None and max_parallel < 1:
        raise ValueError("max_parallel must be at least 1")
    state = {
        "total": len(items),
        "items": digest,
        "started_at": ops.clock(),
        "parallel": min(max_parallel or len(items), len(items)),
        "tolerate": max(int(tolerate), 0),
        # Whose work the parts are: a part's end queues the next parts as the owner's.
        "owner": ops.task.owner,
    }
    # The state first: a replay after a crash from here on finds it, and finds or makes
    # each part again (creating a part is conditional, so never twice).
    kept = ops.record(operation, state)
    _check_items(operation, kept, items, digest)
    for index, item in enumerate(items):
        _create_part(ops, operation, index, item)
    return kept


def _create_part(ops: Operations, operation: Operation, index: int, item: Any) -> None:
    text = as_json(item)
    member = PartOf(ops.task.id, operation.key, index, operation.label)
    if len(text) <= INLINE_ITEM_BYTES:
        member = replace(member, item=json.loads(text))
    else:
        member = replace(member, item_at=ops.values.put_large(operation.key, f"item{index}", text))
    now = ops.clock()
    part = TaskRecord(
        id=part_id(operation.key, index),
        kind=ops.task.kind,
        params={},
        status=Status.READY,
        created_at=now,
        updated_at=now,
        expires_at=ops.task.expires_at,
        part=member,
    )
    with contextlib.suppress(Conflict):  # made by an earlier run of this map
        ops.store.create(part)


def _gather(
    ops: Operations, operation: Operation, parts: list[TaskRecord], tolerate: int
) -> list[Any]:
    failed = {
        i: p.error or ErrorInfo("Cancelled", "the part was cancelled")
        for i, p in enumerate(parts)
        if p.status is not Status.DONE
    }
    if len(failed) > tolerate:
        first = min(failed)
        raise PartFailed(
            f"part {first + 1} of {len(parts)} failed: "
            f"{failed[first].type}: {failed[first].message}"
            + (f" ({len(failed)} parts failed in all)" if len(failed) > 1 else "")
        )
    keys = [part_result_key(operation.key, i) for i in range(len(parts))]
    stored = ops.store.memo_get_many(keys)
    return [
        PartFailure(i, failed[i]) if i in failed else ops.values.unpack(stored.get(key, {}))
        for i, key in enumerate(keys)
    ]


def waiting_progress(waiting: WaitForParts, last: Progress, now: float) -> Progress:
    """What a task waiting for its parts shows: how many have ended, on a bar of parts."""
    rate = last.rate if last.total_steps == waiting.total else None
    return Progress(
        f"{waiting.done} of {waiting.total} parts done", waiting.done, waiting.total, now, rate
    )


def count_ended(part: PartOf, backends: Backends, clock: Clock) -> None:
    """Counts an ended part in its map (once, however often it is told), shows the
    task's combined progress, queues the next part of a bounded map, and queues the task
    again once its last part has ended."""
    count, state = backends.store.memo_add(part.map, part.index)
    if not state:
        return
    total, window = int(state["total"]), int(state["parallel"])
    now = clock()
    elapsed = max(now - float(state["started_at"]), 1e-3)
    progress = Progress(f"{count} of {total} parts done", count, total, now, count / elapsed)
    # Refused when a later count is shown already, or the task has ended.
    with contextlib.suppress(Conflict):
        backends.store.update(
            part.parent,
            {"progress": progress, "updated_at": now},
            Expect.into(Status.STARTED, step_below=count),
        )
    newly_due = range(queued_by(total, window, count - 1), queued_by(total, window, count))
    if newly_due:
        backends.queue.send_many(
            [part_id(part.map, i) for i in newly_due], owner=state.get("owner")
        )
    if count >= total:
        backends.queue.send(part.parent, owner=state.get("owner"))
