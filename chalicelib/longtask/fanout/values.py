"""JSON values of any size kept for a task's operations: small ones inline in their memo or
record, large ones in the result store with only their key beside the task."""

from __future__ import annotations

import json
from typing import Any

from ..backends import ResultStore
from ..backends.keys import large_value_key
from ..encoding import compact_json

# Larger values go to the result store and a memo holds their key. An item rides in its
# part's record only while small: the record is read at every poll and rewritten at
# every progress write, and DynamoDB bills both by the record's whole size.
INLINE_BYTES = 16 * 1024
INLINE_ITEM_BYTES = 512
_LARGE_READ = 256 * 1024 * 1024


def as_json(value: Any) -> str:
    try:
        return compact_json(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"items and results of ctx.map and ctx.step must be JSON: {exc}") from exc


class Values:
    """Keeps and reads back the values of one task's operations."""

    def __init__(self, results: ResultStore, task_id: str) -> None:
        self.results = results
        self.task_id = task_id

    def pack(self, value: Any, key: str) -> dict[str, Any]:
        """`value` as a memo: {"value": it} if small, else {"at": where it is kept}."""
        text = as_json(value)
        if len(text) <= INLINE_BYTES:
            return {"value": json.loads(text)}
        return {"at": self.put_large(key, "value", text)}

    def unpack(self, stored: dict[str, Any]) -> Any:
        if "at" in stored:
            return self.read_large(stored["at"])
        return stored.get("value")

    def put_large(self, key: str, what: str, text: str) -> str:
        object_key = large_value_key(key, what)
        self.results.put(
            object_key, text.encode(), "application/json", f"{what}.json", self.task_id, 0
        )
        return object_key

    def read_large(self, object_key: str) -> Any:
        return json.loads(self.results.read(object_key, _LARGE_READ))
